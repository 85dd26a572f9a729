"""Type stubs of the compiled module behind the ``hhtld`` package."""

from os import PathLike
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str

class HhtldError(ValueError):
    """A file that is not a valid hhtld file."""

    rule: Optional[str]
    """The spec rule broken, e.g. ``"R-MAGIC"``; None when the spec names
    none (a section CRC mismatch, ``kind == "Crc"``; the expansion limit,
    ``kind == "ExpansionLimit"``)."""
    kind: str
    """The Rust error's variant name, e.g. ``"BadMagic"``."""
    place: str
    """The record concerned: ``"header"``, ``"section 3"``, ``'tensor 2 ("w")'``..."""
    offset: Optional[int]
    """The file offset the error points at, when it names one."""

class Reader:
    """The low-level reader behind ``hhtld.safe_open``."""

    def __init__(
        self,
        path: Union[str, PathLike[str]],
        verify: bool = False,
        max_expansion: Optional[int] = None,
    ) -> None: ...
    @property
    def max_expansion(self) -> int: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def path(self) -> str: ...
    def keys(self) -> List[str]: ...
    def prefetch(self) -> None: ...
    def file_order(self) -> List[str]: ...
    def metadata(self) -> Dict[str, str]: ...
    def dtype_shape(self, name: str) -> Tuple[str, List[int]]: ...
    def tensor_info(self, name: str) -> Dict[str, Any]: ...
    def read(
        self,
        name: str,
        dtype: Optional[str] = None,
        range: Optional[Tuple[int, int, int]] = None,
        rows: Optional[npt.NDArray[np.int64]] = None,
    ) -> Tuple[np.ndarray, str]: ...

def inspect_json(path: Union[str, PathLike[str]], verify: bool = False) -> str: ...
def verify_json(path: Union[str, PathLike[str]]) -> str: ...
