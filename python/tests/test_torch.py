"""framework="pt" against safetensors.torch on the same `hhtld decode` output.

torch is installed by scripts/test.sh (python/requirements-test.txt), so
these tests run in CI; they are not skipped when it is missing.
"""

import numpy as np
import torch
from safetensors.torch import load_file as st_load_file

import hhtld
from conftest import run_cli

EMB = "embeddings.word_embeddings.weight"


def test_every_minilm_tensor_equals_safetensors_torch(minilm):
    enc, dec, _ = minilm
    ref = st_load_file(str(dec))
    with hhtld.safe_open(enc, framework="pt") as f:
        assert f.keys() == sorted(ref)
        for name in f.keys():
            got = f.get_tensor(name)
            assert isinstance(got, torch.Tensor)
            assert got.dtype == ref[name].dtype and got.shape == ref[name].shape, name
            assert torch.equal(got, ref[name]), name
    loaded = hhtld.torch.load_file(enc)
    assert sorted(loaded) == sorted(ref)
    assert all(torch.equal(loaded[k], ref[k]) for k in ref)


def test_bfloat16_equals_the_cli_bf16_decode(minilm):
    enc, _, dec_bf16 = minilm
    ref = st_load_file(str(dec_bf16))
    with hhtld.safe_open(enc, framework="torch") as f:
        floats = [k for k in f.keys() if f.tensor_info(k)["dtype"] == "F32"]
        assert len(floats) == 103  # all but embeddings.position_ids (I64)
        for name in floats:
            got = f.get_tensor(name, dtype=torch.bfloat16)
            assert got.dtype == torch.bfloat16
            if f.tensor_info(name)["encoding"] == "palette":
                assert ref[name].dtype == torch.bfloat16
                assert torch.equal(got.view(torch.int16), ref[name].view(torch.int16)), name
            else:
                # Passthrough F32 tensors: one round-to-nearest-even, as torch does.
                assert torch.equal(got, ref[name].to(torch.bfloat16)), name
            f16 = f.get_tensor(name, dtype="float16")
            assert f16.dtype == torch.float16
            assert torch.equal(f16, f.get_tensor(name).to(torch.float16)), name


def test_slices_give_tensors_of_the_same_rows(minilm):
    enc, _, _ = minilm
    with hhtld.safe_open(enc, framework="pt") as f:
        full = f.get_tensor(EMB)
        s = f.get_slice(EMB)
        ids = torch.randint(0, full.shape[0], (500,), generator=torch.Generator().manual_seed(3))
        assert torch.equal(s[ids.numpy()], full[ids])
        assert torch.equal(s[10:20], full[10:20])
        assert torch.equal(s[-1], full[-1])
        assert torch.equal(s[:, :16], full[:, :16])


def test_every_valid_vector_matches_safetensors_torch(root, tmp_path):
    seen = set()
    for v in sorted((root / "spec" / "vectors" / "valid").glob("*.hhtld")):
        out = tmp_path / (v.stem + ".safetensors")
        run_cli("decode", str(v), "-o", str(out))
        ref = st_load_file(str(out))
        with hhtld.safe_open(v, framework="pt") as f:
            assert f.keys() == sorted(ref)
            for name in f.keys():
                got = f.get_tensor(name)
                assert got.dtype == ref[name].dtype and got.shape == ref[name].shape, (v, name)
                # Compare bits, so that NaN payloads and F8 values count too.
                if got.numel():
                    a = got.reshape(-1).view(torch.uint8)
                    b = ref[name].reshape(-1).view(torch.uint8)
                    assert torch.equal(a, b), (v.name, name)
                seen.add(got.dtype)
    assert {torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2, torch.bool, torch.uint64} <= seen
