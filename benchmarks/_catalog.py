"""The names the suite knows, kept free of heavy imports so ``triolet --help`` stays cheap.

``triolet bench`` builds its parser from these even where the ``bench`` extra
(psutil, rich) is not installed; the modules that need it load only when a run starts.
"""

from __future__ import annotations

SCENARIOS = ("echo", "stream", "idle", "churn", "durable", "mixed")

SYSTEMS = ("triolet", "chainlit", "bare")

#: Which scenarios each system can run (the bare floor only echoes; Chainlit has no acks).
SUPPORTED: dict[str, frozenset[str]] = {
    "triolet": frozenset(SCENARIOS),
    "chainlit": frozenset({"echo", "stream", "idle", "churn"}),
    "bare": frozenset({"echo", "idle", "churn"}),
}
