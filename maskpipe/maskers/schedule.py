"""Ratio schedules: a mask ratio that changes over the epochs of an ``epochs: K`` run.

Every kind with a ratio (``mlm``, ``whole_word``, ``span``'s ``noise_density``, ``features``,
``tabular``, ``image_patch``, ``image_block``) takes a number or a schedule::

    ratio: 0.15
    ratio: {schedule: linear, start: 0.15, end: 0.45}
    ratio: {schedule: cosine, start: 0.15, end: 0.45}
    ratio: {schedule: step, values: [0.15, 0.3, 0.45]}

Epoch ``e`` of ``K`` takes the schedule's value at ``t = e / (K - 1)`` (``K = 1``: ``t = 0``, the
start; past the last epoch, as online re-masking can go, ``t`` stays 1):

* ``linear``: ``start + (end - start) * t``;
* ``cosine``: ``start + (end - start) * (1 - cos(pi * t)) / 2`` (slow at both ends);
* ``step``: the ``n`` values split ``[0, 1]`` into ``n`` equal parts, epoch ``e`` takes
  ``values[min(n - 1, floor(n * e / (K - 1)))]``: with as many values as epochs, epoch ``e``
  takes ``values[e]``.

The ends are exact (``t = 0`` gives ``start``, ``t = 1`` gives ``end``) and ``linear``/``cosine``
are monotone in ``t`` in floating point too (the value is clamped between the ends).

Example:
    >>> s = Schedule(schedule="linear", start=0.15, end=0.45)
    >>> [round(value_at(s, e, 3), 6) for e in range(3)]
    [0.15, 0.3, 0.45]
    >>> value_at(Schedule(schedule="step", values=(0.1, 0.2)), 1, 4), value_at(0.3, 5, 9)
    (0.1, 0.3)
"""
from __future__ import annotations

import functools
import math
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, create_model, model_serializer, model_validator

# Tags of the number-or-schedule union. They appear in pydantic's error paths; the config error
# formatter drops path parts written ``<...>`` (no YAML key looks like that).
NUMBER_TAG = "<number>"
SCHEDULE_TAG = "<schedule>"


class Schedule(BaseModel):
    """A ratio per epoch (see the module docstring for the formulas).

    Args:
        schedule: ``linear``, ``cosine`` or ``step``.
        start / end: the values at the first and last epoch (``linear``, ``cosine``).
        values: the values in order (``step``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    schedule: Literal["linear", "cosine", "step"]
    start: float | None = None
    end: float | None = None
    values: tuple[float, ...] | None = None

    @model_validator(mode="after")
    def _shape(self) -> "Schedule":
        if self.schedule == "step":
            if not self.values:
                raise ValueError("step needs values, a list: {schedule: step, values: [0.15, 0.3, 0.45]}")
            if self.start is not None or self.end is not None:
                raise ValueError("step takes values, not start/end")
        else:
            if self.start is None or self.end is None:
                raise ValueError(f"{self.schedule} needs start and end: "
                                 f"{{schedule: {self.schedule}, start: 0.15, end: 0.45}}")
            if self.values is not None:
                raise ValueError(f"{self.schedule} takes start and end, not values")
        return self

    @model_serializer(mode="wrap")
    def _omit_unset(self, handler):
        # a linear schedule dumps as written: {schedule, start, end}, no values: null
        data = handler(self)
        return {k: v for k, v in data.items() if v is not None} if isinstance(data, dict) else data

    def at(self, t: float) -> float:
        """The value at ``t`` in [0, 1] (clamped to it)."""
        t = min(max(float(t), 0.0), 1.0)
        if self.schedule == "step":
            n = len(self.values)
            return float(self.values[min(n - 1, math.floor(n * t))])
        if t == 1.0:
            return float(self.end)
        w = t if self.schedule == "linear" else (1.0 - math.cos(math.pi * t)) / 2.0
        lo, hi = sorted((self.start, self.end))
        return min(max(self.start + w * (self.end - self.start), lo), hi)


def value_at(ratio: float | Schedule, epoch: int, epochs: int) -> float:
    """The ratio of epoch ``epoch`` of ``epochs`` (a plain number is the same every epoch)."""
    if not isinstance(ratio, Schedule):
        return float(ratio)
    if epochs <= 1:
        return ratio.at(0.0)
    e = min(int(epoch), epochs - 1)
    if ratio.schedule == "step":  # integer arithmetic: values[e] exactly when there are K values
        n = len(ratio.values)
        return float(ratio.values[min(n - 1, n * e // (epochs - 1))])
    return ratio.at(e / (epochs - 1))


def mean_value(ratio: float | Schedule | None, epochs: int) -> float | None:
    """The mean ratio over the epochs (the expected overall share), None stays None."""
    if ratio is None or not isinstance(ratio, Schedule):
        return ratio
    return round(sum(value_at(ratio, e, epochs) for e in range(epochs)) / epochs, 6)


def _discriminate(v: Any) -> str:
    return SCHEDULE_TAG if isinstance(v, (dict, Schedule)) else NUMBER_TAG


@functools.lru_cache(maxsize=None)
def _bounded(bounds: tuple[tuple[str, float], ...]) -> type[Schedule]:
    """A :class:`Schedule` whose start, end and values obey the kind's bounds (cached: a
    handful of bound sets exist, one class each)."""
    f = Annotated[float, Field(**dict(bounds))]
    return create_model("Schedule", __base__=Schedule, __module__=__name__,
                        start=(f | None, None), end=(f | None, None), values=(tuple[f, ...] | None, None))


def Ratio(**bounds: float) -> Any:
    """The type of a ratio key: a number within ``bounds`` (``gt``/``ge``/``lt``/``le``) or a
    :class:`Schedule` whose values are. Errors name the key (``masks.0.ratio.end``).

    Example::

        ratio: Ratio(gt=0.0, le=1.0) = 0.15
    """
    key = tuple(sorted(bounds.items()))
    number = Annotated[float, Field(**bounds)]
    return Annotated[Union[Annotated[number, Tag(NUMBER_TAG)], Annotated[_bounded(key), Tag(SCHEDULE_TAG)]],
                     Discriminator(_discriminate)]


__all__ = ["Schedule", "Ratio", "value_at", "mean_value"]

# The ratio types the kinds use (named, so annotations stay plain names).
UnitRatio = Ratio(ge=0.0, le=1.0)        # 0 .. 1
PositiveRatio = Ratio(gt=0.0, le=1.0)    # (0, 1]
OpenRatio = Ratio(gt=0.0, lt=1.0)        # (0, 1)
