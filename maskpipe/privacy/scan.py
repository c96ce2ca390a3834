"""PII scan of a string column: one RE2 pass over the whole batch finds candidates, Python
validates only those.

How one batch is scanned:

1. The rows are joined into one buffer, each between two ``0xFF`` bytes (an Arrow kernel;
   ``0xFF`` never occurs in UTF-8, and no candidate pattern can match it, so no candidate spans
   two rows and every row starts after a boundary byte).
2. One RE2 search over the buffer (``google-re2``, Latin-1 mode, so it works byte-wise) with
   ``BOUNDARY(?:p1|p2|...)``, every extractor's candidate pattern, leftmost-first: RE2's DFA
   runs over the bytes in C; Python sees only the candidates.
3. Bare 12-19 digit runs whose Luhn check fails (reference numbers, the commonest look-alike)
   are dropped at once; every other candidate goes to the validator of the extractor whose
   pattern matched (told apart by its first character): Luhn, mod-97, phonenumbers,
   ipaddress... Context is cut at the row's own bounds.
4. Rows with a valid find: overlapping finds are resolved (longest first, then entity
   priority, then leftmost; linear in the spans) and the row is rebuilt with the replacements.

Why google-re2 and not the earlier Arrow path (``match_substring_regex`` to select rows, then
``replace_substring_regex`` + ``split_pattern`` to cut candidates out) or Hyperscan, measured on
the 10 MB ``scripts/bench_pii.py`` corpus (one core, 8 entity types' patterns): the Arrow
replace alone ran at ~7 ms/MB, one RE2 search over the joined batch at ~1.5 ms/MB plus ~2 us a
candidate, and Hyperscan (``SOM_LEFTMOST``, the same patterns) at ~10 ms/MB with no match at
all and ~13 callbacks per candidate (it reports every end of every match).

A row's output depends on nothing but its own text and the config + key, so the output is
byte-identical however rows are batched.

Example:
    >>> import pyarrow as pa
    >>> from maskpipe.privacy.detectors import build_extractors
    >>> scanner = Scanner(build_extractors(["email"], ["US"]), ["email"], "placeholder")
    >>> out, counts = scanner.scan(pa.array(["mail ann@example.com", "nothing here", None]))
    >>> out.to_pylist(), counts.tolist()
    (['mail <EMAIL>', 'nothing here', None], [[1, 0, 0]])
"""
from __future__ import annotations

import re
from bisect import bisect_right
from typing import Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import re2

from maskpipe.privacy.detectors import BOUNDARY, CONTEXT_BYTES, NER_ENTITIES, RULE_ENTITIES, Extractor, luhn_ok
from maskpipe.privacy.pseudonym import Pseudonymizer

_ROW_SEP = b"\xff"
_PRIORITY = {e: i for i, e in enumerate(RULE_ENTITIES + NER_ENTITIES)}

# (start, end, entity, normalised value); offsets are bytes of the row's UTF-8 text.
Found = tuple[int, int, str, str]
NerFn = Callable[[str], list[tuple[int, int, str]]]


def resolve(spans: list[Found]) -> list[Found]:
    """Non-overlapping spans, chosen longest first, then by entity priority, then leftmost.

    Linear in the total length of the spans (after the sort): the bytes already taken are
    marked in a ``bytearray`` and each span checks its own range with one C-level ``find``,
    instead of comparing it with every span chosen before (which made a 1 MB row of dense PII
    take 10x ten 100 KB rows; see ``scripts/bench_pii.py --scaling``).

    Example:
        >>> resolve([(0, 4, "phone", "a"), (2, 10, "email", "b"), (12, 14, "ipv4", "c")])
        [(2, 10, 'email', 'b'), (12, 14, 'ipv4', 'c')]
    """
    if len(spans) <= 1:
        return spans
    by_start = sorted(set(spans))
    if all(a[1] <= b[0] for a, b in zip(by_start, by_start[1:])):
        return by_start  # nothing overlaps (the common case): every span is chosen
    ordered = sorted(by_start, key=lambda s: (s[0] - s[1], _PRIORITY[s[2]], s[0], s[3]))
    base = min(s[0] for s in ordered)
    taken = bytearray(max(s[1] for s in ordered) - base)
    chosen: list[Found] = []
    for sp in ordered:
        a, b = sp[0] - base, sp[1] - base
        if taken.find(1, a, b) < 0:
            taken[a:b] = b"\x01" * (b - a)
            chosen.append(sp)
    return sorted(chosen)


def extraction_pattern(extractors: Sequence[Extractor]) -> str:
    """One boundary byte, then the first extractor pattern that matches (leftmost-first)."""
    return f"{BOUNDARY}(?:" + "|".join(f"(?:{x.pattern})" for x in extractors) + ")"


def _re2_latin1(pattern: str):
    options = re2.Options()
    options.encoding = re2.Options.Encoding.LATIN1
    return re2.compile(pattern.encode("latin-1"), options)


class Scanner:
    """Finds and replaces PII in string arrays.

    Args:
        extractors: rule-based extractors (see :func:`~maskpipe.privacy.detectors.build_extractors`).
        entities: entity names in counter order (rows of the returned count matrix); finds of
            other entity types are ignored.
        action: ``placeholder | pseudonym | redact``.
        pseudonymizer: required for ``pseudonym``.
        ner: optional ``text -> [(start_char, end_char, entity)]`` (runs on every non-null row).
    """

    def __init__(self, extractors: Sequence[Extractor], entities: Sequence[str], action: str,
                 pseudonymizer: Pseudonymizer | None = None, ner: NerFn | None = None):
        if action == "pseudonym" and pseudonymizer is None:
            raise ValueError("Scanner: action 'pseudonym' needs a Pseudonymizer")
        self.extractors = list(extractors)
        self.entities = list(entities)
        self._row_of = {e: i for i, e in enumerate(self.entities)}
        self.action = action
        self.pseudonymizer = pseudonymizer
        self.ner = ner
        self.pattern = extraction_pattern(self.extractors)
        self._regex = _re2_latin1(self.pattern) if self.extractors else None
        self._compiled = {x.name: re.compile(x.pattern) for x in self.extractors}
        self._python_pattern = re.compile(self.pattern)  # same meaning on Latin-1 text
        self._by_first = {
            chr(c): [x for x in self.extractors if chr(c) in x.first] for c in range(256)}
        self._fixed = {e: b"" if action == "redact" else f"<{e.upper()}>".encode() for e in self.entities}
        self._cards = "credit_card" in self._row_of

    def replacement(self, entity: str, normalised: str) -> bytes:
        """What replaces one find: ``<EMAIL>``, ``<EMAIL_3f2a...>`` or nothing."""
        if self.action == "pseudonym":
            return f"<{entity.upper()}_{self.pseudonymizer.token(entity, normalised)}>".encode()
        return self._fixed[entity]

    def scan(self, arr: pa.Array | pa.ChunkedArray) -> tuple[pa.Array | pa.ChunkedArray, np.ndarray]:
        """Replace PII in a string/large_string array.

        Returns:
            The new array (same type; nulls stay null) and an int64 matrix of shape
            ``(len(entities), len(arr))``: finds replaced, per entity per row.
        """
        if isinstance(arr, pa.ChunkedArray):
            results = [self.scan(chunk) for chunk in arr.chunks]
            counts = [c for _, c in results] or [np.zeros((len(self.entities), 0), np.int64)]
            return pa.chunked_array([a for a, _ in results], arr.type), np.concatenate(counts, axis=1)
        counts = np.zeros((len(self.entities), len(arr)), np.int64)
        if len(arr) == 0 or arr.null_count == len(arr) or not (self.extractors or self.ner):
            return arr, counts
        btype = pa.large_binary() if pa.types.is_large_string(arr.type) else pa.binary()
        data = arr.view(btype)
        buf, starts = self._joined(data)
        found: dict[int, list[Found]] = {}
        if self.extractors:
            self._find(buf, starts, found)
        if self.ner is not None:
            self._find_ner(data, found)
        changed = [k for k in sorted(found) if found[k]]
        if not changed:
            return arr, counts
        new, hit_entity, hit_row = [], [], []
        row_of = self._row_of
        fixed = None if self.action == "pseudonym" else self._fixed
        for k in changed:
            base = starts[k]
            pieces, pos = [], base
            for start, end, entity, norm in resolve(found[k]):
                pieces += [buf[pos:base + start], fixed[entity] if fixed else self.replacement(entity, norm)]
                pos = base + end
                hit_entity.append(row_of[entity])
                hit_row.append(k)
            pieces.append(buf[pos:starts[k + 1] - 2])
            new.append(b"".join(pieces))
        np.add.at(counts, (np.array(hit_entity), np.array(hit_row)), 1)
        mask = np.zeros(len(arr), bool)
        mask[changed] = True
        out = pc.replace_with_mask(data, pa.array(mask), pa.array(new, btype))
        return out.view(arr.type), counts

    @staticmethod
    def _joined(data: pa.Array) -> tuple[memoryview, list[int]]:
        """Every row between two ``0xFF`` bytes, as one buffer (no copy in Python), and where
        each row starts in it (one more entry: where the next would start). A null row is
        empty."""
        sep = pa.scalar(b"", data.type)
        joined = pc.binary_join_element_wise(sep, data, sep, pa.scalar(_ROW_SEP, data.type),
                                             null_handling="replace")
        width = np.int64 if pa.types.is_large_binary(joined.type) else np.int32
        offsets = np.frombuffer(joined.buffers()[1], width)[joined.offset:joined.offset + len(joined) + 1]
        first = int(offsets[0])
        body = memoryview(joined.buffers()[2])[first:int(offsets[-1])]
        starts = (offsets.astype(np.int64) - first + 1).tolist()  # after each row's leading 0xFF
        return body, starts

    def _candidates(self, buf: memoryview):
        """``(start, end)`` of every match in ``buf``, in order. Calls RE2's ``Match`` directly
        when the binding exposes it (no match object per candidate: ~25% of the pass on the
        bench corpus), else the public ``finditer``."""
        match = getattr(getattr(self._regex, "_regexp", None), "Match", None)
        anchor = getattr(getattr(re2, "_Anchor", None), "UNANCHORED", None)
        if match is None or anchor is None:
            for m in self._regex.finditer(bytes(buf)):
                yield m.span()
            return
        pos, end = 0, len(buf)
        while True:
            span = match(anchor, buf, pos, end)[0]
            if span[0] < 0:
                return
            yield span
            pos = span[1]

    def _find(self, buf: memoryview, starts: list[int], found: dict[int, list[Found]]) -> None:
        """Add the valid finds in ``buf`` (keyed by row) to ``found``."""
        known, dispatch, cards = self._row_of, self._dispatch, self._cards
        row, row_end = 0, starts[1] - 2  # the row's own bytes end before its closing 0xFF
        for s, e in self._candidates(buf):
            s += 1  # the candidate starts after its boundary byte
            if s >= row_end:
                row = bisect_right(starts, s) - 1
                row_end = starts[row + 1] - 2
            base = starts[row]
            text = str(buf[s:e], "latin-1")
            if cards and 12 <= len(text) <= 19 and text.isdigit() and text[:2] != "00" and not luhn_ok(text):
                if buf[e] != 0x3A:  # ":"
                    continue  # a bare reference number: no check can accept it
            left = str(buf[max(base, s - CONTEXT_BYTES):s], "latin-1")
            right = str(buf[e:min(row_end, e + CONTEXT_BYTES)], "latin-1")
            x = dispatch(text)
            finds = x.validate(text, left, right)
            if x.name != "numeric":  # number windows already cover their whole cluster
                used = max(f[1] for f in finds) if finds else 1
                if used < len(text):
                    finds += self._rescan(text, right, used)
            off = s - base
            for s_, e_, entity, norm in finds:
                if entity in known:
                    found.setdefault(row, []).append((off + s_, off + e_, entity, norm))

    def _rescan(self, text: str, right: str, tail: int) -> list[Found]:
        """Finds that start in the part of a candidate its validator did not use.

        A candidate can run on into the next token (an IBAN's optional last group takes the
        "99" of "DE89...00 99.151.32.241"), or be no value at all and hide one (the e-mail-shaped
        "root@10.0.55.52" holds an IP address); RE2 went on after the whole candidate, so look
        again, with the same pattern, at what starts inside that tail (``tail`` >= 1).
        """
        region = text[tail - 1:] + right  # from the byte before the tail: it may be a boundary
        out: list[Found] = []
        for m in self._python_pattern.finditer(region):
            if m.start() >= len(text) - tail + 1:
                break  # starts after the candidate: the scan saw it
            cand = m.group()[1:]
            for s, e, entity, norm in self._dispatch(cand).validate(cand, region[max(0, m.start() + 1 - CONTEXT_BYTES):m.start() + 1],
                                                                     region[m.end():m.end() + CONTEXT_BYTES]):
                out.append((tail + m.start() + s, tail + m.start() + e, entity, norm))
        return out

    def _dispatch(self, text: str) -> Extractor:
        """The extractor whose pattern RE2 chose for this candidate: the first (in order)
        that matches at its start, as in RE2's leftmost-first alternation."""
        options = self._by_first[text[0]]
        for x in options[:-1]:
            if (not x.needs or x.needs in text) and self._compiled[x.name].match(text):
                return x
        return options[-1]

    def _find_ner(self, data: pa.Array, found: dict[int, list[Found]]) -> None:
        for row, raw in enumerate(data.to_pylist()):
            if raw is None:
                continue
            text = raw.decode("utf-8")
            for s, e, entity in self.ner(text):
                if entity in self._row_of:
                    b0 = len(text[:s].encode("utf-8"))
                    found.setdefault(row, []).append((b0, b0 + len(text[s:e].encode("utf-8")), entity, text[s:e]))
