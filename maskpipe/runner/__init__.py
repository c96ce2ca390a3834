"""A run in three stages with explicit data between them (:func:`maskpipe.engine.run` calls them).

* :mod:`~maskpipe.runner.decide` (driver, under the run lock): the run's identity (config hash,
  input fingerprint, pseudonym key id), what the output folder already holds (finished, resumable,
  another run's), the input plan (made once) and the shards an earlier run left that can be
  reused. Its :class:`~maskpipe.runner.decide.Decision` is everything the later stages need.
* :mod:`~maskpipe.runner.execute` (Ray): read -> process -> write the shards still to do; the
  only module that knows Ray. Returns what the write tasks published.
* :mod:`~maskpipe.runner.commit` (driver): assemble split shards, add the tallies, check keys
  and the bad-record share, publish ``stats.json``, ``quarantine.jsonl`` and ``manifest.json``.

Helpers: :mod:`~maskpipe.runner.resume` (reusing and clearing earlier shards),
:mod:`~maskpipe.runner.keycheck` (duplicate keys in bounded memory),
:mod:`~maskpipe.runner.progress` (the progress display).
"""
