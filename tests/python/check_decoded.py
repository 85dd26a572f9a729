"""Checks an `hhtld decode` output with the official Python safetensors
package: same tensor names, shapes, dtypes and on-disk order as the
original, passthrough tensors bit-exact, and every encoded tensor over its
gate (per-row Pearson rho over all rows, computed here with numpy).

usage: check_decoded.py ORIGINAL.safetensors DECODED.safetensors INSPECT.json
"""

import json
import struct
import sys

import numpy as np
from safetensors.numpy import load_file

GATES = {"index": (0.98, 0.95), "argmax": (0.95, 0.90)}


def data_order(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    return [k for k, _ in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"])]


def row_rhos(x, y):
    x = x.reshape(x.shape[0], -1).astype(np.float64)
    y = y.reshape(y.shape[0], -1).astype(np.float64)
    xc = x - x.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=1, keepdims=True)
    num = (xc * yc).sum(axis=1)
    den = np.sqrt((xc * xc).sum(axis=1) * (yc * yc).sum(axis=1))
    return np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)


def main():
    orig_path, dec_path, inspect_path = sys.argv[1:4]
    orig = load_file(orig_path)
    dec = load_file(dec_path)
    meta = {t["name"]: t for t in json.load(open(inspect_path))["tensors"]}
    problems = []
    if sorted(orig) != sorted(dec):
        problems.append("tensor names differ")
    if data_order(orig_path) != data_order(dec_path):
        problems.append("tensor order differs")
    exact = gated = 0
    for name, a in orig.items():
        b = dec.get(name)
        if b is None:
            continue
        if a.shape != b.shape or a.dtype != b.dtype:
            problems.append(f"{name}: {b.shape} {b.dtype} != {a.shape} {a.dtype}")
            continue
        t = meta[name]
        if t["encoding"] == "raw":
            if a.tobytes() != b.tobytes():
                problems.append(f"{name}: passthrough bytes differ")
            exact += 1
            continue
        rho = np.sort(row_rhos(a, b))
        median = float(np.median(rho))
        p5 = float(rho[int(np.floor(0.05 * (len(rho) - 1)))])
        want_median, want_p5 = GATES[t["regime"]]
        # 1e-4 allows for f64 here against f32 sums in the encoder.
        if median < want_median - 1e-4 or p5 < want_p5 - 1e-4:
            problems.append(f"{name}: rho median {median:.4f} p5 {p5:.4f} misses {t['regime']} gate")
        gated += 1
    for p in problems:
        print("check_decoded:", p)
    print(f"check_decoded: {len(dec)} tensors, {exact} bit-exact, {gated} over their gate, {len(problems)} problems")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
