"""Checks of scripts/reference_eval.py's metric definitions and numerics (no model needed)."""

import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "scripts"))
import reference_eval as R  # noqa: E402


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_identical_embeddings_give_perfect_scores():
    e = unit(np.random.default_rng(1).normal(size=(30, 8)))
    r = R.compare(e, e)
    assert r["sentences"] == 30
    for key in ("cos_mean", "cos_p1", "cos_min", "top10_overlap", "spearman"):
        assert abs(r[key] - 1.0) < 1e-12, key


def test_cosines_percentile_and_min_follow_the_definition():
    rng = np.random.default_rng(2)
    e = unit(rng.normal(size=(50, 16)))
    f = unit(e + 0.3 * rng.normal(size=e.shape))
    cos = (e * f).sum(1)
    r = R.compare(e, f)
    assert math.isclose(r["cos_mean"], cos.mean(), rel_tol=1e-12)
    assert math.isclose(r["cos_min"], cos.min(), rel_tol=1e-12)
    s = np.sort(cos)
    pos = 0.01 * (len(s) - 1)
    lo = int(math.floor(pos))
    want = s[lo] + (pos - lo) * (s[lo + 1] - s[lo])
    assert math.isclose(r["cos_p1"], want, rel_tol=1e-12)
    assert r["cos_min"] <= r["cos_p1"] <= r["cos_mean"] < 1.0


def test_top10_overlap_counts_shared_neighbours():
    # reversing the order of the other model's embeddings moves most neighbours
    rng = np.random.default_rng(3)
    e = unit(rng.normal(size=(40, 6)))
    r = R.compare(e, e[::-1].copy())
    sim_e, sim_f = e @ e.T, e[::-1] @ e[::-1].T
    want = np.mean([len(a & b) / 10 for a, b in zip(R.top_k(sim_e, 10), R.top_k(sim_f, 10))])
    assert math.isclose(r["top10_overlap"], want)
    assert r["top10_overlap"] < 0.9


def test_rankdata_averages_ties():
    assert R.rankdata(np.array([3.0, 1.0, 3.0, 2.0])).tolist() == [3.5, 1.0, 3.5, 2.0]


def test_spearman_is_pearson_of_ranks_of_pairwise_similarities():
    rng = np.random.default_rng(4)
    e = unit(rng.normal(size=(20, 5)))
    f = unit(e + 0.5 * rng.normal(size=e.shape))
    iu = np.triu_indices(20, 1)
    a, b = (e @ e.T)[iu], (f @ f.T)[iu]
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    want = np.corrcoef(ra, rb)[0, 1]
    r = R.compare(e, f)
    assert math.isclose(r["spearman"], want, rel_tol=1e-9)
    assert 0.0 < r["spearman"] < 1.0


def test_gelu_uses_erf():
    x = np.linspace(-8, 8, 2001).astype(np.float32)
    want = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.astype(np.float64)])
    assert np.max(np.abs(R.gelu_erf(x) - want)) < 2e-6
