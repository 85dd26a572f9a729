"""numpy loading, like ``safetensors.numpy``."""

from __future__ import annotations

import os
from typing import Dict, Union

import numpy as np

from . import _load_all, safe_open

__all__ = ["load_file"]


def load_file(filename: Union[str, "os.PathLike[str]"]) -> Dict[str, np.ndarray]:
    """Every tensor of an .hhtld file as numpy arrays of its original dtype
    (BF16 and F8 tensors need ml_dtypes; see ``safe_open.get_tensor``)."""
    with safe_open(filename, framework="np") as f:
        return _load_all(f)
