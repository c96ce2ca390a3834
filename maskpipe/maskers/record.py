"""``masks.json``: the mask steps of a run as the reader needs them to re-mask online.

``maskpipe.stream(out, epoch=e, remask=True)`` rebuilds every step's masker from this record
(:meth:`~maskpipe.maskers.base.Masker.restore`) and applies epoch ``e``'s masks to the inputs the
shards still hold. So the record keeps everything those masks are a function of, and nothing
else: the seed, the run's epoch count (a schedule's K), each step's config (files named by their
sha256, never by a local path) and what the kind read from files (:meth:`Masker.resolve`: a
tokenizer's mask id, special ids, ...). The sample keys are in the shards (``__key__``).

Written by the commit, before ``manifest.json``; byte-identical across reruns.
"""
from __future__ import annotations

from maskpipe.maskers import MASKERS

MASKS_NAME = "masks.json"
MASKS_FORMAT = "maskpipe-masks/1"


def masks_record(cfg) -> dict:
    """The content of ``masks.json`` for a :class:`~maskpipe.config.PipelineConfig`.

    Each step: ``index``, ``kind``, ``config`` (as in the YAML, defaults filled in), ``resolved``
    and ``remask``: null when the step can be re-masked from its output, else why not.
    """
    steps = []
    for i, (m, dump) in enumerate(zip(cfg.masks, cfg.mask_dumps())):
        cls = MASKERS[m.kind]
        resolved = cls.resolve(m)
        steps.append({"index": i, "kind": m.kind, "config": dump, "resolved": resolved,
                      "remask": cls.remask_problem(m, resolved)})
    return {"format": MASKS_FORMAT, "seed": cfg.seed, "epochs": cfg.epochs, "steps": steps}
