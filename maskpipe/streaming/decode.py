"""Decoding a shard member as ``maskpipe.stream`` yields it; never unpickles.

``.npy`` -> numpy array (object arrays refused), ``.txt`` -> str, ``.json`` -> object, anything
else (``.pyd``, ``.pth``, ``.jpg``, ...) -> raw bytes.

``.npy`` members are decoded without ``numpy.lib.format.read_array``'s per-call header parse (an
``ast.literal_eval`` of the header dict, most of a small array's decode time): the parsed header
is cached by its exact bytes, so a shard of token arrays pays one parse per distinct length.
"""
from __future__ import annotations

import io
import json

import numpy as np

from maskpipe.streaming.errors import ShardError

_MAGIC = b"\x93NUMPY"
_HEADERS_MAX = 4096
# Cache: the bytes of an .npy preamble (magic, version, length, header dict) -> (dtype, shape,
# fortran_order). Bounded: cleared when it holds _HEADERS_MAX entries. Only headers numpy's own
# parser accepted (and that hold no Python objects) are stored.
_HEADERS: dict[bytes, tuple[np.dtype, tuple[int, ...], bool]] = {}
_PICKLE_REFUSED = "Object arrays cannot be loaded when allow_pickle=False"


def npy_array(data: bytes) -> np.ndarray:
    """An ``.npy`` payload as a writable array: the same array, dtype and memory order that
    ``numpy.lib.format.read_array(BytesIO(data), allow_pickle=False)`` gives.

    Raises:
        ValueError: not an ``.npy`` payload (or a truncated one), or an object array (it would
            need unpickling).
    """
    if data[:6] == _MAGIC and data[6:8] in (b"\x01\x00", b"\x02\x00"):
        start = 10 if data[6] == 1 else 12
        end = start + int.from_bytes(data[8:start], "little")
        dtype, shape, fortran = npy_header(data[:end])
        count = 1
        for n in shape:
            count *= n
        if len(data) - end < count * dtype.itemsize:
            raise ValueError("EOF: the array data is shorter than its header says")
        flat = np.frombuffer(data, dtype, count, end).copy()   # copy: writable, owns its memory
        return flat.reshape(shape, order="F" if fortran else "C")
    # npy 3.0 (utf-8 field names) or anything unusual: numpy's own reader
    return np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)


def npy_header(preamble: bytes) -> tuple[np.dtype, tuple[int, ...], bool]:
    """(dtype, shape, fortran order) of an ``.npy`` preamble (magic, version, length, header
    dict), parsed once per distinct preamble (the writer's side reads its own headers with it too:
    :mod:`maskpipe.fields`).

    Raises:
        ValueError: not a version 1 or 2 ``.npy`` preamble, or an object array.
    """
    parsed = _HEADERS.get(preamble)
    return parsed if parsed is not None else _parse_header(preamble)


def _parse_header(preamble: bytes) -> tuple[np.dtype, tuple[int, ...], bool]:
    f = io.BytesIO(preamble)
    version = np.lib.format.read_magic(f)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = read(f)
    if dtype.hasobject:
        raise ValueError(_PICKLE_REFUSED)
    if len(_HEADERS) >= _HEADERS_MAX:
        _HEADERS.clear()
    _HEADERS[preamble] = parsed = (dtype, tuple(shape), bool(fortran))
    return parsed


def decode_member(field: str, data: bytes, label: str, position: int):
    """One member's value (see the module docstring); a payload that does not decode as its
    extension says is a ShardError naming the shard, sample and field (never the value)."""
    ext = field.rpartition(".")[2]
    try:
        if ext == "npy":
            # never np.load: it would also accept a zip (npz) payload, and unpickle if allowed
            return npy_array(data)
        if ext == "txt":
            return data.decode("utf-8")
        if ext == "json":
            return json.loads(data)
    except (ValueError, UnicodeDecodeError, EOFError) as e:
        hint = ("object arrays need unpickling, which maskpipe never does"
                if "allow_pickle" in str(e) else type(e).__name__)
        raise ShardError(f"{label}: sample #{position} field {field!r} does not decode as "
                         f".{ext} ({hint})") from None
    return data
