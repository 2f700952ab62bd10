"""Best and mean time per iteration of every criterion benchmark run so far.

The Python anchors in ../shared/anchors report the best of a few runs; criterion reports a
mean. To compare like with like, print both from criterion's raw samples:

    python3 benches/criterion_best.py [TARGET_DIR]

TARGET_DIR defaults to $CARGO_TARGET_DIR, else ./target. Standard library only.
"""
import glob
import json
import os
import sys

target = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("CARGO_TARGET_DIR", "target")
root = os.path.join(target, "criterion")
for path in sorted(glob.glob(os.path.join(root, "**", "new", "sample.json"), recursive=True)):
    sample = json.load(open(path))
    per_iter = [t / n for t, n in zip(sample["times"], sample["iters"])]
    mean = sum(sample["times"]) / sum(sample["iters"])
    name = os.path.relpath(os.path.dirname(os.path.dirname(path)), root)
    print(f"{name}: best {min(per_iter) / 1e6:.2f} ms, mean {mean / 1e6:.2f} ms")
