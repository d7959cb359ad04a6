"""Low-level pieces for code that builds its own actor loops (supervisors, routers).

Like ``trio.lowlevel``: stable, but most users never need them.
"""

from ._envelopes import Ask, Crash, Passivate, ReplySlot, Stop, Tick
from ._mailbox import Mailbox

__all__ = ["Ask", "Crash", "Mailbox", "Passivate", "ReplySlot", "Stop", "Tick"]
