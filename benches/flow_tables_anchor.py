"""Torch twin of `benches/flow_tables.rs`'s full run: Feature Flow's top-1 matching tables for a
Gemma-2-2B-shaped stack with random weights, layer by layer.

Per layer: R_L, M_L (16384 x 2304) and an attn.hook_z SAE (16384 x 2048) are made (R_{L-1} is
the previous R_L); timed: the attention decoder mapped through W_O (2048 x 2304), rows
normalised, and for each of the three predecessors the top-1 cosine of every R_L row, by tiles
of 1024 x 4096 (never an F x F matrix), as ours. Prints seconds per layer, the total and the
peak RSS.

    python benches/flow_tables_anchor.py [--layers 26]

Run with the anchors' Python (../shared/anchors/setup.sh).
"""
import argparse
import resource
import time

import torch

F, D, D_Z = 16384, 2304, 2048
ROWS, COLS = 1024, 4096


def decoder(d, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(F, d, generator=g) * 2 - 1


def unit(w):
    return w / w.norm(dim=1, keepdim=True).clamp_min(1e-12)


def top1(target, pred):
    best = torch.full((target.shape[0],), -float("inf"))
    idx = torch.zeros(target.shape[0], dtype=torch.long)
    for r0 in range(0, target.shape[0], ROWS):
        t = target[r0:r0 + ROWS]
        b_val = torch.full((t.shape[0],), -float("inf"))
        b_idx = torch.zeros(t.shape[0], dtype=torch.long)
        for c0 in range(0, pred.shape[0], COLS):
            v, i = (t @ pred[c0:c0 + COLS].T).max(dim=1)
            better = v > b_val
            b_val = torch.where(better, v, b_val)
            b_idx = torch.where(better, i + c0, b_idx)
        best[r0:r0 + ROWS], idx[r0:r0 + ROWS] = b_val, b_idx
    return idx, best


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--layers", type=int, default=26)
    args = p.parse_args()
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    prev = decoder(D, 0)
    total = 0.0
    with torch.no_grad():
        for layer in range(args.layers):
            res, mlp, att_z = decoder(D, 3 * layer + 1), decoder(D, 3 * layer + 2), decoder(D_Z, 3 * layer + 3)
            w_o = torch.rand(D_Z, D, generator=torch.Generator().manual_seed(1000 + layer)) * 2 - 1
            start = time.perf_counter()
            att = att_z @ w_o
            target = unit(res)
            tables = [top1(target, unit(p)) for p in (prev, mlp, att)]
            secs = time.perf_counter() - start
            total += secs
            assert tables[2][0].shape[0] == F
            print(f"layer {layer:2}: {secs:6.2f} s (3 tables)  peak RSS {peak_rss_mib():7.0f} MiB",
                  flush=True)
            prev = res
    print(f"torch: {args.layers} layers, {total:.1f} s in all ({total / args.layers:.2f} s/layer),"
          f" peak RSS {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
