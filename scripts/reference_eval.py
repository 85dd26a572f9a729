#!/usr/bin/env python3
"""Independent reference forward pass of a BERT sentence encoder (all-MiniLM-L6-v2) in numpy.

Compares the sentence embeddings of two sets of weights (ORIGINAL and OTHER, both safetensors)
on one text file and prints how far OTHER moves the model's output. It shares no code with the
Rust `hhtld eval`; both must compute the figures defined here, and agree to 0.003 in cos_mean.

    "$HHTLD_PYTHON" scripts/reference_eval.py ORIGINAL.safetensors OTHER.safetensors \
        --tokenizer tokenizer.json --text data/text/eval.txt [--json] [--max-len 256]

OTHER may also be a `.hhtld` file: it is decoded to F32 safetensors first with
`$HHTLD_BIN decode` (default `hhtld` on PATH).

    "$HHTLD_PYTHON" scripts/reference_eval.py ORIGINAL.safetensors --anchors --tokenizer ... --text ...

evaluates round-to-nearest anchors of ORIGINAL instead: int8 per row, int5 in groups of 32,
int4 in groups of 32 along each row (symmetric, scale = absmax / (2^(b-1) - 1) stored as f16,
codes clamped to [-2^(b-1), 2^(b-1) - 1]), applied to every float tensor of 2 or more
dimensions; 1-D tensors stay as they are. Their "ratio" is a BF16 copy of every tensor (float
tensors 2 bytes per element, others as stored) over b/8 bytes per quantised weight plus 2
bytes per group scale plus the unquantised tensors as stored.

Model (BERT, post-LayerNorm, as in the original paper and HF `BertModel`):
- tokens: the `tokenizers` package loads tokenizer.json; its own padding and truncation
  settings are turned off; special tokens ([CLS] ... [SEP]) are added; a sentence longer than
  `--max-len` tokens (default 256, sentence-transformers' `max_seq_length` for MiniLM; read
  from `sentence_bert_config.json` when it sits beside the tokenizer) is cut to that length
  (the last kept token is then not [SEP], exactly as the tokenizer's own truncation does).
  token_type_ids are all 0, position ids 0..len-1.
- embeddings: word + position + token_type, then LayerNorm (eps from config, 1e-12).
- each of the 6 layers: q, k, v = x W^T + b; 12 heads of 32; scores = q k^T / sqrt(32) plus
  a large negative number on padded keys; softmax; context; attention output dense, residual,
  LayerNorm; FFN intermediate dense, GELU with erf (not the tanh approximation), output dense,
  residual, LayerNorm.
- pooling: mean of the last hidden states over the attention mask (so [CLS] and [SEP] count),
  then L2 normalisation.
Computed in float32 (float64 reductions for the metrics).

Sentences: every line of the text file with its surrounding whitespace stripped; empty lines
are skipped.

Metrics (n sentences, e_i = ORIGINAL's unit embedding of sentence i, f_i = OTHER's):
- cos_i = <e_i, f_i>.
- cos_mean = mean of cos_i; cos_min = min of cos_i;
  cos_p1 = 1st percentile of cos_i with linear interpolation between order statistics
  (numpy's default: sorted values v_0 <= ... <= v_{n-1}, position 0.01 * (n - 1)).
- top10_overlap: for each i, A_i = the 10 sentences j != i with the highest <e_i, e_j>,
  B_i = the same with f; overlap_i = |A_i & B_i| / 10; top10_overlap = mean over i.
  Ties in similarity are broken by the lower index j. (With n <= 10, k = n - 1.)
- spearman: Spearman rank correlation between the n(n-1)/2 pairwise similarities
  <e_i, e_j> and <f_i, f_j> over all pairs i < j: ranks (ties get the average rank), then
  the Pearson correlation of the two rank vectors.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np

# ---------------------------------------------------------------------------------------------
# Weights and model


def load_safetensors(path: str) -> dict[str, np.ndarray]:
    """All tensors of a safetensors file as numpy arrays (float tensors as float32)."""
    from safetensors.numpy import load_file

    out = {}
    for name, arr in load_file(path).items():
        if arr.dtype.kind == "f" or arr.dtype.name == "bfloat16":
            arr = arr.astype(np.float32)
        out[name] = arr
    return out


def load_weights(path: str) -> dict[str, np.ndarray]:
    """Weights from safetensors, or from a .hhtld file decoded to F32 by `hhtld decode`."""
    if path.endswith(".hhtld"):
        hhtld = os.environ.get("HHTLD_BIN", "hhtld")
        with tempfile.TemporaryDirectory() as tmp:
            dest = os.path.join(tmp, "decoded.safetensors")
            subprocess.run([hhtld, "decode", path, "--dtype", "f32", "-o", dest], check=True,
                           stdout=subprocess.DEVNULL)
            return load_safetensors(dest)
    return load_safetensors(path)


class Bert:
    """BERT encoder over a weight dict (names with or without a `bert.` prefix)."""

    def __init__(self, w: dict[str, np.ndarray], config: dict):
        self.w = {k[5:] if k.startswith("bert.") else k: v for k, v in w.items()}
        self.layers = int(config.get("num_hidden_layers", 6))
        self.heads = int(config.get("num_attention_heads", 12))
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        act = config.get("hidden_act", "gelu")
        if act != "gelu":
            raise SystemExit(f"unsupported hidden_act {act!r} (only erf GELU)")

    def _ln(self, x, prefix):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + self.eps) * self.w[prefix + ".weight"] + self.w[prefix + ".bias"]

    def _linear(self, x, prefix, hook):
        if hook is not None:
            hook(prefix, x)
        y = x.reshape(-1, x.shape[-1]) @ self.w[prefix + ".weight"].T + self.w[prefix + ".bias"]
        return y.reshape(x.shape[:-1] + (y.shape[-1],))

    def forward(self, ids: np.ndarray, mask: np.ndarray, hook=None) -> np.ndarray:
        """Unit sentence embeddings of a padded batch (ids, mask: [batch, len]).

        `hook(name, x)` (optional) sees the input of every linear layer, with x of shape
        [batch, len, in_features]; padded positions are included (callers mask them)."""
        b, n = ids.shape
        w = self.w
        x = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][np.arange(n)][None]
             + w["embeddings.token_type_embeddings.weight"][0][None, None])
        x = self._ln(x.astype(np.float32), "embeddings.LayerNorm")
        hd = x.shape[-1] // self.heads
        neg = np.where(mask[:, None, None, :] > 0, 0.0, -1e30).astype(np.float32)
        for i in range(self.layers):
            p = f"encoder.layer.{i}"
            q = self._linear(x, p + ".attention.self.query", hook)
            k = self._linear(x, p + ".attention.self.key", hook)
            v = self._linear(x, p + ".attention.self.value", hook)
            split = lambda t: t.reshape(b, n, self.heads, hd).transpose(0, 2, 1, 3)
            q, k, v = split(q), split(k), split(v)
            s = q @ k.transpose(0, 1, 3, 2) / np.float32(math.sqrt(hd)) + neg
            s = s - s.max(-1, keepdims=True)
            e = np.exp(s)
            a = e / e.sum(-1, keepdims=True)
            ctx = (a @ v).transpose(0, 2, 1, 3).reshape(b, n, -1)
            o = self._linear(ctx, p + ".attention.output.dense", hook)
            x = self._ln(o + x, p + ".attention.output.LayerNorm")
            h = self._linear(x, p + ".intermediate.dense", hook)
            h = gelu_erf(h)
            o = self._linear(h, p + ".output.dense", hook)
            x = self._ln(o + x, p + ".output.LayerNorm")
        m = mask[..., None].astype(np.float32)
        pooled = (x * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=-1, keepdims=True), 1e-12)


def erf(x: np.ndarray) -> np.ndarray:
    """erf to float32 accuracy (W. J. Cody's rational approximations are overkill here:
    Abramowitz & Stegun 7.1.26 has |error| <= 1.5e-7)."""
    f = np.float32
    a = np.abs(x)
    t = f(1.0) / (f(1.0) + f(0.3275911) * a)
    p = ((((f(1.061405429) * t - f(1.453152027)) * t + f(1.421413741)) * t - f(0.284496736)) * t
         + f(0.254829592)) * t
    y = f(1.0) - p * np.exp(-a * a)
    return np.copysign(y, x)


def gelu_erf(x: np.ndarray) -> np.ndarray:
    return np.float32(0.5) * x * (np.float32(1.0) + erf(x / np.float32(math.sqrt(2.0))))


# ---------------------------------------------------------------------------------------------
# Text


def read_sentences(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [s for s in (line.strip() for line in f) if s]


def make_tokenizer(path: str, max_len: int):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(path)
    tok.no_padding()
    tok.enable_truncation(max_len)
    return tok


def tokenize(tok, sentences: list[str]) -> list[list[int]]:
    return [e.ids for e in tok.encode_batch(sentences, add_special_tokens=True)]


def embed(model: Bert, ids: list[list[int]], batch: int = 32, hook=None) -> np.ndarray:
    """Unit embeddings [n, hidden] of tokenized sentences, batched by similar length."""
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out = None
    for start in range(0, len(order), batch):
        idx = order[start:start + batch]
        n = max(len(ids[i]) for i in idx)
        a = np.zeros((len(idx), n), dtype=np.int64)
        m = np.zeros((len(idx), n), dtype=np.int64)
        for r, i in enumerate(idx):
            a[r, :len(ids[i])] = ids[i]
            m[r, :len(ids[i])] = 1
        e = model.forward(a, m, hook=(None if hook is None else
                                      (lambda name, x, m=m: hook(name, x, m))))
        if out is None:
            out = np.zeros((len(ids), e.shape[1]), dtype=np.float32)
        out[idx] = e
    return out


# ---------------------------------------------------------------------------------------------
# Metrics


def rankdata(v: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties get the average of the ranks they span."""
    order = np.argsort(v, kind="stable")
    sv = v[order]
    ranks = np.empty(len(v), dtype=np.float64)
    # boundaries of runs of equal values
    starts = np.flatnonzero(np.r_[True, sv[1:] != sv[:-1]])
    ends = np.r_[starts[1:], len(v)]
    avg = (starts + ends - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def top_k(sim: np.ndarray, k: int) -> list[set[int]]:
    n = sim.shape[0]
    out = []
    for i in range(n):
        s = sim[i].copy()
        s[i] = -np.inf
        # stable sort on -s: ties keep the lower index first
        out.append(set(np.argsort(-s, kind="stable")[:k].tolist()))
    return out


def compare(e: np.ndarray, f: np.ndarray) -> dict:
    """The metrics defined in the module docstring, for unit embeddings e (original), f."""
    e = e.astype(np.float64)
    f = f.astype(np.float64)
    n = e.shape[0]
    cos = (e * f).sum(1)
    se, sf = e @ e.T, f @ f.T
    k = min(10, n - 1)
    if k > 0:
        ta, tb = top_k(se, k), top_k(sf, k)
        overlap = float(np.mean([len(a & b) / k for a, b in zip(ta, tb)]))
    else:
        overlap = float("nan")
    iu = np.triu_indices(n, 1)
    if len(iu[0]) >= 2:
        ra, rb = rankdata(se[iu]), rankdata(sf[iu])
        ra -= ra.mean()
        rb -= rb.mean()
        den = math.sqrt(float((ra * ra).sum() * (rb * rb).sum()))
        spearman = float((ra * rb).sum() / den) if den > 0 else float("nan")
    else:
        spearman = float("nan")
    return {
        "sentences": int(n),
        "cos_mean": float(cos.mean()),
        "cos_p1": float(np.percentile(cos, 1)),
        "cos_min": float(cos.min()),
        "top10_overlap": overlap,
        "spearman": spearman,
    }


def default_max_len(tokenizer_path: str) -> int:
    cfg = os.path.join(os.path.dirname(os.path.abspath(tokenizer_path)), "sentence_bert_config.json")
    if os.path.exists(cfg):
        with open(cfg) as f:
            return int(json.load(f).get("max_seq_length", 256))
    return 256


def default_config(tokenizer_path: str) -> dict:
    cfg = os.path.join(os.path.dirname(os.path.abspath(tokenizer_path)), "config.json")
    if os.path.exists(cfg):
        with open(cfg) as f:
            return json.load(f)
    return {}


ANCHORS = (("int8 per row", 8, None), ("int5 g32", 5, 32), ("int4 g32", 4, 32))


def rtn(w: np.ndarray, bits: int, group: int | None) -> np.ndarray:
    """Symmetric round-to-nearest of a matrix's rows in groups of `group` columns (None: whole
    row), f16 scale per group, as the docstring defines."""
    rows, cols = w.shape[0], int(np.prod(w.shape[1:]))
    g = group or cols
    n = -(-cols // g)
    x = np.zeros((rows, n * g), dtype=np.float32)
    x[:, :cols] = w.reshape(rows, cols)
    x = x.reshape(rows, n, g)
    qmax = 2 ** (bits - 1) - 1
    scale = (np.abs(x).max(-1, keepdims=True) / qmax).astype(np.float16).astype(np.float32)
    scale[scale == 0] = 1.0
    q = np.clip(np.round(x / scale), -qmax - 1, qmax) * scale
    return q.reshape(rows, n * g)[:, :cols].reshape(w.shape)


def anchor(w: dict[str, np.ndarray], raw_bytes: dict[str, int], bits: int, group: int | None):
    """(weights, ratio vs a BF16 copy) of one anchor."""
    out, size, bf16 = {}, 0, 0
    for name, t in w.items():
        floating = t.dtype.kind == "f"
        bf16 += t.size * 2 if floating else t.nbytes
        if floating and t.ndim >= 2:
            out[name] = rtn(t, bits, group)
            cols = int(np.prod(t.shape[1:]))
            groups = t.shape[0] * -(-cols // (group or cols))
            size += t.size * bits / 8 + groups * 2
        else:
            out[name] = t
            size += raw_bytes[name]
    return out, bf16 / size


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("original", help="original weights (safetensors)")
    ap.add_argument("other", nargs="?",
                    help="weights to compare (safetensors, or .hhtld via `hhtld decode`)")
    ap.add_argument("--anchors", action="store_true",
                    help="instead of OTHER, evaluate round-to-nearest anchors of ORIGINAL")
    ap.add_argument("--tokenizer", required=True, help="tokenizer.json of the model")
    ap.add_argument("--text", required=True, help="one sentence per line")
    ap.add_argument("--config", help="config.json (default: beside the tokenizer, else MiniLM's)")
    ap.add_argument("--max-len", type=int, help="token limit per sentence (default 256)")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = ap.parse_args(argv)

    config = default_config(args.tokenizer)
    if args.config:
        with open(args.config) as f:
            config = json.load(f)
    max_len = args.max_len or default_max_len(args.tokenizer)
    tok = make_tokenizer(args.tokenizer, max_len)
    ids = tokenize(tok, read_sentences(args.text))
    if not ids:
        print(f"error: {args.text}: no sentences", file=sys.stderr)
        return 2
    if (args.other is None) == (not args.anchors):
        print("error: give OTHER or --anchors (one of them)", file=sys.stderr)
        return 2
    original = load_weights(args.original)
    e = embed(Bert(original, config), ids)
    if args.anchors:
        from safetensors import safe_open

        with safe_open(args.original, "numpy") as f:
            raw = {k: f.get_tensor(k).nbytes for k in f.keys()}
        rows = []
        for label, bits, group in ANCHORS:
            w, ratio = anchor(original, raw, bits, group)
            r = compare(e, embed(Bert(w, config), ids))
            rows.append({"weights": label, "ratio": ratio, **r})
        if args.json:
            print(json.dumps(rows))
        else:
            print(f"{'weights':14} {'ratio':>7} {'cos_mean':>9} {'cos_p1':>9} {'cos_min':>9} "
                  f"{'top10':>7} {'spearman':>9}")
            for r in rows:
                print(f"{r['weights']:14} {r['ratio']:6.2f}: {r['cos_mean']:9.5f} {r['cos_p1']:9.5f} "
                      f"{r['cos_min']:9.5f} {r['top10_overlap']:7.3f} {r['spearman']:9.5f}")
        return 0
    f = embed(Bert(load_weights(args.other), config), ids)
    r = compare(e, f)
    if args.json:
        print(json.dumps(r))
    else:
        for key in ("sentences", "cos_mean", "cos_p1", "cos_min", "top10_overlap", "spearman"):
            v = r[key]
            print(f"{key:14} {v}" if isinstance(v, int) else f"{key:14} {v:.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
