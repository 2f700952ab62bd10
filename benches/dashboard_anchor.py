"""Dashboard data pass: ours (`benches/dashboard_pass.rs`, interp_dashboard::gather) against
SAEDashboard's `SaeVisRunner.run` (PyPI `sae-dashboard`) on the same inputs, interleaved.

Both read the same random-weight GPT-2-small-shaped model (HF `GPT2LMHeadModel` saved here,
converted to TransformerLens for SAEDashboard), the same 24576-feature ReLU SAE at
`blocks.6.hook_resid_pre` (SAELens layout; encoder biases set so each feature fires on about
64 / 24576 of the tokens, L0 ≈ 64) and the same random tokens (BOS first). Each round times
one call of each side, alternating which goes first; the table gives tokens/s of the best
call, the median ratio, and the peak RSS of each process.

    python benches/dashboard_anchor.py [--features 1024] [--seqs 32] [--seq-len 128]
        [--rounds 2] [--work DIR] [--worker BIN]

SAEDashboard runs the model once per batch of 256 features, so its time grows with the
features shown; ours reads the model once whatever the features (`--features all` on our
side is also timed and reported). Needs sae-dashboard, which pins other versions of
transformer-lens and numpy than the anchors' venv: install it in a venv of its own that sees
the anchors' torch (see docs/dashboards.md).
"""
import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time

import torch

D_SAE, HOOK, LAYER = 24576, "blocks.6.hook_resid_pre", 6


def build_inputs(work, seqs, seq_len):
    from safetensors.torch import save_file
    from sae_lens import HookedSAETransformer, StandardSAE, StandardSAEConfig
    from transformer_lens import HookedTransformerConfig
    from transformer_lens.pretrained.weight_conversions import convert_gpt2_weights
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config()).eval()
    hf.save_pretrained(os.path.join(work, "model"), safe_serialization=True)
    cfg = HookedTransformerConfig(
        n_layers=12, d_model=768, d_head=64, n_heads=12, d_mlp=3072, d_vocab=50257,
        n_ctx=1024, act_fn="gelu_new", normalization_type="LN", default_prepend_bos=True,
    )
    tl = HookedSAETransformer(cfg)
    tl.load_state_dict(convert_gpt2_weights(hf, cfg), strict=False)
    tl.eval()
    tokens = torch.randint(0, 50256, (seqs, seq_len))
    tokens[:, 0] = 50256
    save_file({"tokens": tokens.to(torch.int64)}, os.path.join(work, "tokens.safetensors"))

    sae_cfg = StandardSAEConfig(d_in=768, d_sae=D_SAE)
    sae_cfg.metadata.hook_name = HOOK
    sae_cfg.metadata.context_size = seq_len
    sae_cfg.metadata.prepend_bos = True
    sae = StandardSAE(sae_cfg)
    with torch.no_grad():
        w = torch.randn(768, D_SAE) / 768 ** 0.5
        sae.W_enc.copy_(w)
        sae.W_dec.copy_((w / w.norm(dim=0, keepdim=True)).T)
        sae.b_dec.zero_()
        _, cache = tl.run_with_cache(tokens[: min(seqs, 8)], names_filter=HOOK)
        x = cache[HOOK][:, 1:].reshape(-1, 768)
        pre = x @ sae.W_enc
        sae.b_enc.copy_(-torch.quantile(pre, 1 - 64 / D_SAE, dim=0))
    sae.save_model(os.path.join(work, "sae"))
    return tl, sae, tokens


def build_worker():
    out = subprocess.run(["cargo", "bench", "--bench", "dashboard_pass", "--no-run"],
                         capture_output=True, text=True)
    found = re.search(r"Executable benches/dashboard_pass\.rs \((.+)\)", out.stderr)
    if out.returncode != 0 or not found:
        sys.exit("could not build the worker:\n" + out.stderr)
    return found.group(1)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--features", type=int, default=1024)
    p.add_argument("--seqs", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--work", default="target/dashboard-anchor")
    p.add_argument("--worker")
    p.add_argument("--json")
    a = p.parse_args()
    os.makedirs(a.work, exist_ok=True)
    from sae_dashboard.sae_vis_data import SaeVisConfig
    from sae_dashboard.sae_vis_runner import SaeVisRunner

    tl, sae, tokens = build_inputs(a.work, a.seqs, a.seq_len)
    n_tok = tokens.numel()
    worker = subprocess.Popen([a.worker or build_worker()], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "INTERP_DASHBOARD_DIR": a.work})

    def ours(features):
        worker.stdin.write(f"pass {features}\n")
        worker.stdin.flush()
        reply = worker.stdout.readline().split()
        if not reply or reply[0] != "ok":
            sys.exit(f"worker failed: {' '.join(reply)}")
        return float(reply[1]), int(reply[2])

    def theirs():
        cfg = SaeVisConfig(hook_point=HOOK, features=list(range(a.features)),
                           minibatch_size_features=256, minibatch_size_tokens=64, device="cpu",
                           verbose=False)
        start = time.perf_counter()
        with torch.no_grad():
            SaeVisRunner(cfg).run(encoder=sae, model=tl, tokens=tokens)
        return time.perf_counter() - start

    print(f"# dashboard pass: {a.seqs} x {a.seq_len} tokens, SAE 768 x {D_SAE} at {HOOK},"
          f" {a.features} features; torch {torch.__version__}, {torch.get_num_threads()} threads",
          flush=True)
    ours(a.features)  # warm-up
    rows = {"anchor": [], "ours": [], "ours_all": []}
    rss = 0
    for r in range(a.rounds):
        order = ["anchor", "ours"] if r % 2 == 0 else ["ours", "anchor"]
        for side in order:
            time.sleep(0.25)
            if side == "anchor":
                rows["anchor"].append(theirs())
            else:
                s, rss = ours(a.features)
                rows["ours"].append(s)
        s, rss = ours("all")
        rows["ours_all"].append(s)
        print(f"round {r}: SAEDashboard {rows['anchor'][-1]:.2f} s, ours {rows['ours'][-1]:.3f} s"
              f" ({a.features} features), ours {s:.3f} s (all {D_SAE})", flush=True)
    worker.stdin.close()
    worker.wait()
    anchor_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ratios = [x / y for x, y in zip(rows["anchor"], rows["ours"])]
    result = {
        "tokens": n_tok, "features": a.features, "d_sae": D_SAE,
        "anchor_best_tok_s": n_tok / min(rows["anchor"]),
        "ours_best_tok_s": n_tok / min(rows["ours"]),
        "ours_all_features_best_tok_s": n_tok / min(rows["ours_all"]),
        "ratio_median": statistics.median(ratios), "ratios": ratios,
        "anchor_peak_rss_mib": anchor_rss / 1024, "ours_peak_rss_mib": rss / 1024,
        "goal": 10.0,
    }
    print(json.dumps(result, indent=1))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
