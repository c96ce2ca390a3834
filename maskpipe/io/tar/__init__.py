"""Tar, both ways: :mod:`.writer` encodes samples into deterministic shards, :mod:`.reader`
reads any uncompressed tar as a stream (the WebDataset input and ``maskpipe.stream`` use it).

Only the format's constants live here, so that reading needs neither numpy nor pyarrow.
"""
from __future__ import annotations

BLOCK = 512                         # tar record size: headers and data padding
EOF_MARKER = b"\0" * (2 * BLOCK)    # end of archive: two zero records
MAX_NAME = 100                      # the USTAR name field: longer names would need a PAX record
KEY_MEMBER = "__key__.txt"          # member holding the original key of a sample whose key was shortened
