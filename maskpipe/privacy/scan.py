"""Vectorised PII scan of a string column: RE2 finds candidates, Python validates only those.

How one batch is scanned (Arrow compute with RE2 kernels, except the steps marked Python):

1. ``match_substring_regex`` with the union of the extractors' prefilters selects the rows
   that can hold a find. Other rows are never touched by Python and come back as they were.
2. On those rows only, one ``replace_substring_regex`` with ``BOUNDARY(?:p1|p2|...)`` (every
   extractor's candidate pattern, leftmost-first) wraps each candidate in ``0xFF`` bytes. The
   text is scanned as binary (RE2 works byte-wise there; ``0xFF`` never occurs in UTF-8, so the
   marker cannot collide with data), prefixed with a space so that a candidate at the start of
   a row has a boundary byte too, and rewritten with ``\\0`` only: asking RE2 for capture
   groups would make it four times slower. ``split_pattern`` on ``0xFF`` gives pieces that
   alternate text / candidate and are exact slices of the row.
3. Bare 12-19 digit runs whose Luhn check fails (reference numbers, the commonest look-alike)
   are rejected for all candidates at once in numpy.
4. (Python) every other candidate goes to the validator of the extractor whose pattern matched
   (told apart by its first character): Luhn, mod-97, phonenumbers, ipaddress... Offsets come
   from piece lengths, context from the neighbouring pieces.
5. (Python, rows with a valid find only) overlapping finds are resolved (longest first, then
   entity priority, then leftmost) and the row is rebuilt with the replacements.

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
from typing import Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from maskpipe.privacy.detectors import BOUNDARY, CONTEXT_BYTES, NER_ENTITIES, RULE_ENTITIES, Extractor
from maskpipe.privacy.pseudonym import Pseudonymizer

_PIECE = b"\xff"
_BARE_DIGITS = "^[^0-9A-Za-z_](?:[1-9][0-9]|0[1-9])[0-9]{10,17}$"
_LUHN_DOUBLE = np.array([0, 2, 4, 6, 8, 1, 3, 5, 7, 9], np.int64)
_PRIORITY = {e: i for i, e in enumerate(RULE_ENTITIES + NER_ENTITIES)}

# (start, end, entity, normalised value); offsets are bytes of the row's UTF-8 text.
Found = tuple[int, int, str, str]
NerFn = Callable[[str], list[tuple[int, int, str]]]


def _luhn_ok_many(data: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Luhn check of the ASCII digit runs ``data[starts[i]:ends[i]]``, vectorised."""
    lengths = ends - starts
    owner = np.repeat(np.arange(len(starts)), lengths)
    pos = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    index = np.repeat(starts, lengths) + pos
    digit = data[index].astype(np.int64) - 48
    from_right = np.repeat(ends - 1, lengths) - index
    value = np.where(from_right % 2 == 1, _LUHN_DOUBLE[digit], digit)
    return np.bincount(owner, weights=value, minlength=len(starts)).astype(np.int64) % 10 == 0


def resolve(spans: list[Found]) -> list[Found]:
    """Non-overlapping spans, chosen longest first, then by entity priority, then leftmost.

    Example:
        >>> resolve([(0, 4, "phone", "a"), (2, 10, "email", "b"), (12, 14, "ipv4", "c")])
        [(2, 10, 'email', 'b'), (12, 14, 'ipv4', 'c')]
    """
    if len(spans) == 1:
        return spans
    ordered = sorted(set(spans), key=lambda s: (s[0] - s[1], _PRIORITY[s[2]], s[0], s[3]))
    chosen: list[Found] = []
    for sp in ordered:
        if all(sp[1] <= c[0] or sp[0] >= c[1] for c in chosen):
            chosen.append(sp)
    return sorted(chosen)


def extraction_pattern(extractors: Sequence[Extractor]) -> str:
    """One boundary byte, then the first extractor pattern that matches (leftmost-first)."""
    return f"{BOUNDARY}(?:" + "|".join(f"(?:{x.pattern})" for x in extractors) + ")"


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
        self.prefilter = "|".join(f"(?:{x.prefilter})" for x in self.extractors)
        self.pattern = extraction_pattern(self.extractors)
        self._compiled = {x.name: re.compile(x.pattern) for x in self.extractors}
        self._python_pattern = re.compile(self.pattern)  # same meaning on Latin-1 text
        self._by_first = {
            chr(c): [x for x in self.extractors if chr(c) in x.first] for c in range(256)}
        self._fixed = {e: b"" if action == "redact" else f"<{e.upper()}>".encode() for e in self.entities}
        self.use_prefilter = True  # tests turn it off to check it never changes a result

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
        if self.ner is not None or not self.use_prefilter:
            cand = pc.is_valid(data)
        else:
            cand = pc.fill_null(pc.match_substring_regex(data, self.prefilter), False)
        rows = np.flatnonzero(cand.to_numpy(zero_copy_only=False))
        if rows.size == 0:
            return arr, counts
        sub = data.filter(cand) if self.ner is None and self.use_prefilter else data.take(pa.array(rows))
        found: dict[int, list[Found]] = {}
        texts: dict[int, bytes] = {}
        if self.extractors:
            self._find(sub, found, texts)
        if self.ner is not None:
            self._find_ner(sub, found)
        changed = [k for k in sorted(found) if found[k]]
        if not changed:
            return arr, counts
        missing = [k for k in changed if k not in texts]
        if missing:
            texts.update(zip(missing, sub.take(pa.array(missing)).to_pylist()))
        new, hit_entity, hit_row = [], [], []
        row_of, replacement = self._row_of, self.replacement
        for k in changed:
            text, pieces, pos = texts[k], [], 0
            for start, end, entity, norm in resolve(found[k]):
                pieces += [text[pos:start], replacement(entity, norm)]
                pos = end
                hit_entity.append(row_of[entity])
                hit_row.append(k)
            pieces.append(text[pos:])
            new.append(b"".join(pieces))
        np.add.at(counts, (np.array(hit_entity), rows[np.array(hit_row)]), 1)
        mask = np.zeros(len(arr), bool)
        mask[rows[changed]] = True
        out = pc.replace_with_mask(data, pa.array(mask), pa.array(new, btype))
        return out.view(arr.type), counts

    def _find(self, sub: pa.Array, found: dict[int, list[Found]], texts: dict[int, bytes]) -> None:
        """Add the valid finds in ``sub`` (keyed by row of ``sub``) to ``found``, and the texts
        of the rows that have candidates to ``texts``."""
        # A leading space gives every candidate a one-byte left boundary (RE2 has no
        # look-behind), and the plain \0 rewrite keeps RE2 on its fast DFA path: asking it for
        # capture groups makes the replace four times slower.
        spaced = pc.binary_join_element_wise(pa.scalar(b" ", sub.type), sub, pa.scalar(b"", sub.type))
        marked = pc.replace_substring_regex(spaced, self.pattern, _PIECE + b"\\0" + _PIECE)
        lists = pc.split_pattern(marked, _PIECE)
        per_row = np.diff(lists.offsets.to_numpy())
        with_cands = np.flatnonzero(per_row > 1)
        if with_cands.size == 0:
            return
        flat = lists.flatten()
        index_in_row = np.arange(len(flat)) - np.repeat(lists.offsets.to_numpy()[:-1], per_row)
        hopeless = iter(self._hopeless(flat.filter(pa.array(index_in_row % 2 == 1))).tolist())
        known, dispatch = self._row_of, self._dispatch
        # Pieces alternate text / candidate and are exact slices of " " + row: offsets and
        # context come from their lengths and neighbours.
        for row, pieces in zip(with_cands.tolist(), lists.take(pa.array(with_cands)).to_pylist()):
            texts[row] = b"".join(pieces)[1:]
            base = len(pieces[0])  # offset in the row of the candidate after its boundary byte
            for i in range(1, len(pieces), 2):
                if next(hopeless) and not pieces[i + 1].startswith(b":"):
                    base += len(pieces[i]) + len(pieces[i + 1])
                    continue
                full = pieces[i].decode("latin-1")
                text = full[1:]
                before, after = pieces[i - 1], pieces[i + 1]
                if len(before) < CONTEXT_BYTES and i > 1:  # the text before runs across candidates
                    before = b"".join(pieces[max(0, i - 3):i])
                if len(after) < CONTEXT_BYTES and i + 2 < len(pieces):
                    after = b"".join(pieces[i + 1:i + 4])
                right = after[:CONTEXT_BYTES].decode("latin-1")
                finds = dispatch(text).validate(text, before[-CONTEXT_BYTES:].decode("latin-1") + full[0], right)
                if finds:
                    used = max(f[1] for f in finds)
                    if used < len(text):
                        finds += self._rescan(text, right, used)
                for s_, e, entity, norm in finds:
                    if entity in known:
                        found.setdefault(row, []).append((base + s_, base + e, entity, norm))
                base += len(pieces[i]) + (len(pieces[i + 1]) if i + 1 < len(pieces) else 0)

    def _hopeless(self, cands: pa.Array) -> np.ndarray:
        """Candidates that no validator can accept, found without Python per candidate.

        A bare run of 12-19 digits (not starting 00, an international prefix) can only be a
        payment card: no national phone number is written as one run that long, and SSNs and
        IPs have separators. It fails when its Luhn check fails, which is computed here for all
        such runs at once. (Reference numbers of that shape are the commonest look-alike.)
        """
        out = np.zeros(len(cands), bool)
        if "credit_card" not in self._row_of or not any(x.name == "numeric" for x in self.extractors):
            return out
        bare = np.flatnonzero(pc.match_substring_regex(cands, _BARE_DIGITS).to_numpy(zero_copy_only=False))
        if bare.size:
            runs = cands.take(pa.array(bare))  # a fresh array: offsets start at 0
            width = np.int64 if pa.types.is_large_binary(runs.type) else np.int32
            offsets = np.frombuffer(runs.buffers()[1], width)[:len(runs) + 1].astype(np.int64)
            data = np.frombuffer(runs.buffers()[2], np.uint8)
            out[bare] = ~_luhn_ok_many(data, offsets[:-1] + 1, offsets[1:])  # +1: boundary byte
        return out

    def _rescan(self, text: str, right: str, tail: int) -> list[Found]:
        """Finds that start in the part of a candidate its validator did not use.

        A candidate can run on into the next token (an IBAN's optional last group takes the
        "99" of "DE89...00 99.151.32.241"); RE2 went on after the whole candidate, so look
        again, with the same pattern, at what starts inside that tail.
        """
        region = text[tail - 1:] + right  # from the byte before the tail: it may be a boundary
        out: list[Found] = []
        for m in self._python_pattern.finditer(region):
            if m.start() >= len(text) - tail + 1:
                break  # starts after the candidate: the scan saw it
            cand = m.group()[1:]
            for s, e, entity, norm in self._dispatch(cand).validate(cand, region[:m.start() + 1],
                                                                     region[m.end():]):
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

    def _find_ner(self, sub: pa.Array, found: dict[int, list[Found]]) -> None:
        for row, raw in enumerate(sub.to_pylist()):
            text = raw.decode("utf-8")
            for s, e, entity in self.ner(text):
                if entity in self._row_of:
                    b0 = len(text[:s].encode("utf-8"))
                    found.setdefault(row, []).append((b0, b0 + len(text[s:e].encode("utf-8")), entity, text[s:e]))

