"""maskpipe: reproducible, private, fast masking of fine-tuning data on Ray.

Public API (everything else is private):

* :func:`run` / :func:`validate`: run or check a pipeline YAML.
* :func:`load_config`: parse and validate a pipeline YAML into a :class:`PipelineConfig`.
* :func:`stream`, :class:`StreamLoader`, :func:`collate_mlm`, :func:`collate_sft`, :func:`pad_collate`: read an
  output back for training (:mod:`maskpipe.streaming`).
* :class:`MaskpipeError` and subclasses: one-line errors.

Example:
    >>> import maskpipe
    >>> cfg = maskpipe.load_config("pipelines/demo.yaml")  # doctest: +SKIP
    >>> result = maskpipe.run(cfg)  # doctest: +SKIP
"""
from __future__ import annotations

__version__ = "0.1.0"

from maskpipe.errors import BadRecordsError, ConfigError, InputError, LockedError, MaskpipeError, OutputError  # noqa: E402
# the read side lives in maskpipe.streaming (numpy only at import; torch when a stream is built)
from maskpipe.streaming import ShardError, StreamError, StreamLoader, collate_mlm, collate_sft, pad_collate, stream  # noqa: E402


def load_config(path, overrides=None):
    """Load and validate a pipeline YAML (see :func:`maskpipe.config.load_config`)."""
    from maskpipe.config import load_config as _load

    return _load(path, overrides)


def validate(path, overrides=None):
    """Validate a pipeline YAML; raises :class:`ConfigError` listing every problem."""
    return load_config(path, overrides)


def run(config, overrides=None, overwrite: bool = False, debug: bool = False, verify: bool = False,
        incremental: bool = False):
    """Run a pipeline (see :func:`maskpipe.engine.run`); ``incremental`` adds the new input
    files as a new generation."""
    from maskpipe.engine import run as _run

    return _run(config, overrides=overrides, overwrite=overwrite, debug=debug, verify=verify, incremental=incremental)


__all__ = ["__version__", "run", "validate", "load_config", "stream", "StreamLoader", "collate_mlm", "collate_sft", "pad_collate",
           "MaskpipeError", "ConfigError", "InputError", "OutputError", "BadRecordsError", "LockedError",
           "StreamError", "ShardError"]
