"""Read a PyTorch legacy (non-zip) `.pth` state dict into NumPy arrays, without torch.

The legacy format (`torch.save(..., _use_new_zipfile_serialization=False)`) is five
consecutive records: a pickled magic number, a pickled protocol version, a pickled sys-info
dict, the main pickle (the state dict, whose tensors point at storages through
`persistent_load`), a pickled list of storage keys, and then, per key in that order, an
8-byte little-endian element count followed by the storage's raw bytes.

A pickle can run arbitrary code, so every record is read by `RestrictedUnpickler`: it resolves
only `collections.OrderedDict`, `torch._utils._rebuild_tensor_v2` and the `torch.*Storage`
types (each to a harmless local stand-in) and refuses every other global with
`UnsafePickleError`, naming it and the file.

Example:
    >>> tensors = load_state_dict("efficientnet-lite0-57934424.pth")
    >>> tensors["_conv_stem.weight"].shape
    (32, 3, 3, 3)
"""

from __future__ import annotations

import collections
import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER
PROTOCOL_VERSION = 1001  # torch.serialization.PROTOCOL_VERSION

# torch storage type -> NumPy dtype (little-endian, as torch writes on every supported host).
STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle asked for a global outside the allow-list (it could run code)."""


class TorchWeightsError(ValueError):
    """The file is not a readable legacy PyTorch state dict."""


@dataclass(frozen=True)
class _StorageType:
    """Stand-in for `torch.FloatStorage` & co.: only its dtype matters."""

    name: str

    @property
    def dtype(self) -> np.dtype:
        return STORAGE_DTYPES[self.name]


@dataclass
class _Storage:
    """A storage named by the main pickle; its bytes follow the pickles in the file."""

    key: str
    dtype: np.dtype
    numel: int
    data: np.ndarray | None = None


@dataclass(frozen=True)
class _TensorRef:
    """What `_rebuild_tensor_v2` would build: a strided view of a storage."""

    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    def to_numpy(self) -> np.ndarray:
        data = self.storage.data
        if data is None:
            raise TorchWeightsError(f"storage {self.storage.key} was never read")
        if not self.shape:
            return data[self.offset].copy()
        end = (
            self.offset + 1 + sum((n - 1) * s for n, s in zip(self.shape, self.stride, strict=True))
        )
        if end > data.size or self.offset < 0 or min(self.stride, default=0) < 0:
            raise TorchWeightsError(
                f"tensor view (offset {self.offset}, shape {self.shape}, stride {self.stride}) "
                f"runs outside storage {self.storage.key} of {data.size} elements"
            )
        strides = tuple(s * data.itemsize for s in self.stride)
        view = np.lib.stride_tricks.as_strided(data[self.offset :], self.shape, strides)
        return np.array(view)  # a contiguous copy, independent of the file buffer


def _rebuild_tensor_v2(
    storage: _Storage,
    storage_offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    requires_grad: bool = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> _TensorRef:
    """Local stand-in for `torch._utils._rebuild_tensor_v2`: records the view, runs nothing."""
    if not isinstance(storage, _Storage):
        raise TorchWeightsError(f"_rebuild_tensor_v2 got {type(storage).__name__}, not a storage")
    return _TensorRef(storage, int(storage_offset), tuple(size), tuple(stride))


# (module, name) -> the object the pickle gets instead. Nothing else resolves.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    **{("torch", name): _StorageType(name) for name in STORAGE_DTYPES},
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals of a plain tensor state dict.

    Args:
        file: the open binary file.
        source: the file name, for error messages.
        storages: filled with the storages the pickle references, by key.
    """

    def __init__(self, file: BinaryIO, source: str, storages: dict[str, _Storage]) -> None:
        super().__init__(file)
        self.source = source
        self.storages = storages

    def find_class(self, module: str, name: str) -> Any:
        """Return the stand-in of an allowed global; refuse anything else."""
        if (module, name) not in _ALLOWED:
            raise UnsafePickleError(
                f"{self.source}: refusing to load global {module}.{name}: a weights file needs "
                "only OrderedDict, torch._utils._rebuild_tensor_v2 and torch storage types, "
                "so this pickle may run code; it was not loaded"
            )
        return _ALLOWED[(module, name)]

    def persistent_load(self, pid: Any) -> _Storage:
        """Resolve `('storage', type, key, location, numel, view_metadata)` to a storage."""
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise TorchWeightsError(f"{self.source}: unexpected persistent id {pid!r}")
        _, storage_type, key, _location, numel = pid[:5]
        if not isinstance(storage_type, _StorageType):
            raise TorchWeightsError(f"{self.source}: storage type {storage_type!r} is unknown")
        if len(pid) > 5 and pid[5] is not None:
            raise TorchWeightsError(f"{self.source}: storage views are not supported")
        key = str(key)
        if key not in self.storages:
            self.storages[key] = _Storage(key, storage_type.dtype, int(numel))
        return self.storages[key]


def _read_storage(file: BinaryIO, storage: _Storage, source: str) -> None:
    header = file.read(8)
    if len(header) != 8:
        raise TorchWeightsError(f"{source}: file ends before storage {storage.key}")
    numel = int.from_bytes(header, "little", signed=True)
    if numel != storage.numel:
        raise TorchWeightsError(
            f"{source}: storage {storage.key} holds {numel} elements, the pickle said {storage.numel}"
        )
    nbytes = numel * storage.dtype.itemsize
    raw = file.read(nbytes)
    if len(raw) != nbytes:
        raise TorchWeightsError(f"{source}: file ends inside storage {storage.key}")
    storage.data = np.frombuffer(raw, dtype=storage.dtype)


def read_state_dict(file: BinaryIO, source: str = "<stream>") -> dict[str, np.ndarray]:
    """Parse a legacy `.pth` stream into `{name: array}` (see the module docstring)."""
    storages: dict[str, _Storage] = {}

    def unpickle() -> Any:
        try:
            return RestrictedUnpickler(file, source, storages).load()
        except (UnsafePickleError, TorchWeightsError):
            raise
        except Exception as error:  # truncated or garbled pickle
            raise TorchWeightsError(f"{source}: not a legacy PyTorch file ({error})") from error

    head = file.read(4)
    file.seek(-len(head), io.SEEK_CUR)
    if head.startswith(b"PK"):
        raise TorchWeightsError(
            f"{source}: a zip-format torch checkpoint; only the legacy format is supported "
            "(re-save with torch.save(..., _use_new_zipfile_serialization=False))"
        )
    if unpickle() != MAGIC_NUMBER:
        raise TorchWeightsError(f"{source}: wrong magic number; not a legacy PyTorch file")
    if unpickle() != PROTOCOL_VERSION:
        raise TorchWeightsError(f"{source}: unsupported torch protocol version")
    sys_info = unpickle()
    if not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
        raise TorchWeightsError(f"{source}: only little-endian files are supported")
    state = unpickle()
    keys = unpickle()
    if not isinstance(state, dict) or not isinstance(keys, list):
        raise TorchWeightsError(f"{source}: the main pickle is not a state dict")
    for key in keys:
        if str(key) not in storages:
            raise TorchWeightsError(f"{source}: storage {key} is listed but never used")
        _read_storage(file, storages[str(key)], source)
    tensors: dict[str, np.ndarray] = {}
    for name, value in state.items():
        if not isinstance(value, _TensorRef):
            raise TorchWeightsError(f"{source}: entry {name!r} is not a tensor")
        tensors[str(name)] = value.to_numpy()
    return tensors


def load_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Load a legacy PyTorch `.pth` state dict as NumPy arrays, executing no pickle code."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    with path.open("rb") as file:
        return read_state_dict(file, str(path))
