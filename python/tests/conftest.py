"""Shared fixtures: the repository, the CLI, and MiniLM encoded with it.

The model comes from HHTLD_MODEL (scripts/test.sh exports it) or from
scripts/fetch_model.sh; the CLI from HHTLD_BIN or target/release/hhtld.
"""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _cli() -> Path:
    p = Path(os.environ.get("HHTLD_BIN", ROOT / "target" / "release" / "hhtld"))
    if not p.is_file():
        raise RuntimeError(f"{p} is missing: build it with `cargo build --release` first")
    return p


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(_cli()), *args], check=True, capture_output=True, text=True
    )


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def model() -> str:
    m = os.environ.get("HHTLD_MODEL")
    if not m:
        m = subprocess.run(
            [str(ROOT / "scripts" / "fetch_model.sh")],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    return m


@pytest.fixture(scope="session")
def minilm(tmp_path_factory, model):
    """(hhtld file, its `hhtld decode` output, its `decode --dtype bf16` output)."""
    d = tmp_path_factory.mktemp("minilm")
    enc = d / "minilm.hhtld"
    dec = d / "decoded.safetensors"
    dec_bf16 = d / "decoded-bf16.safetensors"
    run_cli("encode", model, "-o", str(enc))
    run_cli("decode", str(enc), "-o", str(dec))
    run_cli("decode", str(enc), "-o", str(dec_bf16), "--dtype", "bf16")
    return enc, dec, dec_bf16
