"""The ``privacy:`` section of the pipeline YAML and the checks that run before any work.

Example:
    >>> cfg = PrivacyConfig.model_validate({
    ...     "fields": {"ssn": "drop", "customer_email": "pseudonymize"},
    ...     "scan": {"fields": ["body"], "entities": ["email", "phone"]},
    ... })
    >>> cfg.scan.action
    'placeholder'
    >>> needs_key(cfg)
    True
"""
from __future__ import annotations

import importlib.util
import logging
import os
import re
from pathlib import Path
from typing import Literal

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from maskpipe.privacy.detectors import NER_ENTITIES, RULE_ENTITIES
from maskpipe.privacy.pseudonym import DEFAULT_KEY_ENV, key_env_label, missing_key_message

log = logging.getLogger("maskpipe.privacy")

FieldAction = Literal["drop", "redact", "pseudonymize", "keep"]
ScanAction = Literal["placeholder", "pseudonym", "redact"]
Entity = Literal["email", "phone", "credit_card", "iban", "ipv4", "ipv6", "us_ssn", "secret", "ner"]
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
NER_EXTRA = "pip install 'maskpipe[ner]'"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScanConfig(_Model):
    """``privacy.scan:`` PII found inside free text.

    Args:
        fields: string columns to scan.
        entities: entity types to look for (default: the eight rule-based ones). ``ner`` adds
            person names and locations from a local token-classification model (optional extra).
        action: ``placeholder`` (``<EMAIL>``), ``pseudonym`` (``<EMAIL_3f2a...>``, 32 hex) or
            ``redact`` (the value is removed).
        phone_regions: ISO 3166 regions whose national phone formats are looked for; numbers
            written with ``+`` or ``00`` and a country code are found whatever the regions.
        ner_model: local folder of a Hugging Face token-classification model (only with ``ner``;
            nothing is downloaded).
    """

    fields: list[str] = Field(min_length=1)
    entities: list[Entity] = Field(default_factory=lambda: list(RULE_ENTITIES))
    action: ScanAction = "placeholder"
    phone_regions: list[str] = Field(default_factory=lambda: ["US"])
    ner_model: str | None = None

    @field_validator("fields", "entities")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        dupes = sorted({x for x in v if v.count(x) > 1})
        if dupes:
            raise ValueError(f"listed twice: {', '.join(dupes)}; list each once")
        return v

    @field_validator("entities")
    @classmethod
    def _nonempty(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("empty; list the entity types to find or remove privacy.scan")
        return v

    @field_validator("phone_regions")
    @classmethod
    def _regions(cls, v: list[str]) -> list[str]:
        v = [r.upper() for r in v]
        bad = [r for r in v if r not in phonenumbers.SUPPORTED_REGIONS]
        if bad:
            raise ValueError(f"unknown region code(s) {', '.join(bad)}; use ISO 3166 codes such as US, GB, DE")
        return v

    @model_validator(mode="after")
    def _ner_model_only_with_ner(self) -> "ScanConfig":
        if self.ner_model is not None and "ner" not in self.entities:
            raise ValueError("ner_model is set but 'ner' is not in privacy.scan.entities; add it or remove ner_model")
        return self

    def counter_entities(self) -> list[str]:
        """Entity names as counted: ``ner`` stands for its entity types."""
        out: list[str] = []
        for e in self.entities:
            out += list(NER_ENTITIES) if e == "ner" else [e]
        return out


class PrivacyConfig(_Model):
    """``privacy:`` whole-field rules and free-text scanning.

    Args:
        key_env: NAME of the environment variable that holds the pseudonym key (never the key).
        fields: column -> ``drop | redact | pseudonymize | keep``.
        scan: PII found inside free-text columns (see :class:`ScanConfig`).
    """

    key_env: str = DEFAULT_KEY_ENV
    fields: dict[str, FieldAction] = Field(default_factory=dict)
    scan: ScanConfig | None = None

    @field_validator("key_env")
    @classmethod
    def _env_name(cls, v: str) -> str:
        # The message never repeats the value: someone may have pasted the key itself here.
        if not _ENV_NAME.match(v):
            raise ValueError("must be the NAME of an environment variable (letters, digits, _), "
                             "not the key itself; put the key in that variable")
        return v

    def counter_names(self) -> list[str]:
        """Names of the additive counters the privacy step reports, in its order, from the config
        alone (the engine learns them without building the step): ``field.<column>.<action>``
        per whole-field rule, then ``scan.<column>.<entity>`` per scanned column and entity.

        Example:
            >>> PrivacyConfig(fields={"ssn": "drop"}, scan={"fields": ["body"], "entities": ["email"]}).counter_names()
            ['field.ssn.drop', 'scan.body.email']
        """
        scan = self.scan
        entities = scan.counter_entities() if scan is not None else []
        return [f"field.{c}.{a}" for c, a in self.fields.items()] + [
            f"scan.{f}.{e}" for f in (scan.fields if scan is not None else []) for e in entities]

    @model_validator(mode="after")
    def _disjoint(self) -> "PrivacyConfig":
        both = [f for f in (self.scan.fields if self.scan else []) if f in self.fields]
        if both:
            raise ValueError(
                f"privacy.scan.fields: {', '.join(both)} also has a rule in privacy.fields; a column gets "
                "either a whole-field rule or a scan: remove one of them")
        return self


def needs_key(cfg: PrivacyConfig) -> bool:
    """Whether any rule or scan produces pseudonyms (and so needs ``key_env``)."""
    return "pseudonymize" in cfg.fields.values() or (cfg.scan is not None and cfg.scan.action == "pseudonym")


def privacy_preflight(cfg: PrivacyConfig, yaml_path: str = "privacy") -> list[str]:
    """Every problem that must stop the run before it starts, one line each, naming the YAML key.

    Never includes a data value or the key. Checks: the key variable is set when pseudonyms
    are used; the ``ner`` extra and model are present when ``ner`` is requested.

    Example:
        >>> cfg = PrivacyConfig(key_env="MASKPIPE_DOCTEST_UNSET", fields={"email": "pseudonymize"})
        >>> privacy_preflight(cfg)[0].split(":")[0]
        'privacy.key_env'
    """
    problems: list[str] = []
    if needs_key(cfg):
        key = os.environ.get(cfg.key_env, "")
        if not key:
            problems.append(missing_key_message(cfg.key_env, yaml_path))
        elif len(key) < 16:
            log.warning("%s.key_env: the key in %s is shorter than 16 characters; use 32 random bytes",
                        yaml_path, key_env_label(cfg.key_env, yaml_path))
    if cfg.scan is not None and "ner" in cfg.scan.entities:
        problems += ner_problems(cfg.scan, f"{yaml_path}.scan")
    return problems


def ner_problems(scan: ScanConfig, yaml_path: str) -> list[str]:
    """Why the optional NER backend cannot run (empty when it can)."""
    problems = []
    missing = [m for m in ("transformers", "torch") if importlib.util.find_spec(m) is None]
    if missing:
        problems.append(f"{yaml_path}.entities: 'ner' needs the optional extra ({', '.join(missing)} not "
                        f"installed); run `{NER_EXTRA}` or remove 'ner'")
    if scan.ner_model is None:
        problems.append(f"{yaml_path}.ner_model: 'ner' needs a local token-classification model folder; "
                        "set ner_model to its path (nothing is downloaded)")
    elif not (Path(scan.ner_model) / "config.json").is_file():
        problems.append(f"{yaml_path}.ner_model: no model found at that path (no config.json); point it at "
                        "a local Hugging Face token-classification model folder")
    return problems
