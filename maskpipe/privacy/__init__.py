"""Privacy masking: whole-field rules and PII found in free text.

INTERFACE CONTRACT (the engine relies on exactly these names; keep them stable):

* ``PrivacyConfig``: pydantic v2 model (``extra="forbid"``) for the YAML ``privacy:`` section.
* ``privacy_preflight(cfg, yaml_path="privacy") -> list[str]``: every problem that must stop the
  run before any work starts (e.g. ``pseudonymize`` with the key variable unset), one line each,
  naming the YAML key and how to fix it. Never includes a data value or the key.
* ``PrivacyStep(cfg)``: built once per worker process. Reads the key from ``os.environ[cfg.key_env]``
  itself (the key is never pickled or passed through Ray).
  * ``.counter_names -> list[str]``: stable, ordered names of additive integer counters.
  * ``.apply(table: pa.Table) -> tuple[pa.Table, dict[str, np.ndarray]]``: returns the table with
    rules and scans applied (dropped columns removed, other columns replaced) and, for each
    counter name, an int64 array with one count per row.
* ``privacy_stats(cfg, totals: dict[str, int]) -> dict``: the ``privacy`` section of stats.json
  from summed counters (counts only, never values).
* ``key_id(cfg) -> str | None``: non-reversible id of the key in use (None without pseudonyms).
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict


class PrivacyConfig(BaseModel):
    """Placeholder until the privacy module lands: accepts only an empty section."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def privacy_preflight(cfg: PrivacyConfig, yaml_path: str = "privacy") -> list[str]:
    return []


class PrivacyStep:
    def __init__(self, cfg: PrivacyConfig):
        self.cfg = cfg
        self.counter_names: list[str] = []

    def apply(self, table: pa.Table) -> tuple[pa.Table, dict[str, np.ndarray]]:
        return table, {}


def privacy_stats(cfg: PrivacyConfig, totals: dict[str, int]) -> dict:
    return {}


def key_id(cfg: PrivacyConfig) -> str | None:
    return None
