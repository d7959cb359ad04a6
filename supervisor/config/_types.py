"""The building blocks every section model shares: the base class and value types.

Why strict models: TOML is typed, so ``port = "9000"`` or ``headless = "no"`` is a
mistake worth reporting rather than guessing at.  Environment variables are the
exception (they are only strings); ``_env`` converts them to the target type
before these models see them.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

__all__ = [
    "Ack",
    "Count",
    "Duration",
    "ImportRef",
    "Overflow",
    "Restart",
    "Section",
    "StrTuple",
    "Strategy",
    "Timeout",
]


class Section(BaseModel):
    """Base of every table in ``triolet.toml``: strict, closed and immutable.

    ``extra="forbid"`` turns a typo into an error (with a suggestion, see
    ``_issues``) instead of a silently ignored key; ``frozen`` lets the one config
    object be shared by every actor without anyone changing it under the others.
    """

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


# A timeout must be positive; ``inf`` (valid TOML) turns it off on purpose.
Timeout = Annotated[float, Field(gt=0)]
# A finite, non-negative span of time (a period, a backoff, a batch window).
Duration = Annotated[float, Field(ge=0, allow_inf_nan=False)]
# A bounded size or count: never zero, because an unbounded queue is a bug.
Count = Annotated[int, Field(ge=1)]
# TOML arrays arrive as lists; the frozen model keeps them as tuples.
StrTuple = Annotated[tuple[str, ...], Field(strict=False)]

Overflow = Literal["block", "reject", "drop_newest", "drop_oldest"]
Restart = Literal["permanent", "transient", "temporary"]
Strategy = Literal["one_for_one", "one_for_all", "rest_for_one"]
Ack = Literal["durable", "received"]

_DOTTED = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
_MODULE_REF = re.compile(rf"{_DOTTED}:{_DOTTED}")
_PATH_REF = re.compile(rf"[^:]+\.py(?::{_DOTTED})?")


def _check_import_ref(value: str) -> str:
    """Accept ``package.module:Class`` or ``path/to/app.py`` (optionally ``:Class``)."""
    if _MODULE_REF.fullmatch(value) or _PATH_REF.fullmatch(value):
        return value
    raise ValueError('a "package.module:Class" reference or a path to a .py file')


ImportRef = Annotated[str, AfterValidator(_check_import_ref)]
