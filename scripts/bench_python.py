"""Python read side: the hhtld package against safetensors on the BF16 copy.

usage: bench_python.py HHTLD_FILE BF16_SAFETENSORS [--reps N] [--rows N]

Both sides return torch tensors (numpy has no bfloat16, so safetensors
cannot load the BF16 copy as numpy arrays). Each repetition times every
variant once, in alternating order, each time from opening the file; the
table gives median times and the median of the per-repetition ratios
safetensors time / hhtld time (> 1: hhtld faster, as in BENCHMARKS.md). Files are
read from the page cache (every variant reads its file once before timing).
Prints a markdown table (scripts/bench.sh appends it to results.md).
"""

import argparse
import statistics
import time

import numpy as np
import safetensors
import torch

import hhtld

EMB = "embeddings.word_embeddings.weight"


FLOATS = set()  # names of float tensors (filled in main): the ones `dtype` applies to


def hh_all(path, dtype):
    with hhtld.safe_open(path, framework="pt") as f:
        return [f.get_tensor(k, dtype=dtype if k in FLOATS else None) for k in f.keys()]


def st_all(path):
    with safetensors.safe_open(path, framework="pt") as f:
        return [f.get_tensor(k) for k in f.keys()]


def st_all_owned(path):
    # safetensors' tensors are views of the mapped file; an owned copy is
    # what hhtld returns.
    with safetensors.safe_open(path, framework="pt") as f:
        return [f.get_tensor(k).clone() for k in f.keys()]


def hh_rows_batch(path, ids):
    with hhtld.safe_open(path, framework="pt") as f:
        return f.get_slice(EMB)[ids]


def st_rows_batch(path, ids):
    # safetensors slices take no index lists: read the table, then gather.
    with safetensors.safe_open(path, framework="pt") as f:
        return f.get_tensor(EMB)[torch.from_numpy(ids)]


def hh_rows_loop(path, ids):
    with hhtld.safe_open(path, framework="pt") as f:
        s = f.get_slice(EMB)
        return [s[int(i)] for i in ids]


def st_rows_loop(path, ids):
    with safetensors.safe_open(path, framework="pt") as f:
        s = f.get_slice(EMB)
        return [s[int(i)] for i in ids]


def timed(fn, *args):
    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("hhtld_file")
    ap.add_argument("bf16_file")
    ap.add_argument("--reps", type=int, default=21)
    ap.add_argument("--rows", type=int, default=10_000)
    a = ap.parse_args()

    with hhtld.safe_open(a.hhtld_file) as f:
        n_vocab = f.get_slice(EMB).get_shape()[0]
        FLOATS.update(k for k in f.keys() if f.tensor_info(k)["dtype"] in ("F32", "F16", "BF16", "F64"))
    ids = np.random.default_rng(42).integers(0, n_vocab, size=a.rows)

    # (label, hhtld variant, safetensors variant)
    cases = [
        ("read every tensor (hhtld to BF16)", lambda: hh_all(a.hhtld_file, "bfloat16"), lambda: st_all(a.bf16_file)),
        ("read every tensor (hhtld to F32, its original dtype)", lambda: hh_all(a.hhtld_file, None), lambda: st_all(a.bf16_file)),
        ("read every tensor (hhtld to BF16; safetensors .clone() of each, an owned copy)",
         lambda: hh_all(a.hhtld_file, "bfloat16"), lambda: st_all_owned(a.bf16_file)),
        (f"{a.rows:,} random embedding rows, one call (hhtld slice[ids]; safetensors get_tensor()[ids])",
         lambda: hh_rows_batch(a.hhtld_file, ids), lambda: st_rows_batch(a.bf16_file, ids)),
        (f"{a.rows:,} random embedding rows, one slice[i] call per row",
         lambda: hh_rows_loop(a.hhtld_file, ids), lambda: st_rows_loop(a.bf16_file, ids)),
    ]
    # The answers must agree before anything is timed.
    got, want = hh_rows_batch(a.hhtld_file, ids), st_rows_batch(a.bf16_file, ids)
    assert got.shape == want.shape == (a.rows, 384)
    cos = torch.nn.functional.cosine_similarity(got.float(), want.float(), dim=1)
    assert float(cos.min()) > 0.8, float(cos.min())
    for _, h, s in cases:
        h(), s()

    print(f"torch {torch.__version__}, numpy {np.__version__}, safetensors {safetensors.__version__}, "
          f"hhtld {hhtld.__version__}; {a.reps} interleaved repetitions; "
          f"{torch.get_num_threads()} torch threads")
    print()
    print("| operation | hhtld | safetensors (BF16) | ratio safetensors/hhtld |")
    print("|---|---:|---:|---:|")
    for label, h, s in cases:
        th, ts, ratios = [], [], []
        for r in range(a.reps):
            if r % 2:
                x = timed(h)
                y = timed(s)
            else:
                y = timed(s)
                x = timed(h)
            th.append(x)
            ts.append(y)
            ratios.append(y / x)
        print(f"| {label} | {statistics.median(th) * 1e3:.2f} ms | {statistics.median(ts) * 1e3:.2f} ms | "
              f"{statistics.median(ratios):.2f} |")


if __name__ == "__main__":
    main()
