"""The names the suite knows, kept free of heavy imports so ``triolet --help`` stays cheap.

``triolet bench`` builds its parser from these even where the ``bench`` extra
(psutil, rich) is not installed; the modules that need it load only when a run starts.
"""

from __future__ import annotations

SCENARIOS = ("echo", "stream", "idle", "churn", "durable", "mixed")

#: ``triolet`` is served with ``[storage] record = false`` (nothing stored, like Chainlit
#: without a data layer and the bare floor), except for ``durable``, whose acks need
#: storage; ``triolet_recorded`` is the same app with recording on (the default config).
SYSTEMS = ("triolet", "triolet_recorded", "chainlit", "bare")

#: Which scenarios each system can run (the bare floor only echoes; Chainlit has no acks;
#: ``durable`` already runs recorded as ``triolet``).
SUPPORTED: dict[str, frozenset[str]] = {
    "triolet": frozenset(SCENARIOS),
    "triolet_recorded": frozenset(SCENARIOS) - {"durable"},
    "chainlit": frozenset({"echo", "stream", "idle", "churn"}),
    "bare": frozenset({"echo", "idle", "churn"}),
}
