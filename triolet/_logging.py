"""Logs for ``triolet run``: stdout, one line per event, the session id where there is one.

A traceback spread over twenty lines is unreadable in a log aggregator and
interleaves with other sessions' lines; at the default level an exception is
summarised on its line (type, message, and where it was raised), and
``--log-level debug`` adds the full traceback.
"""

from __future__ import annotations

import logging
import sys
import traceback
from types import TracebackType
from typing import Any, Final

__all__ = ["configure_logging"]

FORMAT: Final = "%(asctime)s %(levelname)-7s %(name)s%(session)s: %(message)s"


class SessionFilter(logging.Filter):
    """Adds `` [session s_xxx]`` to records logged while a session's hook runs."""

    def filter(self, record: logging.LogRecord) -> bool:
        session = getattr(record, "session_id", None)
        if session is None:
            from triolet.supervisor.session import current_context

            context = current_context()
            session = context.session_id if context is not None else None
        record.session = f" [session {session}]" if session else ""
        return True


class OneLineFormatter(logging.Formatter):
    def __init__(self, full_tracebacks: bool) -> None:
        super().__init__(FORMAT)
        self.full_tracebacks = full_tracebacks

    def formatException(self, ei: Any) -> str:
        if self.full_tracebacks:
            return super().formatException(ei)
        error: BaseException | None = ei[1]
        tb: TracebackType | None = ei[2]
        where = ""
        if tb is not None:
            frame = traceback.extract_tb(tb)[-1]
            where = f" (at {frame.filename}:{frame.lineno} in {frame.name})"
        return f"| {type(error).__name__}: {error}{where}"

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text if self.full_tracebacks else text.replace("\n", " ")


def configure_logging(level: str = "info") -> None:
    levels = logging.getLevelNamesMapping()
    if level.upper() not in levels:
        raise ValueError(f"unknown log level {level!r}: use debug, info, warning or error")
    numeric = levels[level.upper()]
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(OneLineFormatter(full_tracebacks=numeric <= logging.DEBUG))
    handler.addFilter(SessionFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # Libraries' chatter stays at warning unless asked for debug.
    for noisy in ("hypercorn", "watchfiles", "httpx", "asyncio"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
