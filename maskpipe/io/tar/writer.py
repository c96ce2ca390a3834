"""Deterministic tar encoding of samples: fixed mtime, mode, owners; sorted members.

Every sample becomes one contiguous byte string (its members' headers, data and padding), so a
shard is the concatenation of its samples' bytes plus the end-of-archive marker, and the same
sample always encodes to the same bytes wherever it is processed.

Why not ``tarfile``/webdataset's ``TarWriter``: they build a ``TarInfo`` per member (tens of µs
each) and stamp wall-clock times unless told otherwise; this writer fills a 512-byte template
(FIELD-NOTES: tar writing dominates the naive pipeline's time). :func:`member` does it for one
member in plain Python and is the definition; :func:`pack_batch` does a whole batch with numpy
and Arrow, byte for byte the same (tests/perf), with no Python object per sample.
"""
from __future__ import annotations

import hashlib
import json
import re
import threading
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from maskpipe.io.tar import BLOCK, KEY_MEMBER, MAX_NAME
from maskpipe.io.tar.jsonvalue import json_payloads


def _template() -> bytes:
    h = bytearray(BLOCK)
    h[100:108] = b"0000644\0"
    h[108:116] = b"0000000\0"
    h[116:124] = b"0000000\0"
    h[124:136] = b"00000000000\0"
    h[136:148] = b"00000000000\0"
    h[148:156] = b" " * 8
    h[156:157] = b"0"
    h[257:263] = b"ustar\0"
    h[263:265] = b"00"
    return bytes(h)


_TEMPLATE = _template()
_TEMPLATE_SUM = sum(_TEMPLATE) - sum(_TEMPLATE[124:136]) - sum(_TEMPLATE[156:157])
_PAD = [b"\0" * ((BLOCK - i) % BLOCK) for i in range(BLOCK)]


def _header(name: bytes, size: int, typeflag: bytes = b"0") -> bytes:
    h = bytearray(_TEMPLATE)
    h[0:len(name)] = name
    size_field = b"%011o\0" % size
    h[124:136] = size_field
    h[156:157] = typeflag
    chk = _TEMPLATE_SUM + sum(name) + sum(size_field) + typeflag[0]
    h[148:156] = b"%06o\0 " % chk
    return bytes(h)


def _pax_path(name: bytes) -> bytes:
    body = b" path=" + name + b"\n"
    n = len(body) + 1
    while len(str(n).encode()) + len(body) != n:
        n = len(str(n).encode()) + len(body)
    record = str(n).encode() + body
    return _header(b"././@PaxHeader", len(record), b"x") + record + _PAD[len(record) % BLOCK]


def member(name: bytes, data: bytes) -> bytes:
    """One tar member (header, data, padding). Names over 100 bytes get a PAX path record."""
    if len(name) > 100:
        return _pax_path(name) + _header(name[:100], len(data)) + data + _PAD[len(data) % BLOCK]
    return _header(name, len(data)) + data + _PAD[len(data) % BLOCK]


# ----------------------------------------------------------------------------- key escaping

_ESCAPE = {c: "%%%02X" % c for c in list(range(0x20)) + [0x7F, ord("."), ord("/"), ord("\\"), ord("%")]}


def escape_key(key: str) -> str:
    """Percent-escape what WebDataset would split on (``.``), path separators, ``%`` and control
    characters, and a leading ``_`` (webdataset leaves members whose name starts with ``__``
    undecoded, as metadata). Injective, so distinct keys stay distinct (``user.v2`` ->
    ``user%2Ev2``)."""
    head = "%5F" if key.startswith("_") else ""
    rest = key[1:] if head else key
    if not any(ord(ch) in _ESCAPE for ch in rest):
        return head + rest
    return head + "".join(_ESCAPE.get(ord(ch), ch) for ch in rest)


_NEEDS_ESCAPE = re.compile("^_|[" + re.escape("".join(map(chr, _ESCAPE))) + "]")


def escape_keys(keys: list[str]) -> list[str]:
    """:func:`escape_key` over a batch; a regex scan skips the keys that need nothing."""
    search = _NEEDS_ESCAPE.search
    return [escape_key(k) if search(k) else k for k in keys]


LONG_KEY_MARK = "%~"           # never in an escaped key (there '%' always starts '%XX')
_KEY_HASH_HEX = 32             # 128 bits of sha256 of the escaped key
MAX_SUFFIX = MAX_NAME - 1 - len(LONG_KEY_MARK) - _KEY_HASH_HEX   # 65 bytes


def short_key(escaped: str, budget: int) -> str:
    """A key of at most ``budget`` bytes standing for an escaped key that is too long:
    its leading bytes (cut between characters and escapes), ``%~`` and 32 hex digits of its
    sha256. Injective in practice (128 bits) and never equal to an escaped key."""
    digest = hashlib.sha256(escaped.encode("utf-8")).hexdigest()[:_KEY_HASH_HEX]
    raw = escaped.encode("utf-8")
    cut = max(0, budget - len(LONG_KEY_MARK) - _KEY_HASH_HEX)
    while cut and (cut < len(raw) and (raw[cut] & 0xC0) == 0x80):   # inside a UTF-8 character
        cut -= 1
    for back in (1, 2):                                             # inside a %XX escape
        if cut >= back and raw[cut - back:cut - back + 1] == b"%":
            cut -= back
            break
    return raw[:cut].decode("utf-8") + LONG_KEY_MARK + digest


def name_samples(keys: list[str], columns: list[tuple[str, "Payloads"]]) -> tuple[list[str], list]:
    """Escaped member keys for a batch, every member name within the 100-byte USTAR field.

    A sample whose ``<key>.<suffix>`` would exceed 100 bytes for one of the members it
    writes gets :func:`short_key` instead, and its original key in a member of its own,
    ``<short key>.__key__.txt`` (UTF-8). The decision depends on the sample alone. So no
    reader needs PAX headers (wids and some tar tools do not read them).

    Args:
        keys: original (unescaped) sample keys.
        columns: (member suffix, payloads) per field, as :func:`pack_batch` takes them.

    Returns:
        (escaped keys, columns plus the ``__key__.txt`` column when a sample needed it).

    Raises:
        InputError: a member suffix is over 65 bytes (no key would fit beside it).
    """
    from maskpipe.errors import InputError

    escaped = escape_keys(keys)
    n = len(escaped)
    if not n:
        return escaped, columns
    longest = np.zeros(n, dtype=np.int64)
    for suffix, p in columns:
        width = len(suffix.encode("utf-8")) + 1
        if width - 1 > MAX_SUFFIX and (p.valid is None or p.valid.any()):
            raise InputError(f"a field's member suffix is {width - 1} bytes long; tar member names must fit "
                             f"{MAX_NAME} bytes, so field names may be at most {MAX_SUFFIX} bytes with their "
                             "extension: shorten or drop the column in the input")
        np.maximum(longest, np.where(p.valid, width, 0) if p.valid is not None else width, out=longest)
    klen = np.fromiter((len(k) if k.isascii() else len(k.encode("utf-8")) for k in escaped), dtype=np.int64, count=n)
    too_long = np.flatnonzero(klen + longest > MAX_NAME)
    if not len(too_long):
        return escaped, columns
    budget = MAX_NAME - np.maximum(longest, len(KEY_MEMBER) + 1)
    originals: list[bytes | None] = [None] * n
    for i in too_long.tolist():
        originals[i] = keys[i].encode("utf-8")
        escaped[i] = short_key(escaped[i], int(budget[i]))
    return escaped, [*columns, (KEY_MEMBER, Payloads.from_list(originals))]


def escape_field(field: str) -> str:
    """Field names become member suffixes: only path separators and control chars are escaped."""
    return "".join("%%%02X" % ord(ch) if (ord(ch) < 0x20 or ch in "/\\%") else ch for ch in field)


# ------------------------------------------------------------------------- value encoding

def _is_numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def member_ext(t: pa.DataType) -> str:
    """The extension a column of Arrow type ``t`` is written with (``""``: bytes, as they are)."""
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return ""
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "txt"
    if _is_list(t) and _is_numeric(t.value_type):
        return "npy"
    return "json"


def member_suffix(field: str, ext: str) -> str:
    """Member suffix (after ``<key>.``) of field ``field`` written with extension ``ext``."""
    f = escape_field(field)
    if not ext:
        return f
    return f if (f == ext or f.endswith("." + ext)) else f"{f}.{ext}"


def field_suffix(field: str, t: pa.DataType) -> str:
    """Member suffix (after ``<key>.``) for a field of Arrow type ``t``."""
    return member_suffix(field, member_ext(t))


def first_clash(columns) -> tuple[str, str, str] | None:
    """(column a, column b, suffix) of the first two of ``columns`` ((name, member suffix)
    pairs) that would be written as the same member (``text`` and ``text.txt``: both
    ``<key>.text.txt``, which tar readers refuse or merge), else None. A column written as the
    reserved ``__key__.txt`` member clashes with maskpipe itself: column b is then ``""``."""
    seen: dict[str, str] = {}
    for name, suffix in columns:
        if suffix == KEY_MEMBER:  # reserved for the original key of a sample whose key is shortened
            return name, "", suffix
        if suffix in seen:
            return seen[suffix], name, suffix
        seen[suffix] = name
    return None


@lru_cache(maxsize=4096)
def npy_header(descr: str, shape: tuple) -> bytes:
    """NumPy format 1.0 header, byte-identical to what ``np.save`` writes."""
    shape_s = "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
    d = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape_s)
    pad = 64 - (10 + len(d) + 1) % 64
    d = d + " " * (pad % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(d).to_bytes(2, "little") + d.encode("latin1")


class Payloads:
    """One column's member payloads without a Python object per row.

    Row ``i``'s payload is ``prefixes[prefix_idx[i]]`` (when there are prefixes, e.g. ``.npy``
    headers) followed by ``body[offsets[i]:offsets[i + 1]]``; rows where ``valid`` is False
    have no member.

    Args:
        body: uint8 array holding the rows' bodies back to back.
        offsets: int64 array of ``n + 1`` byte offsets into ``body``.
        valid: bool array (n), or None when every row has a payload.
        prefixes: distinct prefixes, or None.
        prefix_idx: int array (n) indexing ``prefixes``, or None.
    """

    __slots__ = ("body", "offsets", "valid", "prefixes", "prefix_idx")

    def __init__(self, body: np.ndarray, offsets: np.ndarray, valid: np.ndarray | None = None,
                 prefixes: list[bytes] | None = None, prefix_idx: np.ndarray | None = None):
        self.body, self.offsets, self.valid = body, offsets, valid
        self.prefixes, self.prefix_idx = prefixes, prefix_idx

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def prefix_lengths(self) -> np.ndarray:
        if self.prefixes is None:
            return np.zeros(len(self), dtype=np.int64)
        return np.array([len(p) for p in self.prefixes], dtype=np.int64)[self.prefix_idx]

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets) + self.prefix_lengths()

    def get(self, i: int) -> bytes | None:
        if self.valid is not None and not self.valid[i]:
            return None
        body = self.body[self.offsets[i]:self.offsets[i + 1]].tobytes()
        return body if self.prefixes is None else self.prefixes[self.prefix_idx[i]] + body

    def to_list(self) -> list[bytes | None]:
        return [self.get(i) for i in range(len(self))]

    @classmethod
    def from_list(cls, values: list[bytes | None]) -> "Payloads":
        return cls.from_arrow(pa.array(values, pa.large_binary()))

    @classmethod
    def from_arrow(cls, arr: pa.Array) -> "Payloads":
        """Zero-copy view of a (large_)string / (large_)binary / fixed_size_binary array."""
        n = len(arr)
        t = arr.type
        bufs = arr.buffers()
        valid = arr.is_valid().to_numpy(zero_copy_only=False) if arr.null_count else None
        if pa.types.is_fixed_size_binary(t):
            w = t.byte_width
            body = _u8(bufs[1])
            offsets = (np.arange(n + 1, dtype=np.int64) + arr.offset) * w
        else:
            large = pa.types.is_large_binary(t) or pa.types.is_large_string(t)
            ot = np.int64 if large else np.int32
            offsets = np.frombuffer(bufs[1], dtype=ot, count=n + 1, offset=arr.offset * np.dtype(ot).itemsize) \
                if bufs[1] is not None else np.zeros(n + 1, dtype=ot)
            offsets = offsets.astype(np.int64)
            body = _u8(bufs[2])
        return cls(body, offsets, valid)


def _u8(buf) -> np.ndarray:
    return np.frombuffer(buf, dtype=np.uint8) if buf is not None and buf.size else np.zeros(0, dtype=np.uint8)


def column_payloads(arr: pa.Array) -> Payloads:
    """Member payloads of one column (see :func:`encode_column` for the encoding)."""
    t = arr.type
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) \
            or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return Payloads.from_arrow(arr)
    if _is_list(t) and _is_numeric(t.value_type):
        # flatten() drops the values behind null rows (fixed-size lists too), so a null row
        # must count as length 0 here or every later row would read its neighbour's values.
        lengths = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False).astype(np.int64)
        vals = arr.flatten().to_numpy(zero_copy_only=False)
        if vals.dtype == np.bool_:
            vals = vals.astype(np.bool_)
        vals = np.ascontiguousarray(vals.astype(vals.dtype.newbyteorder("<"), copy=False))
        descr = np.lib.format.dtype_to_descr(vals.dtype)
        offsets = np.zeros(len(arr) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        valid = arr.is_valid().to_numpy(zero_copy_only=False) if arr.null_count else None
        uniq, idx = np.unique(lengths, return_inverse=True)
        prefixes = [npy_header(descr, (int(k),)) for k in uniq]
        return Payloads(vals.reshape(-1).view(np.uint8), offsets * vals.dtype.itemsize, valid, prefixes,
                        idx.reshape(-1))
    return Payloads.from_list(json_payloads(arr))


def encode_column(arr: pa.Array) -> list[bytes | None]:
    """Per-row member payloads for one column (None where the value is null).

    ``str`` -> UTF-8; bytes as they are; numeric lists -> ``.npy`` (format 1.0, little-endian);
    anything else -> compact sorted JSON (:mod:`maskpipe.io.tar.jsonvalue`: ISO 8601 times,
    base64 bytes, ``null`` for a NaN element only).
    """
    return column_payloads(arr).to_list()


def pack_samples(keys: list[str], columns: list[tuple[str, list[bytes | None]]]) -> list[bytes]:
    """Encode each sample (escaped key, payload per field) to its tar bytes.

    ``columns`` are (member suffix, payloads); members of a sample are written sorted by name.
    """
    return pack_batch(keys, [(s, Payloads.from_list(p)) for s, p in columns]).to_pylist()


_SHIFT11 = np.arange(10, -1, -1, dtype=np.int64) * 3   # octal digits of the 11-digit size field
_SHIFT6 = np.arange(5, -1, -1, dtype=np.int64) * 3     # and of the 6-digit checksum
_MAX_SIZE = 8 ** 11                                    # larger sizes do not fit the size field
_scratch = threading.local()


def _header_rows(n: int, c: int) -> np.ndarray:
    """A reusable (n, 512) header array for field ``c``: the template, name field emptied.

    Reused across batches (per thread and field): the join in :func:`pack_batch` copies the
    headers out, and every field that differs between members (name, size, checksum) is
    rewritten each time."""
    pool = getattr(_scratch, "headers", None)
    if pool is None:
        pool = _scratch.headers = {}
    h = pool.get(c)
    if h is None or len(h) < n:
        h = np.empty((max(n, 1024), BLOCK), dtype=np.uint8)
        h[:] = np.frombuffer(_TEMPLATE, dtype=np.uint8)
        h[:, 154] = 0
        h[:, 155] = 32
        pool[c] = h
    h = h[:n]
    h[:, :100] = 0
    return h


@lru_cache(maxsize=1)
def _empty() -> pa.Scalar:
    return pa.scalar(b"", pa.large_binary())   # built on first use: pyarrow imports pandas for it


def _zeros(n: int) -> pa.Buffer:
    z = getattr(_scratch, "zeros", None)
    if z is None or z.size < n:
        z = pa.py_buffer(np.zeros(max(n, 1 << 20), dtype=np.uint8))
        _scratch.zeros = z
    return z


def _binary(n: int, offsets: np.ndarray, data, valid: np.ndarray | None) -> pa.Array:
    bitmap = None if valid is None else pa.py_buffer(np.packbits(valid, bitorder="little"))
    data = data if isinstance(data, pa.Buffer) else pa.py_buffer(data)
    return pa.LargeBinaryArray.from_buffers(pa.large_binary(), n, [bitmap, pa.py_buffer(offsets), data])


def _key_bytes(keys) -> Payloads:
    """The keys' UTF-8 bytes (from an Arrow string/binary array without copying, or a list)."""
    if isinstance(keys, pa.ChunkedArray):
        keys = keys.combine_chunks()
    if not isinstance(keys, pa.Array):
        keys = pa.array(keys, pa.large_string())
    elif not (pa.types.is_binary(keys.type) or pa.types.is_large_binary(keys.type)
              or pa.types.is_string(keys.type) or pa.types.is_large_string(keys.type)):
        keys = keys.cast(pa.large_string())
    return Payloads.from_arrow(keys)


def _gather_rows(body: np.ndarray, starts: np.ndarray, lengths: np.ndarray, width: int) -> np.ndarray:
    """(k, width) matrix: row j holds body[starts[j]:starts[j] + lengths[j]], zero padded."""
    if width <= 0 or not len(starts) or not len(body):
        return np.zeros((len(starts), max(width, 0)), dtype=np.uint8)
    cols = np.arange(width, dtype=np.int64)
    idx = np.minimum(starts[:, None] + cols, len(body) - 1)
    return np.where(cols < lengths[:, None], body[idx], np.uint8(0))


def pack_batch(keys, columns: list[tuple[str, Payloads]]) -> pa.LargeBinaryArray:
    """Vectorised :func:`pack_samples`: every sample's tar bytes as one Arrow array.

    Per field, the headers of all samples are filled column-wise in one (n, 512) uint8 array
    (name, octal size and checksum), and Arrow's ``binary_join_element_wise`` concatenates, per
    sample, header, payload and zero padding of each member in C++: no Python object per sample
    or member. Samples with a member whose name needs a PAX record (over 100 bytes) or whose size
    overflows the size field go through :func:`member`, so every byte matches the scalar path.

    Args:
        keys: escaped sample keys (a list of str or an Arrow string/binary array).
        columns: (member suffix, payloads) per field.

    Returns:
        large_binary array: sample ``i``'s members back to back (empty when it has none).
    """
    n = len(keys)
    cols = sorted(columns, key=lambda c: c[0])
    if n == 0 or not cols:
        return pa.array([b""] * n, pa.large_binary())
    kp = _key_bytes(keys)
    klen = np.diff(kp.offsets)
    sufs = [("." + s).encode("utf-8") for s, _ in cols]
    lengths = [p.lengths() for _, p in cols]
    valids = [np.ones(n, dtype=bool) if p.valid is None else p.valid for _, p in cols]
    slow = np.zeros(n, dtype=bool)
    used = np.zeros(n, dtype=bool)
    for suf, ln, v in zip(sufs, lengths, valids):
        slow |= v & ((klen + len(suf) > 100) | (ln >= _MAX_SIZE))
        used |= v
    fast_keys = ~slow
    # keys of samples with a member here fit the name field (< 100 bytes); others are not written
    width = int(klen[fast_keys & used].max()) if (fast_keys & used).any() else 0
    K = _gather_rows(kp.body, kp.offsets[:-1], klen, width)
    ksum = K.sum(axis=1, dtype=np.int64)
    pieces = []
    for c, ((_, p), suf, ln, v) in enumerate(zip(cols, sufs, lengths, valids)):
        ok = v & fast_keys
        H = _header_rows(n, c)
        H[:, :width] = K
        sb = np.frombuffer(suf, dtype=np.uint8)
        rows = np.flatnonzero(ok)
        H[rows[:, None], klen[rows, None] + np.arange(len(suf), dtype=np.int64)] = sb
        digits = (ln[:, None] >> _SHIFT11) & 7
        H[:, 124:135] = 48 + digits
        chk = _TEMPLATE_SUM + 48 + ksum + int(sb.sum()) + 11 * 48 + digits.sum(axis=1)
        H[:, 148:154] = 48 + ((chk[:, None] >> _SHIFT6) & 7)
        pieces.append(_head(H, p, ok))
        body_offsets = p.offsets - p.offsets[0]
        pieces.append(_binary(n, body_offsets, p.body[p.offsets[0]:p.offsets[-1]], ok))
        pad = -ln % BLOCK
        pad_offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.where(ok, pad, 0), out=pad_offsets[1:])
        pieces.append(_binary(n, pad_offsets, _zeros(int(pad_offsets[-1])), ok))
    out = pc.binary_join_element_wise(*pieces, _empty(), null_handling="replace", null_replacement="")
    if slow.any():
        idx = np.flatnonzero(slow)
        whole = [b"".join(member(kp.get(i) + suf, p.get(i)) for (_, p), suf in zip(cols, sufs) if p.get(i) is not None)
                 for i in idx.tolist()]
        out = pc.replace_with_mask(out, pa.array(slow), pa.array(whole, pa.large_binary()))
    return out


def _head(H: np.ndarray, p: Payloads, ok: np.ndarray) -> pa.Array:
    """Per member: its tar header followed by the payload's prefix (``.npy`` header), if any."""
    n = len(H)
    if p.prefixes is None:
        return _binary(n, np.arange(n + 1, dtype=np.int64) * BLOCK, H, ok)
    plen = np.array([len(x) for x in p.prefixes], dtype=np.int64)
    w = int(plen.max())
    P = np.zeros((len(p.prefixes), w), dtype=np.uint8)
    for j, x in enumerate(p.prefixes):
        P[j, :len(x)] = np.frombuffer(x, dtype=np.uint8)
    M = np.concatenate([H, P[p.prefix_idx]], axis=1)
    rl = BLOCK + plen[p.prefix_idx]
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(rl, out=offsets[1:])
    if (plen == w).all():
        return _binary(n, offsets, M.reshape(-1), ok)
    return _binary(n, offsets, M[np.arange(M.shape[1]) < rl[:, None]], ok)
