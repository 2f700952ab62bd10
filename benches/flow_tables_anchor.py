"""Torch twin of `benches/flow_tables.rs`: Feature Flow's top-k matching tables of a
Gemma-2-2B-shaped stack with random weights, layer by layer.

Per layer L (as `common::FlowLayer` in benches/common/mod.rs): R_{L-1} (layer 0: the
blocks.0.hook_resid_pre SAE), R_L and M_L decoders 16384 x 2304, the attn.hook_z decoder
16384 x 2048 and W_O 2048 x 2304 -- the very numbers ours uses (its SplitMix64 generator is
ported below, so both sides match the same decoders and their tables can be compared). Timed
per layer, as ours: the attention decoder mapped through W_O, the rows of R_L and of each
predecessor normalised, and for each predecessor the top-k cosines of every R_L row by tiles of
`t @ p.T` (--tile-rows x --tile-cols, never an F x F matrix), topk per tile, merged with the
running best across column tiles. Torch uses all the threads it uses by default. Only decoders
are made (matching reads nothing else); making them is not timed. Prints seconds per layer,
the total and the peak RSS (ru_maxrss).

    python benches/flow_tables_anchor.py [--layers 26] [--features 16384] [--k 1]
        [--tile-rows R] [--tile-cols C] [--check DIR]

`--check DIR` compares with our tables saved by
`FLOW_TABLES_SAVE=DIR FLOW_TABLES_FULL=N cargo bench --bench flow_tables` (same N and
FLOW_FEATURES). `benches/paired_anchors.py flow` imports `Layer` from here. Run with the
anchors' Python (../shared/anchors/setup.sh).
"""
import argparse
import os
import resource
import time

import numpy as np
import torch

LAYERS, F, D, D_Z = 26, 16384, 2304, 2048
# One 16384 x 2304 table on the 2-core bench machine (2026-12-03, interleaved, 3 rounds):
# 4096 x 4096 8.95-10.11 s, 1024 x 4096 (ours) 9.16-10.02 s, 2048 x 16384 9.81-10.63 s.
TILE_ROWS, TILE_COLS = 4096, 4096

M64 = (1 << 64) - 1
GAMMA = 0x9E3779B97F4A7C15


def _mix(z):
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def uniform_matrix(rows, cols, seed):
    """`common::uniform_matrix`: uniform in [-1, 1), one SplitMix64 stream per 256 rows."""
    out = torch.empty(rows, cols)
    view = out.numpy()
    block = 256
    with np.errstate(over="ignore"):
        for b, r0 in enumerate(range(0, rows, block)):
            r1 = min(r0 + block, rows)
            # SplitMix64::stream(seed, b): state = seed ^ b*C, one draw discarded; the j-th
            # value of the block is mix(state + (j + 2) * GAMMA).
            state = (seed ^ ((b * 0xD1B54A32D192ED03) & M64)) & M64
            n = (r1 - r0) * cols
            j = np.arange(2, n + 2, dtype=np.uint64)
            z = _mix(np.uint64(state) + j * np.uint64(GAMMA))
            vals = (z >> np.uint64(40)).astype(np.float32) / np.float32(1 << 23) - np.float32(1)
            view[r0:r1] = vals.reshape(r1 - r0, cols)
    return out


def seed(layer, what):
    """`common::flow_seed`: 0 res, 1 mlp, 2 att, 3 W_O."""
    return 0xF10E0000 + 4 * layer + what


EMB_SEED = 0xF10EE3B0


class Layer:
    """One layer's decoders (R_{L-1}, R_L, M_L, attn.hook_z) and W_O, as `common::FlowLayer`.
    `prev` may be given (the previous layer's `res`) instead of made again."""

    def __init__(self, layer, features=F, prev=None, d=D, d_z=D_Z):
        self.layer = layer
        if prev is None:
            prev = uniform_matrix(features, d, EMB_SEED if layer == 0 else seed(layer - 1, 0))
        self.prev = prev
        self.res = uniform_matrix(features, d, seed(layer, 0))
        self.mlp = uniform_matrix(features, d, seed(layer, 1))
        self.att_z = uniform_matrix(features, d_z, seed(layer, 2))
        self.w_o = uniform_matrix(d_z, d, seed(layer, 3))

    def tables(self, k=1, tile_rows=TILE_ROWS, tile_cols=TILE_COLS):
        """The timed call: {res, mlp, att: (indices [F, k], cosines [F, k])}."""
        with torch.no_grad():
            att = self.att_z @ self.w_o
            target = unit(self.res)
            return {name: top_k(target, unit(p), k, tile_rows, tile_cols)
                    for name, p in (("res", self.prev), ("mlp", self.mlp), ("att", att))}


def unit(w):
    return w / w.norm(dim=1, keepdim=True).clamp_min(1e-30)


def top_k(target, pred, k, tile_rows, tile_cols):
    """Every target row's k best cosines among pred's rows, best first."""
    n = target.shape[0]
    k = min(k, pred.shape[0])
    scores = torch.empty(n, k)
    indices = torch.empty(n, k, dtype=torch.long)
    for r0 in range(0, n, tile_rows):
        t = target[r0:r0 + tile_rows]
        best_v = best_i = None
        for c0 in range(0, pred.shape[0], tile_cols):
            v, i = torch.topk(t @ pred[c0:c0 + tile_cols].T, min(k, tile_cols), dim=1)
            i += c0
            if best_v is None:
                best_v, best_i = v, i
            elif k == 1:  # running max: keep the earlier column on ties, as ours
                better = v > best_v
                best_v = torch.where(better, v, best_v)
                best_i = torch.where(better, i, best_i)
            else:
                v, order = torch.topk(torch.cat([best_v, v], 1), k, dim=1)
                best_v, best_i = v, torch.cat([best_i, i], 1).gather(1, order)
        scores[r0:r0 + tile_rows], indices[r0:r0 + tile_rows] = best_v, best_i
    return indices, scores


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def check(tables, layer, directory):
    """Agreement with our saved tables of this layer: share of equal top-1 indices, and the
    largest cosine difference."""
    from safetensors.numpy import load_file

    ours = load_file(os.path.join(directory, f"layer{layer}.safetensors"))
    out = []
    for name, (idx, val) in tables.items():
        o_idx = torch.from_numpy(ours[f"{layer}.{name}.indices"])
        o_val = torch.from_numpy(ours[f"{layer}.{name}.scores"])
        same = (o_idx[:, 0] == idx[:, 0]).double().mean().item()
        diff = (o_val[:, 0] - val[:, 0]).abs().max().item()
        out.append(f"{name}: {same:.5f} same top-1, |cos diff| <= {diff:.1e}")
    return "; ".join(out)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--layers", type=int, default=LAYERS)
    p.add_argument("--features", type=int, default=F)
    p.add_argument("--k", type=int, default=1)
    p.add_argument("--tile-rows", type=int, default=TILE_ROWS)
    p.add_argument("--tile-cols", type=int, default=TILE_COLS)
    p.add_argument("--check", metavar="DIR", help="compare with our tables saved in DIR")
    args = p.parse_args()
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads: {args.layers} layers,"
          f" SAEs {args.features} x {D} (att {args.features} x {D_Z} through W_O {D_Z} x {D}),"
          f" top-{args.k}, tiles {args.tile_rows} x {args.tile_cols}", flush=True)
    prev = None
    total = made = 0.0
    times = []
    for layer in range(args.layers):
        start = time.perf_counter()
        lay = Layer(layer, args.features, prev)
        made += time.perf_counter() - start
        start = time.perf_counter()
        tables = lay.tables(args.k, args.tile_rows, args.tile_cols)
        secs = time.perf_counter() - start
        total += secs
        times.append(secs)
        assert all(t[0].shape == (args.features, args.k) for t in tables.values())
        line = f"layer {layer:2}: {secs:6.2f} s (3 tables)  peak RSS {peak_rss_mib():6.0f} MiB"
        if args.check:
            line += "  | " + check(tables, layer, args.check)
        print(line, flush=True)
        prev = lay.res
        del lay, tables
    times.sort()
    print(f"torch: {args.layers} layers, {total:.1f} s in all ({total / args.layers:.2f} s/layer,"
          f" median {times[len(times) // 2]:.2f}, min {times[0]:.2f}, max {times[-1]:.2f}),"
          f" peak RSS {peak_rss_mib():.0f} MiB; making the weights (not timed) {made:.1f} s")


if __name__ == "__main__":
    main()
