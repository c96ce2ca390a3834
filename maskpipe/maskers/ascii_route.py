"""A faster route through a BERT-style tokenizer for ASCII text, with the same token ids.

HF ``tokenizers`` spends about half of its time on BERT-style text in the normaliser
(``BertNormalizer``) and the pre-tokeniser (``BertPreTokenizer``), character by character
with alignment tracking. On an ASCII row both are a fixed map per character, which Arrow
applies to the whole column at once:

* ``BertNormalizer``: ``clean_text`` drops the control characters (0x00-0x08, 0x0B, 0x0C,
  0x0E-0x1F, 0x7F) and turns tab, newline and carriage return into a space; ``lowercase`` is
  ASCII lower case; accent stripping (NFD, drop combining marks) and the spaces around CJK
  characters change nothing in ASCII.
* ``BertPreTokenizer`` splits on whitespace and makes every punctuation character (ASCII
  punctuation: 0x21-0x2F, 0x3A-0x40, 0x5B-0x60, 0x7B-0x7E) a word of its own: putting a space
  on both sides of each punctuation character and splitting on whitespace (``WhitespaceSplit``)
  gives the same words.

So a copy of the tokenizer without normaliser and with ``WhitespaceSplit`` encodes the mapped
text of an ASCII row to the same ids (same model, post-processor and truncation).
``tests/maskers/test_ascii_route.py`` checks this against the library for every ASCII
character and for random ASCII texts. Rows that are not ASCII, and rows where an added token's
text (``[MASK]``, ...) occurs in any letter case before or after the mapping (added tokens are
matched in the raw text, and the mapping could make or break a match), go through the
tokenizer as they are. Tokenizers of another shape always do.
"""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"
LINE = r"[\t\n\r]"
PUNCT = r"([!-/:-@\[-`{-~])"


def _fast(tok):
    """``encode_batch_fast`` (no offsets; tokenizers >= 0.21), else ``encode_batch``: same ids."""
    return getattr(tok, "encode_batch_fast", tok.encode_batch)


class TextEncoder:
    """Encodes a text column with ``tok`` (``encode_batch_fast``), in row order; ASCII rows
    take the route above when ``tok`` is BERT-shaped.

    Args:
        tok: a ``tokenizers.Tokenizer`` with its truncation and padding already set.

    Example::

        enc = TextEncoder(load_tokenizer("tokenizer.json", None))
        ids = [e.ids for e in enc.encode(pa.array(["Hello, world!"]))]
    """

    def __init__(self, tok):
        self.tok = tok
        self._plain = _fast(tok)
        self.routed, self.lowercase, self.clean, self.added = None, False, False, []
        spec = json.loads(tok.to_str())
        norm, pre = spec.get("normalizer"), spec.get("pre_tokenizer")
        if (pre or {}).get("type") != "BertPreTokenizer" or (norm is not None and norm.get("type") != "BertNormalizer"):
            return
        self.lowercase = bool(norm and norm.get("lowercase", True))
        self.clean = bool(norm and norm.get("clean_text", True))
        self.added = sorted({t["content"] for t in spec.get("added_tokens") or []})
        spec["normalizer"], spec["pre_tokenizer"] = None, {"type": "WhitespaceSplit"}
        from tokenizers import Tokenizer

        self.routed = _fast(Tokenizer.from_str(json.dumps(spec)))

    def _mapped(self, arr: pa.Array) -> pa.Array:
        if self.clean:
            arr = pc.replace_substring_regex(pc.replace_substring_regex(arr, CONTROL, ""), LINE, " ")
        if self.lowercase:
            arr = pc.ascii_lower(arr)
        return pc.replace_substring_regex(arr, PUNCT, r" \1 ")

    def _has_added(self, arr: pa.Array) -> np.ndarray:
        hit = np.zeros(len(arr), dtype=bool)
        if not self.added:
            return hit
        if not any("\\E" in t for t in self.added):   # one pass: RE2 literals \Q...\E, any case
            pattern = "(?i)" + "|".join(f"\\Q{t}\\E" for t in self.added)
            return pc.match_substring_regex(arr, pattern).to_numpy(zero_copy_only=False)
        for text in self.added:
            hit |= pc.match_substring(arr, text, ignore_case=True).to_numpy(zero_copy_only=False)
        return hit

    def encode(self, arr: pa.Array | pa.ChunkedArray) -> list:
        """The ``tokenizers.Encoding`` of every row (a null row encodes as "")."""
        arr = pc.fill_null(arr, "")
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        if self.routed is None or not len(arr):
            return self._plain(arr.to_pylist())
        ok = pc.string_is_ascii(arr).to_numpy(zero_copy_only=False) & ~self._has_added(arr)
        mapped = self._mapped(arr.filter(pa.array(ok)))
        back = self._has_added(mapped)
        if back.any():   # the mapping made an added token's text appear: those rows go as they are
            ok[np.flatnonzero(ok)[back]] = False
            mapped = mapped.filter(pa.array(~back))
        fast = self.routed(mapped.to_pylist())
        if ok.all():
            return fast
        out = [None] * len(arr)
        for i, e in zip(np.flatnonzero(ok).tolist(), fast):
            out[i] = e
        rest = np.flatnonzero(~ok)
        for i, e in zip(rest.tolist(), self._plain(arr.take(pa.array(rest)).to_pylist())):
            out[i] = e
        return out
