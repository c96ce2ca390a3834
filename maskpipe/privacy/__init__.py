"""Privacy masking: whole-field rules and PII found in free text.

INTERFACE CONTRACT (the engine relies on exactly these names; keep them stable):

* ``PrivacyConfig``: pydantic v2 model (``extra="forbid"``) for the YAML ``privacy:`` section.
  ``.counter_names() -> list[str]``: the step's counter names from the config alone (the
  engine's driver uses it; it never builds a ``PrivacyStep``).
* ``privacy_preflight(cfg, yaml_path="privacy") -> list[str]``: every problem that must stop the
  run before any work starts (e.g. ``pseudonymize`` with the key variable unset), one line each,
  naming the YAML key and how to fix it. Never includes a data value or the key.
* ``PrivacyStep(cfg)``: built once per worker process. Reads the key from ``os.environ[cfg.key_env]``
  itself (the key is never pickled or passed through Ray).
  * ``.counter_names -> list[str]``: stable, ordered names of additive integer counters
    (``cfg.counter_names()``).
  * ``.apply(table: pa.Table) -> tuple[pa.Table, dict[str, np.ndarray]]``: returns the table with
    rules and scans applied (dropped columns removed, other columns replaced) and, for each
    counter name, an int64 array with one count per row.
* ``privacy_stats(cfg, totals: dict[str, int]) -> dict``: the ``privacy`` section of stats.json
  from summed counters (counts only, never values).
* ``key_id(cfg) -> str | None``: non-reversible id of the key in use (None without pseudonyms).

Layout: ``config`` (YAML model, preflight), ``detectors`` (patterns and validators), ``scan``
(vectorised scanning), ``fields`` (whole-field rules), ``pseudonym`` (HMAC), ``ner`` (optional
model), ``step`` (what the engine calls). See docs/privacy.md.

Example:
    >>> import pyarrow as pa
    >>> cfg = PrivacyConfig.model_validate({"scan": {"fields": ["body"]}})
    >>> privacy_preflight(cfg)
    []
    >>> table, counts = PrivacyStep(cfg).apply(pa.table({"body": ["card 4111 1111 1111 1111"]}))
    >>> table["body"].to_pylist(), int(counts["scan.body.credit_card"][0])
    (['card <CREDIT_CARD>'], 1)
"""
from __future__ import annotations

from maskpipe.privacy.config import PrivacyConfig, privacy_preflight
from maskpipe.privacy.step import PrivacyStep, key_id, privacy_stats

__all__ = ["PrivacyConfig", "privacy_preflight", "PrivacyStep", "privacy_stats", "key_id"]
