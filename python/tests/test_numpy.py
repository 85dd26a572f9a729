"""The numpy side of the package against `hhtld decode` and the spec vectors."""

import json
import shutil
import struct
import sys
import threading
import time

import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import load_file as st_load_file

import hhtld
from conftest import run_cli

EMB = "embeddings.word_embeddings.weight"

# numpy type of every stored dtype name, spelled out from the name itself
# ("I16" -> int16) rather than copied from the package's own table.
NP_TYPES = {
    "BOOL": np.bool_,
    "BF16": ml_dtypes.bfloat16,
    "F8_E4M3": ml_dtypes.float8_e4m3fn,
    "F8_E5M2": ml_dtypes.float8_e5m2,
    **{f"F{bits}": getattr(np, f"float{bits}") for bits in (16, 32, 64)},
    **{
        f"{kind}{bits}": getattr(np, f"{prefix}{bits}")
        for kind, prefix in (("I", "int"), ("U", "uint"))
        for bits in (8, 16, 32, 64)
    },
}


def st_raw(path):
    """name -> (dtype, shape, bytes) of a safetensors file, parsed by hand so
    that every dtype (BF16, F8) is compared as stored."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    header.pop("__metadata__", None)
    body = data[8 + n :]
    return {
        k: (v["dtype"], tuple(v["shape"]), body[v["data_offsets"][0] : v["data_offsets"][1]])
        for k, v in header.items()
    }


def valid_vectors(root):
    return sorted((root / "spec" / "vectors" / "valid").glob("*.hhtld"))


def invalid_vectors(root):
    return sorted((root / "spec" / "vectors" / "invalid").glob("*.hhtld"))


# --- MiniLM, every tensor ----------------------------------------------------


def test_every_minilm_tensor_equals_the_cli_decode_bit_for_bit(minilm):
    enc, dec, _ = minilm
    ref = st_load_file(str(dec))
    with hhtld.safe_open(enc, framework="np") as f:
        keys = f.keys()
        assert keys == sorted(ref)
        assert len(keys) == 104
        for name in keys:
            got = f.get_tensor(name)
            want = ref[name]
            assert got.dtype == want.dtype, name
            assert got.shape == want.shape, name
            assert got.tobytes() == want.tobytes(), name
            assert got.flags.c_contiguous and got.flags.owndata and got.flags.writeable, name


def test_load_file_gives_the_same_dict(minilm):
    enc, dec, _ = minilm
    ref = st_load_file(str(dec))
    got = hhtld.numpy.load_file(enc)
    assert list(got) == sorted(ref)  # read in file order, listed like keys()
    for name, want in ref.items():
        assert got[name].dtype == want.dtype and got[name].shape == want.shape
        assert got[name].tobytes() == want.tobytes(), name


def test_file_order_is_a_permutation_of_the_keys_and_prefetch_changes_nothing(minilm):
    enc, dec, _ = minilm
    ref = st_load_file(str(dec))
    with hhtld.safe_open(enc, framework="np") as f:
        order = f.keys_in_file_order()
        assert sorted(order) == f.keys()
        # The writer groups tensors that share palettes across layers, so
        # file order is not name order on MiniLM.
        assert order != f.keys()
        assert f.prefetch() is None
        for name in order:
            assert f.get_tensor(name).tobytes() == ref[name].tobytes(), name
    f.close()
    with pytest.raises(ValueError, match="closed"):
        f.prefetch()
    with pytest.raises(ValueError, match="closed"):
        f.keys_in_file_order()


def test_requested_dtypes_round_the_f32_decode_once(minilm):
    enc, _, dec_bf16 = minilm
    bf16_ref = st_raw(dec_bf16)
    with hhtld.safe_open(enc, framework="np") as f:
        floats = [k for k in f.keys() if f.tensor_info(k)["dtype"] == "F32"]
        assert len(floats) == 103  # all but embeddings.position_ids (I64)
        for name in floats:
            f32 = f.get_tensor(name, dtype="float32")
            assert f32.dtype == np.float32
            f16 = f.get_tensor(name, dtype=np.float16)
            assert f16.dtype == np.float16
            assert f16.tobytes() == f32.astype(np.float16).tobytes(), name
            bf = f.get_tensor(name, dtype="bfloat16")
            assert bf.dtype == ml_dtypes.bfloat16
            assert bf.tobytes() == f32.astype(ml_dtypes.bfloat16).tobytes(), name
            if f.tensor_info(name)["encoding"] == "palette":
                # `hhtld decode --dtype bf16` converts encoded tensors only.
                dtype, shape, raw = bf16_ref[name]
                assert dtype == "BF16" and shape == bf.shape
                assert bf.tobytes() == raw, name


def test_rows_of_a_slice_equal_the_rows_of_the_tensor(minilm):
    enc, _, _ = minilm
    rng = np.random.default_rng(7)
    with hhtld.safe_open(enc, framework="np") as f:
        for name in [EMB, "encoder.layer.3.intermediate.dense.weight", "embeddings.position_embeddings.weight"]:
            full = f.get_tensor(name)
            s = f.get_slice(name)
            n = full.shape[0]
            assert s.get_shape() == list(full.shape)
            assert s.get_dtype() == "F32"
            assert len(s) == n
            for i in [0, 1, n - 1, -1, -n, int(rng.integers(n))]:
                assert s[i].tobytes() == full[i].tobytes()
                assert s[i].shape == full[i].shape
            for sl in [slice(None), slice(3, 9), slice(5, None, 7), slice(None, None, -3),
                       slice(n - 2, 2, -5), slice(4, 4), slice(-10, None), slice(n + 5, n + 9)]:
                assert s[sl].shape == full[sl].shape, sl
                assert s[sl].tobytes() == full[sl].tobytes(), sl
            rows = rng.integers(-n, n, size=1000)
            assert s[rows].tobytes() == full[rows].tobytes()
            assert s[list(rows[:5])].tobytes() == full[rows[:5]].tobytes()
            assert s[np.array([], dtype=np.int64)].shape == (0,) + full.shape[1:]
            assert s[:, :8].tobytes() == full[:, :8].tobytes()
            assert s[2:6, 1::3].tobytes() == full[2:6, 1::3].tobytes()
            assert s[5, 3] == full[5, 3]
            assert s[...].tobytes() == full.tobytes()
            for bad in [n, -n - 1]:
                with pytest.raises(IndexError):
                    s[bad]
                with pytest.raises(IndexError):
                    s[[0, bad]]
            with pytest.raises(IndexError):
                s[np.array([True, False])]
            with pytest.raises(ValueError):
                s[::0]


def test_tensor_info_describes_the_directory(minilm):
    enc, _, _ = minilm
    report = hhtld.inspect(enc)
    by_name = {t["name"]: t for t in report["tensors"]}
    with hhtld.safe_open(enc) as f:
        for name in f.keys():
            info = f.tensor_info(name)
            j = by_name[name]
            for k in ["dtype", "encoding", "regime", "role", "scale", "slot_l", "stages"]:
                assert info[k] == j[k], (name, k)
            assert list(info["shape"]) == j["shape"]
            if j["quality"] is None:
                assert info["quality"] is None
            else:
                assert info["quality"] == pytest.approx(j["quality"], rel=1e-6)
        assert f.tensor_info(EMB)["regime"] == "index"
        assert f.tensor_info(EMB)["encoding"] == "palette"
        assert 0.9 < f.tensor_info(EMB)["quality"]["rho_median"] <= 1.0
        md = f.metadata()
        # inspect --json lists model files (file.*) by size, not contents.
        assert {k: v for k, v in md.items() if not k.startswith("file.")} == report["metadata"]
        sizes = {m["key"]: m["bytes"] for m in report["metadata_bytes"]}
        assert sizes == {k: len(v.encode("utf-8")) for k, v in md.items()}
        assert "file.tokenizer.json" in sizes and "file.tokenizer.json" not in report["metadata"]
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in md.items())


def test_inspect_and_verify_return_what_the_cli_prints(minilm):
    enc, _, _ = minilm
    assert hhtld.inspect(enc) == json.loads(run_cli("inspect", "--json", str(enc)).stdout)
    assert hhtld.inspect(enc, verify=True) == json.loads(
        run_cli("inspect", "--verify", "--json", str(enc)).stdout
    )
    assert hhtld.verify(enc) == json.loads(run_cli("verify", "--json", str(enc)).stdout)


def test_a_corrupt_section_fails_verify_with_the_crc_error(minilm, tmp_path):
    enc, _, _ = minilm
    bad = tmp_path / "bad.hhtld"
    shutil.copy(enc, bad)
    report = hhtld.inspect(enc)
    sec = next(s for s in report["sections"] if s["kind"] == "entry")
    data = bytearray(bad.read_bytes())
    data[sec["offset"] + 10] ^= 0x55
    bad.write_bytes(bytes(data))
    with pytest.raises(hhtld.HhtldError) as e:
        hhtld.verify(bad)
    assert e.value.kind == "Crc" and e.value.rule is None
    assert e.value.place == f"section {sec['index']}"
    assert e.value.offset == sec["offset"]
    with pytest.raises(hhtld.HhtldError):
        hhtld.safe_open(bad, verify=True)
    # Opening checks structure only: a flipped code byte is found by verify.
    with hhtld.safe_open(bad) as f:
        assert len(f.keys()) == 104
    assert [s["crc_ok"] for s in hhtld.inspect(bad, verify=True)["sections"]].count(False) == 1


# --- spec vectors ------------------------------------------------------------


def test_every_valid_vector_reads_like_its_cli_decode(root, tmp_path):
    vectors = valid_vectors(root)
    assert len(vectors) >= 10
    dtypes_seen = set()
    for v in vectors:
        out = tmp_path / (v.stem + ".safetensors")
        run_cli("decode", str(v), "-o", str(out))
        ref = st_raw(out)
        with hhtld.safe_open(v) as f:
            assert f.keys() == sorted(ref)
            for name in f.keys():
                dtype, shape, raw = ref[name]
                got = f.get_tensor(name)
                assert got.dtype == NP_TYPES[dtype], (v.name, name)
                assert got.shape == shape, (v.name, name)
                assert got.tobytes() == raw, (v.name, name)
                dtypes_seen.add(dtype)
    assert dtypes_seen == set(NP_TYPES)


def test_float32_decode_equals_the_rows_in_the_vectors(root):
    checked = 0
    for v in valid_vectors(root):
        rows = json.loads(v.with_suffix(".rows.json").read_text())
        with hhtld.safe_open(v) as f:
            for t in rows["tensors"]:
                if t.get("rows") is None:
                    continue
                got = f.get_tensor(t["name"], dtype="float32").reshape(t["n_rows"], t["n_cols"])
                want = [[int(h, 16) for h in r] for r in t["rows"]]
                assert got.view(np.uint32).tolist() == want, (v.name, t["name"])
                checked += 1
    assert checked >= 20


def test_every_invalid_vector_raises_hhtld_error_with_its_rule(root):
    vectors = invalid_vectors(root)
    assert len(vectors) > 60
    at_verify = []
    for v in vectors:
        kind, rule, when = (v.with_suffix(".expected").read_text().split("\n") + [""])[:3]
        if when == "verify":
            at_verify.append((v, kind, rule))
            continue
        with pytest.raises(hhtld.HhtldError) as e:
            hhtld.safe_open(v)
        err = e.value
        assert isinstance(err, ValueError)
        assert err.rule == rule, v.name
        assert err.kind == kind, v.name
        assert f"[{rule}]" in str(err)
        assert isinstance(err.place, str) and err.place, v.name
        assert err.offset is None or 0 <= err.offset <= v.stat().st_size, v.name
        # The same error from inspect and verify.
        for fn in (hhtld.inspect, hhtld.verify, hhtld.numpy.load_file):
            with pytest.raises(hhtld.HhtldError) as e2:
                fn(v)
            assert e2.value.rule == rule
    # Rules about bytes open does not read (padding, a metadata value's
    # UTF-8): open accepts the file; verification raises the rule, and so
    # does reading a bad value.
    assert {r for _, _, r in at_verify} == {"R-PADDING", "R-METADATA"}
    for v, kind, rule in at_verify:
        with hhtld.safe_open(v) as f:
            if rule == "R-METADATA":
                with pytest.raises(hhtld.HhtldError) as e:
                    f.metadata()
                assert (e.value.rule, e.value.kind) == (rule, kind), v.name
            else:
                assert isinstance(f.metadata(), dict), v.name
        for fn in (hhtld.verify, lambda p: hhtld.safe_open(p, verify=True)):
            with pytest.raises(hhtld.HhtldError) as e:
                fn(v)
            assert (e.value.rule, e.value.kind) == (rule, kind), v.name


def test_error_places(root):
    inv = root / "spec" / "vectors" / "invalid"
    with pytest.raises(hhtld.HhtldError) as e:
        hhtld.safe_open(inv / "r-magic.hhtld")
    assert (e.value.place, e.value.offset) == ("header", 0)
    with pytest.raises(hhtld.HhtldError) as e:
        hhtld.safe_open(inv / "r-enum.dtype.hhtld")
    assert e.value.place.startswith("tensor ")
    with pytest.raises(hhtld.HhtldError) as e:
        hhtld.safe_open(inv / "r-palette-len.hhtld")
    assert e.value.place.startswith("palette ")


def test_the_bomb_vector_is_refused_before_allocating(root):
    g = root / "spec" / "vectors" / "guarded"
    lines = dict(l.split(" ", 1) for l in (g / "bomb.expected").read_text().splitlines())
    file_len = int(lines["file_len"])
    name, decoded = lines["refused"].split()
    assert (g / "bomb.hhtld").stat().st_size == file_len
    with hhtld.safe_open(g / "bomb.hhtld") as f:
        assert f._reader.max_expansion == int(lines["max_expansion"])
        for dtype in [None, "float32", "bfloat16"]:
            with pytest.raises(hhtld.HhtldError) as e:
                f.get_tensor(name, dtype=dtype)
            assert e.value.kind == "ExpansionLimit" and e.value.rule is None
            assert e.value.place.startswith("tensor 0")
        # The size the spec's vector names is the f32 one.
        err = pytest.raises(hhtld.HhtldError, f.get_tensor, name, dtype="float32").value
        assert f"decodes to {decoded} bytes" in str(err)
        s = f.get_slice(name)
        assert s.get_dtype() == "BF16"
        with pytest.raises(hhtld.HhtldError):
            s[:]
        few = s[[0, 7, 65535]]  # a few rows are fine
        assert few.shape == (3, 1024) and few.dtype == ml_dtypes.bfloat16
    # Twice the limit lets the bf16 decode (2 bytes a value) through, not f32.
    with hhtld.safe_open(g / "bomb.hhtld", max_expansion=2048) as f:
        with pytest.raises(hhtld.HhtldError):
            f.get_tensor(name, dtype="float32")
        full = f.get_tensor(name)
        assert full.shape == (65536, 1024) and full.dtype == ml_dtypes.bfloat16
        assert full[[0, 7, 65535]].tobytes() == few.tobytes()


# --- handle life, argument errors --------------------------------------------


def test_calls_raise_after_the_context_exits(minilm):
    enc, _, _ = minilm
    with hhtld.safe_open(enc) as f:
        s = f.get_slice(EMB)
        kept = f.get_tensor(EMB)
        row = s[3]
    for call in [f.keys, f.metadata, lambda: f.get_tensor(EMB), lambda: f.get_slice(EMB),
                 lambda: f.tensor_info(EMB), lambda: s[0], s.get_shape, s.get_dtype]:
        with pytest.raises(ValueError, match="closed"):
            call()
    with pytest.raises(ValueError, match="closed"):
        with f:
            pass
    # Arrays read before are independent of the closed mapping.
    assert kept.shape == (30522, 384) and np.array_equal(kept[3], row)
    f.close()  # closing twice is harmless


def test_bad_arguments_raise_clear_errors(minilm, root, tmp_path):
    enc, _, _ = minilm
    with pytest.raises(ValueError, match="framework"):
        hhtld.safe_open(enc, framework="tf")
    with pytest.raises(ValueError, match="device"):
        hhtld.safe_open(enc, device="cuda")
    with pytest.raises(FileNotFoundError):
        hhtld.safe_open(tmp_path / "missing.hhtld")
    with hhtld.safe_open(enc) as f:
        for bad in ["int8", "float64", np.int32, "fp32", 3]:
            with pytest.raises(ValueError, match="dtype"):
                f.get_tensor(EMB, dtype=bad)
        with pytest.raises(KeyError):
            f.get_tensor("no.such.tensor")
        with pytest.raises(KeyError):
            f.get_slice("no.such.tensor")
        with pytest.raises(KeyError):
            f.tensor_info("no.such.tensor")
    with hhtld.safe_open(root / "spec" / "vectors" / "valid" / "raw-dtypes.hhtld") as f:
        with pytest.raises(TypeError, match="I64"):
            f.get_tensor("i64", dtype="float32")
        assert f.get_tensor("f64", dtype="float32").dtype == np.float32
        assert f.get_slice("scalar").get_shape() == []
        with pytest.raises(IndexError):
            f.get_slice("scalar")[0]
        vec = f.get_tensor("vector.f32")
        assert f.get_slice("vector.f32")[1:3].tobytes() == vec[1:3].tobytes()


def test_bfloat16_without_ml_dtypes_is_a_clear_type_error(root, monkeypatch):
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)
    with hhtld.safe_open(root / "spec" / "vectors" / "valid" / "mixed.hhtld") as f:
        assert f.get_tensor("enc").dtype == np.float32
        with pytest.raises(TypeError, match="ml_dtypes"):
            f.get_tensor("wide")
        with pytest.raises(TypeError, match="ml_dtypes"):
            f.get_tensor("enc", dtype="bfloat16")
        assert f.get_tensor("wide", dtype="float32").dtype == np.float32


def test_pt_without_torch_is_a_clear_import_error(minilm, monkeypatch):
    enc, _, _ = minilm
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match="PyTorch"):
        hhtld.safe_open(enc, framework="pt")
    with pytest.raises(ImportError, match="PyTorch"):
        hhtld.torch.load_file(enc)


def test_decoding_releases_the_gil(root):
    # A 256 MiB decode in one thread while the main thread notes the time
    # over and over. Were the GIL held through a call, the main thread could
    # run only at its edges (within a switch interval of its start or end);
    # released, the main thread runs inside it. Checked on timestamps inside
    # each call, away from its edges: a loaded machine only slows the main
    # thread down, it cannot make this fail.
    old = sys.getswitchinterval()
    sys.setswitchinterval(0.001)
    try:
        f = hhtld.safe_open(root / "spec" / "vectors" / "guarded" / "bomb.hhtld", max_expansion=4096)
        calls, stamps = [], []
        done = threading.Event()

        def work():
            for _ in range(3):
                t0 = time.perf_counter()
                f.get_tensor("bomb.weight", dtype="float32")
                calls.append((t0, time.perf_counter()))
            done.set()

        th = threading.Thread(target=work)
        th.start()
        while not done.is_set():
            stamps.append(time.perf_counter())
        th.join()
        f.close()
    finally:
        sys.setswitchinterval(old)
    margin = 0.003
    assert len(calls) == 3
    for t0, t1 in calls:
        # Long enough for the inside to mean something.
        assert t1 - t0 > 4 * margin, (t0, t1)
        inside = sum(1 for s in stamps if t0 + margin < s < t1 - margin)
        assert inside > 0, ("the main thread never ran during a decode", t0, t1)
