"""Strict readers for the wire form of overlay messages (used by :mod:`overlays.codec`).

Every reader raises :class:`~overlays.errors.ProtocolError` naming the offending field on a
wrong type, a missing or unknown key, an out-of-range number, a bad pattern, or a malformed
array blob ``{"dtype", "shape", "data"}`` (little-endian; base64 text in JSON).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from overlays.errors import ProtocolError
from overlays.messages import ID_PATTERN, MAX_ARRAY_ELEMENTS, MAX_MAP_ENTRIES, MAX_STR_LEN

T = TypeVar("T")
ID_RE = re.compile(ID_PATTERN)
DTYPES = {"<u1": np.uint8, "<u4": np.uint32, "<f4": np.float32, "<f8": np.float64}
UINT64_MAX = 2**64 - 1
INT64_MAX = 2**63 - 1

class WireMap:
    """Reads one wire map strictly: typed getters, then :meth:`done` rejects unknown keys."""

    def __init__(self, obj: Any, path: str, json_mode: bool) -> None:
        if not isinstance(obj, dict):
            raise ProtocolError(f"{path or 'message'}: expected a map, got {type(obj).__name__}")
        self.obj: dict[str, Any] = obj
        self.path = path
        self.json = json_mode
        self.used: set[str] = set()

    def _p(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def raw(self, key: str) -> Any:
        if key not in self.obj:
            raise ProtocolError(f"{self._p(key)}: missing")
        self.used.add(key)
        return self.obj[key]

    def done(self) -> None:
        extra = set(self.obj) - self.used
        if extra:
            raise ProtocolError(f"{self.path or 'message'}: unknown keys {sorted(map(str, extra))[:5]}")

    def int_(self, key: str, lo: int = 0, hi: int = INT64_MAX) -> int:
        v = self.raw(key)
        if isinstance(v, bool) or not isinstance(v, int):
            raise ProtocolError(f"{self._p(key)}: expected an integer, got {type(v).__name__}")
        if not lo <= v <= hi:
            raise ProtocolError(f"{self._p(key)}: {v} outside [{lo}, {hi}]")
        return v

    def float_(self, key: str, lo: float = -math.inf, hi: float = math.inf) -> float:
        return read_float(self.raw(key), self._p(key), lo, hi)

    def str_(self, key: str, pattern: re.Pattern[str] | None = None, max_len: int = MAX_STR_LEN) -> str:
        return read_str(self.raw(key), self._p(key), pattern, max_len)

    def opt_str(self, key: str, pattern: re.Pattern[str] | None = None) -> str | None:
        v = self.raw(key)
        return None if v is None else read_str(v, self._p(key), pattern, MAX_STR_LEN)

    def enum(self, key: str, allowed: tuple[str, ...]) -> Any:
        v = self.str_(key)
        if v not in allowed:
            raise ProtocolError(f"{self._p(key)}: {v!r} is not one of {list(allowed)}")
        return v

    def bool_(self, key: str) -> bool:
        v = self.raw(key)
        if not isinstance(v, bool):
            raise ProtocolError(f"{self._p(key)}: expected a boolean, got {type(v).__name__}")
        return v

    def list_(self, key: str, max_len: int, item: Callable[[Any, str], T]) -> tuple[T, ...]:
        v = self.raw(key)
        if not isinstance(v, list):
            raise ProtocolError(f"{self._p(key)}: expected a list, got {type(v).__name__}")
        if len(v) > max_len:
            raise ProtocolError(f"{self._p(key)}: {len(v)} items exceed the limit {max_len}")
        return tuple(item(x, f"{self._p(key)}[{i}]") for i, x in enumerate(v))

    def vec3(self, key: str) -> tuple[float, float, float]:
        t = self.list_(key, 3, lambda x, p: read_float(x, p, -1e6, 1e6))
        if len(t) != 3:
            raise ProtocolError(f"{self._p(key)}: expected 3 numbers, got {len(t)}")
        return (t[0], t[1], t[2])

    def fmap(self, key: str, lo: float, hi: float) -> dict[str, float]:
        v = self.raw(key)
        if not isinstance(v, dict):
            raise ProtocolError(f"{self._p(key)}: expected a map, got {type(v).__name__}")
        if len(v) > MAX_MAP_ENTRIES:
            raise ProtocolError(f"{self._p(key)}: {len(v)} entries exceed {MAX_MAP_ENTRIES}")
        return {read_str(k, f"{self._p(key)} key", ID_RE, 64): read_float(x, f"{self._p(key)}.{k}", lo, hi)
                for k, x in v.items()}

    def smap(self, key: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        """A map of ids to one of ``allowed`` strings."""
        v = self.raw(key)
        if not isinstance(v, dict):
            raise ProtocolError(f"{self._p(key)}: expected a map, got {type(v).__name__}")
        if len(v) > MAX_MAP_ENTRIES:
            raise ProtocolError(f"{self._p(key)}: {len(v)} entries exceed {MAX_MAP_ENTRIES}")
        out: dict[str, Any] = {}
        for k, x in v.items():
            name = read_str(k, f"{self._p(key)} key", ID_RE, 64)
            if x not in allowed:
                raise ProtocolError(f"{self._p(key)}.{name}: expected one of {list(allowed)}, got {x!r}")
            out[name] = x
        return out

    def array(self, key: str, dtype: str, shape: tuple[int | None, ...], max_elems: int = MAX_ARRAY_ELEMENTS,
              ) -> npt.NDArray[Any]:
        return read_array(self.raw(key), self._p(key), dtype, shape, max_elems, self.json)


def read_float(v: Any, path: str, lo: float, hi: float) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ProtocolError(f"{path}: expected a number, got {type(v).__name__}")
    try:
        f = float(v)
    except OverflowError as e:
        raise ProtocolError(f"{path}: number out of range") from e
    if not math.isfinite(f) or not lo <= f <= hi:
        raise ProtocolError(f"{path}: {f} is not finite or outside [{lo}, {hi}]")
    return f


def read_str(v: Any, path: str, pattern: re.Pattern[str] | None, max_len: int) -> str:
    if not isinstance(v, str):
        raise ProtocolError(f"{path}: expected a string, got {type(v).__name__}")
    if len(v) > max_len:
        raise ProtocolError(f"{path}: string of {len(v)} chars exceeds {max_len}")
    if pattern is not None and not pattern.fullmatch(v):
        raise ProtocolError(f"{path}: {v[:40]!r} does not match {pattern.pattern}")
    return v


def read_array(v: Any, path: str, dtype: str, shape: tuple[int | None, ...], max_elems: int,
           json_mode: bool) -> npt.NDArray[Any]:
    m = WireMap(v, path, json_mode)
    got = m.str_("dtype")
    if got != dtype:
        raise ProtocolError(f"{path}.dtype: expected {dtype!r}, got {got!r}")
    dims = m.list_("shape", 4, lambda x, p: int_item(x, p, 0, MAX_ARRAY_ELEMENTS))
    if len(dims) != len(shape) or any(want is not None and want != d for want, d in zip(shape, dims, strict=False)):
        raise ProtocolError(f"{path}.shape: expected {list(shape)} (None = any), got {list(dims)}")
    n = math.prod(dims)
    if n > max_elems:
        raise ProtocolError(f"{path}: {n} elements exceed the limit {max_elems}")
    raw = m.raw("data")
    if json_mode:
        if not isinstance(raw, str):
            raise ProtocolError(f"{path}.data: expected base64 text in JSON, got {type(raw).__name__}")
        try:
            buf = base64.b64decode(raw.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError) as e:
            raise ProtocolError(f"{path}.data: invalid base64") from e
    else:
        if not isinstance(raw, bytes):
            raise ProtocolError(f"{path}.data: expected binary, got {type(raw).__name__}")
        buf = raw
    m.done()
    dt = np.dtype(DTYPES[dtype]).newbyteorder("<")
    if len(buf) != n * dt.itemsize:
        raise ProtocolError(f"{path}.data: {len(buf)} bytes, expected {n * dt.itemsize} for shape {list(dims)}")
    a = np.frombuffer(buf, dtype=dt).astype(DTYPES[dtype]).reshape(dims)
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        raise ProtocolError(f"{path}: non-finite values")
    return a


def int_item(v: Any, path: str, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ProtocolError(f"{path}: expected an integer in [{lo}, {hi}]")
    return v


def id_item(v: Any, path: str) -> str:
    return read_str(v, path, ID_RE, 64)


def rigid(a: npt.NDArray[np.float64], path: str) -> npt.NDArray[np.float64]:
    R = a[:3, :3]
    # bound the entries first: a rotation's are within [-1, 1], and huge values would overflow below
    if not (np.all(np.isfinite(a)) and np.all(np.abs(R) <= 1.0 + 1e-5) and np.allclose(R @ R.T, np.eye(3), atol=1e-5)
            and np.allclose(a[3], (0, 0, 0, 1)) and np.linalg.det(R) > 0):
        raise ProtocolError(f"{path}: not a rigid 4x4 transform")
    return a
