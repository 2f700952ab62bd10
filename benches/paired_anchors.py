"""Our benchmarks against the Python anchors, interleaved call by call.

On a shared machine the load changes from minute to minute, so two benchmark scripts run one
after the other can disagree by 2x. Here each round times a burst of back-to-back calls of
ours and a burst of the anchor's, one right after the other (alternating which goes first,
with a short pause between), and takes the fastest call of each burst, as the anchor scripts
themselves do (best of 3 after a warm-up); each round gives a ratio. The table reports the
median ratio and its spread over the rounds, the best-of-rounds throughputs, and the median
ratio of the bursts' first calls, which come after a pause and the other side's burst, with
cold caches (our short, memory-bound SAE decodes lose up to 2x there).

    python benches/paired_anchors.py forward|families|sae|steer|flow [--rounds N] [--burst N]
        [--only TEXT] [--features blas] [--worker BIN] [--json FILE] [--flow-features F]

Run it with the anchors' Python (../shared/anchors/setup.sh: torch, transformers,
transformer-lens, sae-lens). It builds and starts the Rust worker, `benches/paired.rs`,
with `cargo bench --bench paired`; the anchors are built exactly as in
../shared/anchors/tl_forward.py and saelens_kernels.py (random weights, same shapes).

- `forward`: GPT-2-small-shaped forward, 8 x 128 tokens, against HF transformers (goal >= 1.0)
  and run_with_cache of the 12 resid_pre hooks against TransformerLens (goal >= 1.3).
- `families`: forward of one 256-token sequence through a Gemma-2-2B-shaped model (d_model
  2304, 8 heads of 256, 4 KV heads, d_mlp 9216, vocab 256000, 6 of its 26 layers) and a
  Llama-3.2-1B-shaped one (16 layers, d 2048, 32 heads, 8 KV heads, d_mlp 8192, vocab 128256),
  random weights, against HF transformers' Gemma2ForCausalLM / LlamaForCausalLM in float32
  (goal >= 1.5). Peak RSS: run each family alone (`--only gemma2`) under /usr/bin/time -v.
- `sae`: batch 1024; encode against SAELens' encode (goal >= 1.0; ours with a dense output for
  ReLU and JumpReLU, as SAELens, and the sparse output for TopK), sparse decode at a realistic
  L0 against SAELens' dense decode (goal >= 30), the TopK32 768x131072 forward (goal >= 1.8).
- `steer`: steered generation on the GPT-2-small-shaped model, 8 samples x 64 new tokens from a
  16-token prompt at temperature 1 with the KV cache, a vector added at blocks.6.hook_resid_pre
  at every position and step, against TransformerLens `generate` with the same forward hook
  (goal >= 3.0 generated tokens/s).
- `flow`: one layer's Feature Flow top-1 matching tables (benches/flow_tables.rs): layer 1 of
  the random Gemma-2-2B-shaped stack, R_1 (16384 x 2304) against R_0, M_1 (16384 x 2304) and
  A_1 (attn.hook_z, 16384 x 2048, mapped through W_O 2048 x 2304 inside the call), against
  the torch twin of benches/flow_tables_anchor.py on the same weights (goal >= 2.0; throughput
  in R_1 rows matched per second, 3 x 16384 a call). `--flow-features 4096` for a quick run.
  Calls take seconds: `--rounds 3` is enough.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

import torch

PAUSE_S = 0.25  # lets the other side's worker threads stop spinning before a timed call


def build_worker(features):
    cmd = ["cargo", "bench", "--bench", "paired", "--no-run"]
    if features:
        cmd += ["--features", features]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(out.stderr)
    found = re.search(r"Executable benches/paired\.rs \((.+)\)", out.stderr)
    if not found:
        sys.exit("could not find the paired worker in cargo's output:\n" + out.stderr)
    return found.group(1)


class Worker:
    def __init__(self, path):
        self.proc = subprocess.Popen(
            [path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "INTERP_PAIRED": "serve"},
        )

    def time(self, request):
        self.proc.stdin.write(request + "\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline().split(maxsplit=1)
        if not reply or reply[0] != "ok":
            sys.exit(f"worker failed on {request!r}: {' '.join(reply) or 'no reply'}")
        return float(reply[1])

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def timed(f):
    start = time.perf_counter()
    f()
    return time.perf_counter() - start


def forward_pairs():
    """(name, tokens per call, anchor name, anchor call, our request, goal)."""
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    torch.manual_seed(0)
    ids = torch.randint(0, 50257, (8, 128))
    hf = GPT2LMHeadModel(GPT2Config()).eval()
    cfg = HookedTransformerConfig(
        n_layers=12, d_model=768, d_head=64, n_heads=12, d_mlp=3072, d_vocab=50257,
        n_ctx=1024, act_fn="gelu_new", normalization_type="LN",
    )
    tl = HookedTransformer(cfg).eval()
    resid_pre = lambda name: name.endswith("hook_resid_pre")
    yield [
        ("forward", 1024, "HF transformers forward", lambda: hf(ids), "gpt2 forward", 1.0),
        ("run_with_cache 12x resid_pre", 1024, "TransformerLens run_with_cache",
         lambda: tl.run_with_cache(ids, names_filter=resid_pre), "gpt2 run_with_cache", 1.3),
    ]


def sae_pairs():
    from sae_lens import (JumpReLUSAE, JumpReLUSAEConfig, StandardSAE, StandardSAEConfig,
                          TopKSAE, TopKSAEConfig)

    torch.manual_seed(0)
    cases = [
        ("relu_768x24576", lambda: StandardSAE(StandardSAEConfig(d_in=768, d_sae=24576)), 768),
        ("jumprelu_2304x16384",
         lambda: JumpReLUSAE(JumpReLUSAEConfig(d_in=2304, d_sae=16384)), 2304),
        ("topk32_768x32768", lambda: TopKSAE(TopKSAEConfig(d_in=768, d_sae=32768, k=32)), 768),
        ("topk32_768x131072",
         lambda: TopKSAE(TopKSAEConfig(d_in=768, d_sae=131072, k=32)), 768),
    ]
    for case, make, d_in in cases:  # one case in memory at a time, on both sides
        sae = make()
        x = torch.randn(1024, d_in)
        with torch.no_grad():
            for p in sae.parameters():
                p.normal_(0, 0.02)
            if hasattr(sae, "threshold"):
                sae.threshold.fill_(0.01)
            codes = sae.encode(x)
        topk = case.startswith("topk")
        encode = "encode_sparse" if topk else "encode_dense"
        pairs = [
            (f"{case} encode", 1024, "SAELens encode", lambda: sae.encode(x),
             f"sae {case} {encode}", 1.0),
            (f"{case} decode", 1024, "SAELens decode", lambda: sae.decode(codes),
             f"sae {case} decode_sparse", 30.0),
        ]
        if case == "topk32_768x131072":
            pairs.append((f"{case} forward", 1024, "SAELens forward",
                          lambda: sae.decode(sae.encode(x)), f"sae {case} forward", 1.8))
        yield pairs
        del sae, codes


def steer_pairs():
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    torch.manual_seed(0)
    cfg = HookedTransformerConfig(
        n_layers=12, d_model=768, d_head=64, n_heads=12, d_mlp=3072, d_vocab=50257,
        n_ctx=1024, act_fn="gelu_new", normalization_type="LN",
    )
    tl = HookedTransformer(cfg).eval()
    v = torch.randn(768)
    v = 8.0 * v / v.norm()
    prompt = torch.randint(0, 50257, (1, 16)).repeat(8, 1)
    hook = ("blocks.6.hook_resid_pre", lambda x, hook: x + v)

    def generate():
        with tl.hooks(fwd_hooks=[hook]):
            tl.generate(prompt, max_new_tokens=64, do_sample=True, temperature=1.0,
                        use_past_kv_cache=True, stop_at_eos=False, verbose=False)

    yield [("steered generate 8x64", 512, "TransformerLens generate + hook", generate,
            "steer generate", 3.0)]


def family_pairs():
    """One model at a time: the previous one is freed before the next is built."""
    from transformers import Gemma2Config, Gemma2ForCausalLM, LlamaConfig, LlamaForCausalLM

    def tokens(vocab):
        return torch.tensor([[(p * 104_729 + 17) % vocab for p in range(256)]])

    torch.manual_seed(0)
    gemma = Gemma2ForCausalLM(Gemma2Config(
        vocab_size=256000, hidden_size=2304, intermediate_size=9216, num_hidden_layers=6,
        num_attention_heads=8, num_key_value_heads=4, head_dim=256, query_pre_attn_scalar=256,
        sliding_window=4096, attn_logit_softcapping=50.0, final_logit_softcapping=30.0,
        max_position_embeddings=8192)).eval()
    ids = tokens(256000)
    yield [("gemma2-2b-shaped 6 layers forward 1x256", 256, "HF Gemma2ForCausalLM",
            lambda: gemma(ids), "family forward gemma2", 1.5)]
    del gemma
    llama = LlamaForCausalLM(LlamaConfig(
        vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
        num_attention_heads=32, num_key_value_heads=8, head_dim=64, rope_theta=500000.0,
        rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
        max_position_embeddings=131072, tie_word_embeddings=True)).eval()
    ids = tokens(128256)
    yield [("llama-3.2-1b-shaped forward 1x256", 256, "HF LlamaForCausalLM",
            lambda: llama(ids), "family forward llama", 1.5)]
    del llama


def flow_pairs(features):
    from flow_tables_anchor import Layer  # beside this script

    layer = Layer(1, features)
    yield [(f"flow 3 top-1 tables {features}x2304", 3 * features,
            "torch tiled matmul + topk", layer.tables, f"flow tables {features}", 2.0, "rows")]
    del layer


def measure(worker, groups, rounds, burst, only=""):
    results = []
    with torch.no_grad():
        for pairs in groups:
            pairs = [p for p in pairs if only in p[0]]
            for _, _, _, anchor, request, *_ in pairs:  # warm-up, both sides
                anchor()
                worker.time(request)
            for name, tokens, anchor_name, anchor, request, goal, *unit in pairs:
                unit = unit[0] if unit else "tok"  # what `tokens` counts
                bursts = ([], [])  # per round: the burst's call times, anchor then ours
                for r in range(rounds):
                    order = (0, 1) if r % 2 == 0 else (1, 0)
                    for side in order:
                        time.sleep(PAUSE_S)
                        call = (lambda: timed(anchor)) if side == 0 else (
                            lambda: worker.time(request))
                        bursts[side].append([call() for _ in range(burst)])
                anchor_s = [min(b) for b in bursts[0]]
                ours_s = [min(b) for b in bursts[1]]
                ratios = sorted(a / o for a, o in zip(anchor_s, ours_s))
                first = [a[0] / o[0] for a, o in zip(*bursts)]
                row = {
                    "benchmark": name,
                    "anchor": anchor_name,
                    "unit": unit,  # the *_tok_s figures count this per second
                    "anchor_best_tok_s": tokens / min(anchor_s),
                    "ours_best_tok_s": tokens / min(ours_s),
                    "anchor_best_s": min(anchor_s),
                    "ours_best_s": min(ours_s),
                    "ratio_median": statistics.median(ratios),
                    "ratio_min": ratios[0],
                    "ratio_max": ratios[-1],
                    "ratio_of_bests": min(anchor_s) / min(ours_s),
                    "first_call_ratio_median": statistics.median(first),
                    "goal": goal,
                    "rounds": rounds,
                    "burst": burst,
                }
                results.append(row)
                print(
                    f"{name:34} {anchor_name:31} anchor {row['anchor_best_tok_s']:9,.0f}"
                    f" {unit}/s"
                    f" | ours {row['ours_best_tok_s']:9,.0f} {unit}/s | ratio median"
                    f" {row['ratio_median']:6.2f} [{row['ratio_min']:.2f}-{row['ratio_max']:.2f}],"
                    f" of bests {row['ratio_of_bests']:6.2f}, first calls"
                    f" {row['first_call_ratio_median']:6.2f} | goal >= {goal}"
                    + ("" if unit == "tok" else
                       f" | best call {row['anchor_best_s']:.2f} s vs {row['ours_best_s']:.2f} s"),
                    flush=True,
                )
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("suite", choices=["forward", "families", "sae", "steer", "flow"])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--burst", type=int, default=3,
                        help="back-to-back calls per side and round; the fastest counts")
    parser.add_argument("--only", default="",
                        help="only the benchmarks whose name contains this, e.g. 'jumprelu'")
    parser.add_argument("--features", default="", help="cargo features of the worker, e.g. blas")
    parser.add_argument("--worker", help="a worker binary already built (skips cargo)")
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--flow-features", type=int, default=16384,
                        help="features per SAE of the flow suite")
    args = parser.parse_args()
    if args.rounds < 1 or args.burst < 1:
        parser.error("--rounds and --burst must be at least 1")
    worker = Worker(args.worker or build_worker(args.features))
    print(f"# {args.suite}, {args.rounds} rounds of {args.burst} calls a side,"
          f" features: {args.features or 'default'},"
          f" torch {torch.__version__} with {torch.get_num_threads()} threads", flush=True)
    groups = {"forward": forward_pairs, "families": family_pairs, "sae": sae_pairs, "steer": steer_pairs,
              "flow": lambda: flow_pairs(args.flow_features)}[args.suite]()
    results = measure(worker, groups, args.rounds, args.burst, args.only)
    worker.close()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"suite": args.suite, "features": args.features, "rows": results}, f,
                      indent=1)


if __name__ == "__main__":
    main()
