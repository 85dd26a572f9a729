"""Read .hhtld palette-compressed weight files from numpy and PyTorch.

The API follows safetensors::

    import hhtld
    with hhtld.safe_open("model.hhtld", framework="np") as f:
        for name in f.keys():
            w = f.get_tensor(name)              # original dtype
        emb = f.get_slice("embeddings.word_embeddings.weight")
        rows = emb[[101, 2023, 102]]            # decodes 3 rows only

The file stays memory-mapped while open; tensors are decoded straight into
the returned array's buffer with the GIL released. Every problem with the
file raises :class:`HhtldError` (a ``ValueError``) naming the spec rule.
"""

from __future__ import annotations

import json
import operator
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ._hhtld import HhtldError, Reader as _Reader, __version__, inspect_json as _inspect_json, verify_json as _verify_json

__all__ = [
    "HhtldError",
    "Slice",
    "safe_open",
    "inspect",
    "verify",
    "numpy",
    "torch",
    "__version__",
]

_FRAMEWORKS = {"np": "np", "numpy": "np", "pt": "pt", "torch": "pt"}

# numpy types of stored dtype names. The extension returns types numpy
# lacks (and RAW tensors' bytes) in an unsigned integer array of the same
# width, viewed here as the real type.
_NP_TYPES = {
    "F32": np.float32,
    "F16": np.float16,
    "F64": np.float64,
    "BOOL": np.bool_,
    "U8": np.uint8,
    "I8": np.int8,
    "I16": np.int16,
    "U16": np.uint16,
    "I32": np.int32,
    "U32": np.uint32,
    "I64": np.int64,
    "U64": np.uint64,
}

# Types numpy has only through the ml_dtypes package.
_ML_DTYPES = {"BF16": "bfloat16", "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2"}

_TORCH_TYPES = {
    "F32": "float32",
    "F16": "float16",
    "BF16": "bfloat16",
    "F64": "float64",
    "BOOL": "bool",
    "U8": "uint8",
    "I8": "int8",
    "I16": "int16",
    "U16": "uint16",
    "I32": "int32",
    "U32": "uint32",
    "I64": "int64",
    "U64": "uint64",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2",
}

# Names a caller may pass as `dtype`, by the dtype they mean.
_DTYPE_ALIASES = {
    "F32": ("float32", "f32", "F32"),
    "F16": ("float16", "f16", "F16"),
    "BF16": ("bfloat16", "bf16", "BF16"),
}
_DTYPE_NAMES = {alias: canon for canon, names in _DTYPE_ALIASES.items() for alias in names}


def _torch():
    try:
        import torch  # noqa: PLC0415
    except ImportError as e:
        raise ImportError(
            'framework="pt" needs PyTorch, which is not installed (pip install torch)'
        ) from e
    return torch


def _dtype_name(dtype: Any) -> Optional[str]:
    """The canonical name (F32, F16, BF16) of a requested dtype, or None."""
    if dtype is None:
        return None
    if isinstance(dtype, str):
        key = dtype
    else:
        # numpy dtypes and scalar types, torch dtypes, ml_dtypes types.
        key = str(dtype)
        if key.startswith("torch."):
            key = key[len("torch."):]
        else:
            try:
                key = np.dtype(dtype).name
            except TypeError:
                pass
    canon = _DTYPE_NAMES.get(key)
    if canon is None:
        raise ValueError(
            f"dtype {dtype!r} is not one hhtld decodes to: use None (the original dtype), "
            "float32, float16 or bfloat16"
        )
    return canon


def _np_view(arr: np.ndarray, dtype: str) -> np.ndarray:
    """Views a storage array as the numpy type of `dtype`."""
    t = _NP_TYPES.get(dtype)
    if t is not None:
        return arr if arr.dtype == t else arr.view(t)
    try:
        import ml_dtypes  # noqa: PLC0415
    except ImportError:
        raise TypeError(
            f"numpy has no {dtype} type: install ml_dtypes (pip install ml_dtypes) to get "
            f"{dtype} arrays, ask for dtype='float32', or use framework='pt'"
        ) from None
    return arr.view(getattr(ml_dtypes, _ML_DTYPES[dtype]))


def _pt_view(arr: np.ndarray, dtype: str):
    """Wraps a storage array as a torch tensor of `dtype` (no copy)."""
    torch = _torch()
    if dtype in _NP_TYPES and dtype not in ("U16", "U32", "U64"):
        return torch.from_numpy(_np_view(arr, dtype))
    # torch.from_numpy takes only signed integers of these widths on every
    # torch version; the bits are then viewed as the real type.
    signed = {1: np.int8, 2: np.int16, 4: np.int32, 8: np.int64}[arr.dtype.itemsize]
    t = torch.from_numpy(arr.view(signed))
    return t.view(getattr(torch, _TORCH_TYPES[dtype]))


def _normalize_framework(framework: str) -> str:
    try:
        return _FRAMEWORKS[framework]
    except (KeyError, TypeError):
        raise ValueError(
            f"framework {framework!r} is not supported: use 'np'/'numpy' or 'pt'/'torch'"
        ) from None


class safe_open:
    """An open .hhtld file, like ``safetensors.safe_open``.

    ``safe_open(path, framework="np")`` maps and validates the file (time
    proportional to its directory, not its size); ``framework`` is ``"np"``
    or ``"numpy"`` for numpy arrays, ``"pt"`` or ``"torch"`` for torch
    tensors (CPU; ``device`` must be ``"cpu"``). With ``verify=True`` the
    file is also verified at open: every section CRC, zero padding and
    UTF-8 metadata values. ``max_expansion`` sets the
    decompression-bomb guard (spec section 7): a read that would produce more
    than ``max_expansion`` times the file's size in bytes raises
    :class:`HhtldError` (``kind == "ExpansionLimit"``) before allocating;
    None keeps the reader's default (1024). Use it in a ``with`` block (or
    call :meth:`close`): afterwards every method raises ``ValueError``.
    """

    def __init__(
        self,
        filename: Union[str, "os.PathLike[str]"],
        framework: str = "np",
        device: str = "cpu",
        verify: bool = False,
        max_expansion: Optional[int] = None,
    ) -> None:
        self._framework = _normalize_framework(framework)
        if device != "cpu":
            raise ValueError(f"device {device!r} is not supported: hhtld decodes on the CPU")
        if self._framework == "pt":
            _torch()
        self._reader = _Reader(os.fspath(filename), verify, max_expansion)

    def __enter__(self) -> "safe_open":
        self._reader.path  # raises if already closed
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Releases the file; later calls raise ``ValueError``."""
        self._reader.close()

    def _wrap(self, arr: np.ndarray, dtype: str):
        if self._framework == "pt":
            return _pt_view(arr, dtype)
        return _np_view(arr, dtype)

    def keys(self) -> List[str]:
        """Tensor names, sorted."""
        return self._reader.keys()

    def prefetch(self) -> None:
        """Starts reading the whole file into the page cache in the
        background and returns at once. Call it before reading most tensors
        of a file that may not be cached (``load_file`` does); leave it out
        for a few tensors or rows of a large file."""
        self._reader.prefetch()

    def keys_in_file_order(self) -> List[str]:
        """The names of :meth:`keys` in the order their data lies in the
        file: reading in this order after :meth:`prefetch` follows the
        disk's reads."""
        return self._reader.file_order()

    def metadata(self) -> Dict[str, str]:
        """The file's metadata (str to str). Values are checked as UTF-8
        here, not at open (spec §5): one that is not raises
        :class:`HhtldError` with rule ``R-METADATA``."""
        return self._reader.metadata()

    def tensor_info(self, name: str) -> Dict[str, Any]:
        """What the directory says about ``name``: dtype, shape, encoding,
        regime, role, stages (palette, d, bits), scale element type, SlotL
        basis and the stored quality figures (``rho_median``, ``rho_p5``,
        ``rho_min``, ``rel_fro``; None when the file stores none)."""
        return self._reader.tensor_info(name)

    def get_tensor(self, name: str, dtype: Any = None):
        """The tensor ``name``, decoded.

        ``dtype=None`` gives the original dtype, as ``hhtld decode`` writes
        it (RAW tensors: their stored bytes). ``dtype`` may be
        ``"float32"``, ``"float16"`` or ``"bfloat16"`` (or the numpy/torch
        type): PALETTE tensors are decoded in f32 and rounded once to it,
        RAW float tensors are converted. numpy has no bfloat16: with
        ``framework="np"`` a BF16 result is an ``ml_dtypes.bfloat16`` array
        when ml_dtypes is installed, else a ``TypeError`` says so.
        Unknown names raise ``KeyError``.
        """
        arr, stored = self._reader.read(name, _dtype_name(dtype))
        return self._wrap(arr, stored)

    def get_slice(self, name: str) -> "Slice":
        """A lazy view of ``name``: indexing its first dimension decodes
        only the rows asked for."""
        dtype, shape = self._reader.dtype_shape(name)
        return Slice(self, name, dtype, tuple(shape))


class Slice:
    """Rows of one tensor, decoded on indexing (``safe_open.get_slice``).

    ``s[i]``, ``s[a:b:c]`` and ``s[[i, j, ...]]`` (a list or 1-D integer
    array, e.g. token ids) select rows of the first dimension and decode
    only those; further indices (``s[:, :64]``) apply to the decoded rows.
    Tensors of fewer than 2 dimensions are a single row and decode whole.
    """

    def __init__(self, owner: safe_open, name: str, dtype: str, shape: Tuple[int, ...]):
        self._owner = owner
        self._name = name
        self._dtype = dtype
        self._shape = shape

    def get_shape(self) -> List[int]:
        """The tensor's shape."""
        self._owner._reader.path  # raises once closed
        return list(self._shape)

    def get_dtype(self) -> str:
        """The tensor's original dtype, as safetensors names it (e.g. "F32")."""
        self._owner._reader.path
        return self._dtype

    def __len__(self) -> int:
        if not self._shape:
            raise TypeError("len() of a 0-d tensor")
        return self._shape[0]

    def __getitem__(self, key: Any):
        rest: Tuple[Any, ...] = ()
        if isinstance(key, tuple):
            if not key:
                key = slice(None)
            else:
                key, rest = key[0], key[1:]
        owner = self._owner
        if len(self._shape) < 2:
            full = owner.get_tensor(self._name)
            return full[(key,) + rest]
        n = self._shape[0]
        squeeze = False
        if isinstance(key, slice):
            arr, stored = owner._reader.read(self._name, None, key.indices(n))
        elif key is Ellipsis:
            arr, stored = owner._reader.read(self._name, None)
            rest = (Ellipsis,) + rest if rest else ()
        else:
            try:
                i = operator.index(key)
            except TypeError:
                rows = np.asarray(key)
                if rows.dtype == np.bool_ or rows.ndim != 1 or not (
                    rows.size == 0 or np.issubdtype(rows.dtype, np.integer)
                ):
                    raise IndexError(
                        "rows are selected by an int, a slice, or a 1-D list/array of ints"
                    ) from None
                arr, stored = owner._reader.read(
                    self._name, None, None, np.ascontiguousarray(rows, dtype=np.int64)
                )
            else:
                if not -n <= i < n:
                    raise IndexError(f"{self._name}: row {i} is out of range for {n} rows")
                i %= n
                arr, stored = owner._reader.read(self._name, None, (i, i + 1, 1))
                squeeze = True
        out = owner._wrap(arr, stored)
        if squeeze:
            return out[0][rest] if rest else out[0]
        # Further indices apply to the dimensions after the rows.
        return out[(slice(None),) + rest] if rest else out


def _load_all(f: safe_open) -> Dict[str, Any]:
    """Every tensor of ``f``: the file prefetched and read front to back,
    the dict listed like ``keys()``."""
    try:
        f.prefetch()
    except HhtldError:
        pass  # a hint only: without it every tensor still reads correctly
    read = {name: f.get_tensor(name) for name in f.keys_in_file_order()}
    return {name: read[name] for name in f.keys()}


def inspect(path: Union[str, "os.PathLike[str]"], verify: bool = False) -> Dict[str, Any]:
    """What ``hhtld inspect --json PATH`` prints (``verify=True``: with
    ``--verify``, adding ``crc_ok`` to each section), as a dict."""
    return json.loads(_inspect_json(os.fspath(path), verify))


def verify(path: Union[str, "os.PathLike[str]"]) -> Dict[str, Any]:
    """What ``hhtld verify --json PATH`` prints: checks every section CRC,
    then zero padding and UTF-8 metadata values, and raises
    :class:`HhtldError` on the first failure."""
    return json.loads(_verify_json(os.fspath(path)))


# Submodules, as in safetensors (`hhtld.numpy.load_file`); neither imports
# torch until it is used.
from . import numpy, torch  # noqa: E402
