"""Writes a random-weight Gemma-2-2B-shaped checkpoint in Hugging Face layout, for measuring
what loading costs (peak RSS, seconds) at real scale without downloading anything.

    python benches/random_checkpoint.py DIR [--layers 26] [--dtype bf16] [--shard-gb 2]

DIR gets `config.json` (model_type gemma2, Gemma-2-2B's values) and the tensors under their
transformers names, stored as bf16 (as the published checkpoint) in shards of at most
`--shard-gb` GB with `model.safetensors.index.json`. Tensors are made one at a time, so
writing needs about one shard of memory. Then, for example:

    /usr/bin/time -v target/release/interp cache --model DIR --tokens 2,651,6037 \\
        --hooks blocks.0.hook_resid_post --out /tmp/x.safetensors

The f32 size of the model is 4 bytes per parameter (printed at the end); the issue's bound is
peak RSS <= 1.15x that.
"""
import argparse
import json
import os

import torch
from safetensors.torch import save_file

D, HEADS, KV, HEAD_DIM, MLP, VOCAB = 2304, 8, 4, 256, 9216, 256000


def tensors(layers):
    yield "model.embed_tokens.weight", (VOCAB, D)
    for i in range(layers):
        p = f"model.layers.{i}."
        for norm in ["input_layernorm", "post_attention_layernorm",
                     "pre_feedforward_layernorm", "post_feedforward_layernorm"]:
            yield p + norm + ".weight", (D,)
        yield p + "self_attn.q_proj.weight", (HEADS * HEAD_DIM, D)
        yield p + "self_attn.k_proj.weight", (KV * HEAD_DIM, D)
        yield p + "self_attn.v_proj.weight", (KV * HEAD_DIM, D)
        yield p + "self_attn.o_proj.weight", (D, HEADS * HEAD_DIM)
        yield p + "mlp.gate_proj.weight", (MLP, D)
        yield p + "mlp.up_proj.weight", (MLP, D)
        yield p + "mlp.down_proj.weight", (D, MLP)
    yield "model.norm.weight", (D,)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--layers", type=int, default=26)
    ap.add_argument("--dtype", choices=["bf16", "f16", "f32"], default="bf16")
    ap.add_argument("--shard-gb", type=float, default=2.0)
    args = ap.parse_args()
    dtype = {"bf16": torch.bfloat16, "f16": torch.float16, "f32": torch.float32}[args.dtype]
    os.makedirs(args.dir, exist_ok=True)
    torch.manual_seed(0)
    limit = int(args.shard_gb * 1e9)
    shards, current, size, params = [], {}, 0, 0
    for name, shape in tensors(args.layers):
        t = (torch.randn(shape) * (0.3 if len(shape) == 1 else 0.02)).to(dtype)
        nbytes = t.numel() * t.element_size()
        if current and size + nbytes > limit:
            shards.append(current)
            current, size = {}, 0
        current[name] = t
        size += nbytes
        params += t.numel()
    shards.append(current)
    weight_map = {}
    for i, shard in enumerate(shards):
        fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, os.path.join(args.dir, fname), metadata={"format": "pt"})
        weight_map.update({name: fname for name in shard})
    with open(os.path.join(args.dir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": sum(
            t.numel() * t.element_size() for s in shards for t in s.values())},
            "weight_map": weight_map}, f, indent=1)
    config = {
        "architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2",
        "vocab_size": VOCAB, "hidden_size": D, "intermediate_size": MLP,
        "num_hidden_layers": args.layers, "num_attention_heads": HEADS,
        "num_key_value_heads": KV, "head_dim": HEAD_DIM, "query_pre_attn_scalar": 256,
        "sliding_window": 4096, "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0,
        "hidden_activation": "gelu_pytorch_tanh", "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
        "max_position_embeddings": 8192, "tie_word_embeddings": True,
        "bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0, "torch_dtype": "bfloat16",
    }
    with open(os.path.join(args.dir, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    print(f"{args.dir}: {params:,} parameters in {len(shards)} shards;"
          f" f32 size {params * 4 / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
