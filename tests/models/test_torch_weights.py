"""Legacy .pth reader: tensors come back exactly, pickled code is refused, torch is never needed."""

from __future__ import annotations

import collections
import io
import os
import pickle
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from cityseg.models.torch_weights import (
    MAGIC_NUMBER,
    PROTOCOL_VERSION,
    TorchWeightsError,
    UnsafePickleError,
    load_state_dict,
)

SYS_INFO = {"protocol_version": PROTOCOL_VERSION, "little_endian": True, "type_sizes": {}}


def _legacy_file(path: Path, main_pickle: bytes, keys: list[str], blobs: list[bytes]) -> Path:
    """Write torch's legacy layout: magic, protocol, sys info, main pickle, keys, storages."""
    with path.open("wb") as f:
        for record in (MAGIC_NUMBER, PROTOCOL_VERSION, SYS_INFO):
            pickle.dump(record, f, protocol=2)
        f.write(main_pickle)
        pickle.dump(keys, f, protocol=2)
        for blob, itemsize in blobs:
            f.write((len(blob) // itemsize).to_bytes(8, "little"))
            f.write(blob)
    return path


@pytest.fixture
def fake_torch(monkeypatch):
    """Importable stand-ins named like torch's, so the test can pickle as torch.save does."""
    torch_mod = types.ModuleType("torch")
    utils_mod = types.ModuleType("torch._utils")

    class FloatStorage:
        def __init__(self, key: str, values: np.ndarray) -> None:
            self.key, self.values = key, values

    class LongStorage(FloatStorage):
        pass

    def _rebuild_tensor_v2(*args):  # never called while pickling
        raise AssertionError

    for cls in (FloatStorage, LongStorage):
        cls.__module__, cls.__qualname__ = "torch", cls.__name__
        setattr(torch_mod, cls.__name__, cls)
    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils_mod._rebuild_tensor_v2 = _rebuild_tensor_v2
    monkeypatch.setitem(sys.modules, "torch", torch_mod)
    monkeypatch.setitem(sys.modules, "torch._utils", utils_mod)
    return torch_mod, _rebuild_tensor_v2


def _tensor(rebuild, storage, offset, shape, stride):
    class Tensor:
        def __reduce__(self):
            return rebuild, (storage, offset, shape, stride, False, collections.OrderedDict())

    return Tensor()


def _pickle_state(state: dict, storage_types: tuple) -> bytes:
    buf = io.BytesIO()

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, storage_types):
                return ("storage", type(obj), obj.key, "cpu", obj.values.size, None)
            return None

    Pickler(buf, protocol=2).dump(state)
    return buf.getvalue()


def test_tensors_views_and_dtypes_round_trip(fake_torch, tmp_path: Path) -> None:
    torch_mod, rebuild = fake_torch
    weights = np.arange(24, dtype="<f4") * 0.5 - 3
    steps = np.array([7], dtype="<i8")
    w = torch_mod.FloatStorage("100", weights)
    s = torch_mod.LongStorage("200", steps)
    state = collections.OrderedDict(
        conv=_tensor(rebuild, w, 0, (2, 3, 4), (12, 4, 1)),
        transposed=_tensor(rebuild, w, 0, (4, 6), (1, 4)),  # a strided view of the same storage
        tail=_tensor(rebuild, w, 20, (4,), (1,)),  # an offset into it
        steps=_tensor(rebuild, s, 0, (), ()),
    )
    main = _pickle_state(state, (torch_mod.FloatStorage,))
    path = _legacy_file(
        tmp_path / "w.pth", main, ["100", "200"], [(weights.tobytes(), 4), (steps.tobytes(), 8)]
    )
    loaded = load_state_dict(path)
    assert list(loaded) == ["conv", "transposed", "tail", "steps"]
    np.testing.assert_array_equal(loaded["conv"], weights.reshape(2, 3, 4))
    np.testing.assert_array_equal(loaded["transposed"], weights.reshape(6, 4).T)
    np.testing.assert_array_equal(loaded["tail"], weights[20:])
    assert loaded["steps"] == 7 and loaded["steps"].dtype == np.int64


class _Evil:
    """What an attacker pickles: unpickling calls os.system."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("where", ["main", "magic"])
def test_malicious_pickle_is_refused_and_not_run(tmp_path: Path, where: str) -> None:
    marker = tmp_path / "pwned"
    evil = pickle.dumps(collections.OrderedDict(x=_Evil(marker)), protocol=2)
    path = tmp_path / "evil.pth"
    if where == "main":
        _legacy_file(path, evil, [], [])
    else:  # the very first record
        path.write_bytes(pickle.dumps(_Evil(marker), protocol=2))
    with pytest.raises(
        UnsafePickleError, match=r"evil\.pth.*refusing to load global (posix|os)\.system"
    ):
        load_state_dict(path)
    assert not marker.exists()
    # the same bytes through the standard unpickler do run the command: the test is real
    pickle.loads(evil)
    assert marker.exists()


def test_other_torch_globals_are_refused(tmp_path: Path) -> None:
    payload = b"\x80\x02ctorch\nload\nq\x00."  # GLOBAL torch.load
    path = _legacy_file(tmp_path / "w.pth", payload, [], [])
    with pytest.raises(UnsafePickleError, match=r"torch\.load"):
        load_state_dict(path)


def test_bad_files_are_named(tmp_path: Path) -> None:
    zipped = tmp_path / "new.pth"
    zipped.write_bytes(b"PK\x03\x04rest")
    with pytest.raises(TorchWeightsError, match=r"new\.pth.*zip-format"):
        load_state_dict(zipped)
    wrong = tmp_path / "wrong.pth"
    wrong.write_bytes(pickle.dumps(12345, protocol=2))
    with pytest.raises(TorchWeightsError, match=r"wrong\.pth.*magic number"):
        load_state_dict(wrong)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00\x01\x02 not a pickle")
    with pytest.raises(TorchWeightsError, match=r"garbage\.pth"):
        load_state_dict(garbage)
    with pytest.raises(FileNotFoundError, match=r"nope\.pth"):
        load_state_dict(tmp_path / "nope.pth")


def test_truncated_storage_is_named(fake_torch, tmp_path: Path) -> None:
    torch_mod, rebuild = fake_torch
    values = np.ones(8, "<f4")
    storage = torch_mod.FloatStorage("7", values)
    main = _pickle_state({"w": _tensor(rebuild, storage, 0, (8,), (1,))}, (torch_mod.FloatStorage,))
    path = _legacy_file(tmp_path / "cut.pth", main, ["7"], [(values.tobytes()[:12], 4)])
    with pytest.raises(TorchWeightsError, match=r"cut\.pth: storage 7 holds 3 elements"):
        load_state_dict(path)


def test_real_lite0_file_loads_without_torch() -> None:
    """The shipped weights load in a process where importing torch is impossible."""
    from cityseg.models.efficientnet_lite import imagenet_weights_path

    code = (
        "import sys\n"
        "class Block:\n"  # any `import torch` now raises, even where torch is installed
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'torch': raise ImportError('torch is blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from cityseg.models.torch_weights import load_state_dict\n"
        f"t = load_state_dict({str(imagenet_weights_path())!r})\n"
        "assert not any(m.split('.')[0] == 'torch' for m in sys.modules)\n"
        "print(len(t), sum(v.size for v in t.values()), t['_conv_stem.weight'].shape)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.split() == ["296", "4694073", "(32,", "3,", "3,", "3)"]
