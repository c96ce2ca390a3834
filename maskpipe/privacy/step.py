"""The privacy step the engine runs on every batch: whole-field rules, then free-text scans.

Example:
    >>> import os, pyarrow as pa
    >>> cfg = PrivacyConfig.model_validate({"fields": {"ssn": "drop"}, "scan": {"fields": ["body"]}})
    >>> step = PrivacyStep(cfg)
    >>> out, counts = step.apply(pa.table({"ssn": ["078-05-1120"], "body": ["mail ann@example.com"]}))
    >>> out.column_names, out["body"].to_pylist()
    (['body'], ['mail <EMAIL>'])
    >>> {k: int(v.sum()) for k, v in counts.items() if v.sum()}
    {'field.ssn.drop': 1, 'scan.body.email': 1}
"""
from __future__ import annotations

import re

import numpy as np
import pyarrow as pa

from maskpipe.errors import ConfigError
from maskpipe.privacy.config import PrivacyConfig, ner_problems, needs_key
from maskpipe.privacy.detectors import build_extractors
from maskpipe.privacy.fields import FieldRule
from maskpipe.privacy.pseudonym import Pseudonymizer, key_id_of, read_key
from maskpipe.privacy.scan import Scanner


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def column_list(names: list[str]) -> str:
    """The input's column names for a message, or a note that they are withheld.

    Column names can be data (a headerless CSV's first row, JSON objects keyed by e-mail
    addresses). They are listed only when every one is a plain identifier (letters, digits,
    ``_``, no spaces); one name that is not, and the header itself is suspect, so none is shown.
    (Mirrors ``maskpipe.io.readers.column_label``, stricter: no spaces, all or nothing.)

    Example:
        >>> column_list(["id", "body"]), column_list(["Jane Doe", "id"])
        (' (columns: id, body)', ' (the column names are withheld: not all of them look like identifiers)')
    """
    if names and len(names) <= 50 and all(_IDENTIFIER.fullmatch(n) for n in names):
        return f" (columns: {', '.join(names)})"
    if not names:
        return " (it has no columns)"
    return " (the column names are withheld: not all of them look like identifiers)"


class PrivacyStep:
    """Applies a :class:`PrivacyConfig` to Arrow tables. Built once per worker process.

    The pseudonym key is read here from ``os.environ[cfg.key_env]``: it is never pickled or
    sent through Ray, so the variable must be set on every node.

    Args:
        cfg: the ``privacy:`` section.

    Raises:
        ConfigError: pseudonyms are needed and the key variable is unset, or ``ner`` cannot load.
    """

    def __init__(self, cfg: PrivacyConfig):
        self.cfg = cfg
        pseudo = Pseudonymizer(read_key(cfg.key_env)) if needs_key(cfg) else None
        scan = cfg.scan
        regions = scan.phone_regions if scan else ["US"]
        self._rules = {col: FieldRule(action, pseudo, regions) for col, action in cfg.fields.items()}
        self._scanner: Scanner | None = None
        entities: list[str] = []
        if scan is not None:
            entities = scan.counter_entities()
            ner = None
            if "ner" in scan.entities:
                problems = ner_problems(scan, "privacy.scan")
                if problems:
                    raise ConfigError(problems)
                from maskpipe.privacy.ner import NerTagger

                ner = NerTagger(scan.ner_model)
            self._scanner = Scanner(build_extractors(scan.entities, regions), entities, scan.action, pseudo, ner)
        self.counter_names: list[str] = cfg.counter_names()

    def apply(self, table: pa.Table) -> tuple[pa.Table, dict[str, np.ndarray]]:
        """Apply rules and scans; returns the new table and one int64 count per row per counter.

        Raises:
            ConfigError: a configured column is missing or a scanned column is not a string.
        """
        self._check_columns(table)
        counts: dict[str, np.ndarray] = {}
        for col, rule in self._rules.items():
            new, counts[f"field.{col}.{rule.action}"] = rule.apply(table[col])
            i = table.schema.get_field_index(col)
            table = table.remove_column(i) if new is None else table.set_column(i, pa.field(col, new.type), new)
        if self._scanner is not None:
            for col in self.cfg.scan.fields:
                column = table[col]
                if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
                    column = column.cast(pa.string())  # string_view / dictionary<string>
                new, matrix = self._scanner.scan(column)
                for entity, row in zip(self._scanner.entities, matrix):
                    counts[f"scan.{col}.{entity}"] = row
                table = table.set_column(table.schema.get_field_index(col), pa.field(col, new.type), new)
        return table, {name: counts[name] for name in self.counter_names}

    def _check_columns(self, table: pa.Table) -> None:
        names = set(table.column_names)
        have = column_list(table.column_names)
        problems = [f"privacy.fields.{c}: the input has no column '{c}'{have}; fix the name "
                    "or remove the rule" for c in self.cfg.fields if c not in names]
        for c in self.cfg.scan.fields if self.cfg.scan else []:
            if c not in names:
                problems.append(f"privacy.scan.fields: the input has no column '{c}'{have}; "
                                "fix the name or remove it from the list")
                continue
            t = table.schema.field(c).type
            if pa.types.is_dictionary(t):
                t = t.value_type
            if not (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)):
                problems.append(f"privacy.scan.fields: column '{c}' is {t}, but only text columns can be "
                                "scanned; use a privacy.fields rule for it instead")
        if problems:
            raise ConfigError(problems)


def privacy_stats(cfg: PrivacyConfig, totals: dict[str, int]) -> dict:
    """The ``privacy`` section of stats.json from summed counters (counts only, never values).

    Example:
        >>> cfg = PrivacyConfig.model_validate({"fields": {"ssn": "drop"}, "scan": {"fields": ["body"],
        ...                                     "entities": ["email"]}})
        >>> privacy_stats(cfg, {"field.ssn.drop": 3, "scan.body.email": 5})
        {'fields': {'ssn': {'drop': 3}}, 'scan': {'body': {'email': 5}}, 'entities': {'email': 5}}
    """
    out: dict = {"fields": {c: {a: int(totals.get(f"field.{c}.{a}", 0))} for c, a in cfg.fields.items()}}
    if cfg.scan is not None:
        ents = cfg.scan.counter_entities()
        out["scan"] = {f: {e: int(totals.get(f"scan.{f}.{e}", 0)) for e in ents} for f in cfg.scan.fields}
        out["entities"] = {e: sum(out["scan"][f][e] for f in cfg.scan.fields) for e in ents}
    return out


def key_id(cfg: PrivacyConfig) -> str | None:
    """64-bit non-reversible id of the key in use (None when no pseudonyms are produced).

    Raises:
        ConfigError: pseudonyms are configured and the key variable is unset.
    """
    return key_id_of(read_key(cfg.key_env)) if needs_key(cfg) else None


__all__ = ["PrivacyStep", "privacy_stats", "key_id"]
