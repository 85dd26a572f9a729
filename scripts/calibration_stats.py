#!/usr/bin/env python3
"""Calibration statistics of a BERT sentence encoder, computed with the numpy forward pass of
scripts/reference_eval.py: for every linear weight, G = mean over the NON-PADDING tokens of
x x^T, x its input (one vector of in_features per token). Written as a safetensors file in the
layout `hhtld_writer::calibration::Calibration::load` reads: one f32 [cols, cols] tensor per
weight name (as in the model's safetensors), metadata `calibration.text_sha256` (SHA-256 of
the bytes of the text lines used, newlines included), `calibration.sentences`,
`calibration.tokens` and `tokens.<name>` per weight.

    "$HHTLD_PYTHON" scripts/calibration_stats.py MODEL.safetensors -o stats.safetensors \
        --tokenizer tokenizer.json --text data/text/calib.txt [--lines 1-500]

It is independent of the candle calibration pass in the Rust encoder and serves as its check.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_eval as ref  # noqa: E402


def select_lines(path: str, spec: str | None) -> tuple[list[str], bytes]:
    """Lines `spec` ("A-B", 1-based, inclusive; None = all) of the file: the stripped non-empty
    sentences and the raw bytes of those lines."""
    with open(path, "rb") as f:
        raw = f.read().splitlines(keepends=True)
    if spec:
        a, b = (int(v) for v in spec.split("-"))
        if not 1 <= a <= b:
            raise SystemExit(f"bad --lines {spec!r}")
        raw = raw[a - 1:b]
    sentences = [s for s in (line.decode("utf-8").strip() for line in raw) if s]
    return sentences, b"".join(raw)


def gram_stats(model: ref.Bert, ids: list[list[int]]) -> tuple[dict[str, np.ndarray], int]:
    """(name -> G as float64, token count) over the non-padding tokens of `ids`."""
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}

    def hook(name, x, mask):
        keep = mask.reshape(-1) > 0
        v = x.reshape(-1, x.shape[-1])[keep].astype(np.float64)
        key = name + ".weight"
        if key not in sums:
            sums[key] = np.zeros((v.shape[1], v.shape[1]))
            counts[key] = 0
        sums[key] += v.T @ v
        counts[key] += int(v.shape[0])

    ref.embed(model, ids, hook=hook)
    tokens = sum(len(s) for s in ids)
    out = {}
    for k, s in sums.items():
        if counts[k] != tokens:
            raise SystemExit(f"{k}: saw {counts[k]} tokens, expected {tokens}")
        out[k] = s / counts[k]
    return out, tokens


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="original weights (safetensors)")
    ap.add_argument("-o", "--output", required=True, help="statistics file to write")
    ap.add_argument("--tokenizer", required=True, help="tokenizer.json of the model")
    ap.add_argument("--text", required=True, help="calibration text, one sentence per line")
    ap.add_argument("--lines", help="use only lines A-B of the text (1-based, inclusive)")
    ap.add_argument("--config", help="config.json (default: beside the tokenizer)")
    ap.add_argument("--max-len", type=int, help="token limit per sentence (default 256)")
    args = ap.parse_args(argv)

    from safetensors.numpy import save_file

    config = ref.default_config(args.tokenizer)
    if args.config:
        import json

        with open(args.config) as f:
            config = json.load(f)
    max_len = args.max_len or ref.default_max_len(args.tokenizer)
    sentences, raw = select_lines(args.text, args.lines)
    if not sentences:
        print(f"error: {args.text}: no sentences", file=sys.stderr)
        return 2
    ids = ref.tokenize(ref.make_tokenizer(args.tokenizer, max_len), sentences)
    grams, tokens = gram_stats(ref.Bert(ref.load_weights(args.model), config), ids)
    # Symmetric by construction; make it exactly so after the f32 rounding.
    tensors = {k: ((g + g.T) / 2).astype(np.float32) for k, g in grams.items()}
    meta = {
        "calibration.text_sha256": hashlib.sha256(raw).hexdigest(),
        "calibration.sentences": str(len(sentences)),
        "calibration.tokens": str(tokens),
    }
    meta.update({f"tokens.{k}": str(tokens) for k in tensors})
    tmp = args.output + ".tmp"
    save_file(tensors, tmp, metadata=meta)
    os.replace(tmp, args.output)
    print(f"{len(tensors)} weights, {len(sentences)} sentences, {tokens} tokens -> {args.output}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
