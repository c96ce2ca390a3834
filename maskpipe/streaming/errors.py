"""The stream's errors (one line each; never a key or a value)."""
from __future__ import annotations

from maskpipe.errors import MaskpipeError


class StreamError(MaskpipeError, ValueError):
    """The stream cannot be set up as asked (bad argument, manifest or resume state)."""


class ShardError(StreamError):
    """A shard does not match its manifest entry or the shard format. Messages name the shard and
    the sample's position, never a key or a value, since both may be personal data."""
