"""PyTorch loading, like ``safetensors.torch``."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Dict, Union

from . import _load_all, safe_open

if TYPE_CHECKING:
    import torch

__all__ = ["load_file"]


def load_file(
    filename: Union[str, "os.PathLike[str]"], device: str = "cpu"
) -> Dict[str, "torch.Tensor"]:
    """Every tensor of an .hhtld file as CPU torch tensors of its original
    dtype. Raises ``ImportError`` when PyTorch is not installed."""
    with safe_open(filename, framework="pt", device=device) as f:
        return _load_all(f)
