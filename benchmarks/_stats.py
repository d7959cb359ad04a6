"""Percentiles and ratios: the arithmetic every report shares, in one place (and the one
way the single-file benchmarks print their figures)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

#: The latency percentiles every scenario reports, as (key suffix, fraction).
PERCENTILES = (("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("p99_9", 0.999))

#: Figures where a smaller number is better (the rest: larger is better).
LOWER_IS_BETTER = ("_ms", "_us_per_msg", "_kb", "_mb", "growth")


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted list (nan when empty)."""
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, int(fraction * len(sorted_values)))
    return sorted_values[index]


def summarize(values: Iterable[float], prefix: str = "") -> dict[str, float | None]:
    """``{prefix}p50_ms`` ... ``{prefix}p99_9_ms`` of ``values`` (None when there are none)."""
    ordered = sorted(values)
    return {
        f"{prefix}{name}_ms": (round(percentile(ordered, q), 3) if ordered else None)
        for name, q in PERCENTILES
    }


def ratios(
    ours: Mapping[str, Any], theirs: Mapping[str, Any], keys: Iterable[str]
) -> dict[str, float | None]:
    """``ours[key] / theirs[key]`` for each numeric key both have (None where undefined)."""
    out: dict[str, float | None] = {}
    for key in keys:
        a, b = ours.get(key), theirs.get(key)
        if isinstance(a, int | float) and isinstance(b, int | float) and b and not math.isnan(b):
            out[key] = round(a / b, 3)
        else:
            out[key] = None
    return out


def print_figures(figures: Mapping[str, Any], *, as_json: bool, skip: Iterable[str] = ()) -> None:
    """One JSON object (``--json``), or one aligned ``name: value`` line per figure."""
    if as_json:
        print(json.dumps(figures))
        return
    hidden = set(skip)
    width = max((len(key) for key in figures if key not in hidden), default=0)
    for key, value in figures.items():
        if key not in hidden:
            print(f"{key:>{width}}: {value}")
