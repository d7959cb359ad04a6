"""A session for the browser tests of history, feedback, uploads, edit and settings.

    triolet run tests/webui_features.py

- ``on_chat_start`` greets and offers chat settings (a select, a number and a checkbox).
- ``ask file``: asks for one file and says how many came.
- a message with files: ``got <n> file(s): <ids>``.
- anything else: ``echo: <text>``.
Changed settings are answered with ``settings: <values as JSON>``.
"""

from __future__ import annotations

import json
from typing import Any

from triolet import SessionActor
from triolet.supervisor.session import UserMessage

SCHEMA = {
    "type": "object",
    "properties": {
        "model": {"title": "Model", "enum": ["small", "large"]},
        "temperature": {"title": "Temperature", "type": "number", "minimum": 0, "maximum": 2},
        "verbose": {"title": "Verbose", "type": "boolean", "description": "Explain every step"},
    },
}


class Features(SessionActor):
    async def on_chat_start(self) -> None:
        await self.send("Features ready.")
        await self.send_settings(
            {"model": "small", "temperature": 0.5, "verbose": False}, schema=SCHEMA
        )

    async def on_chat_resume(self, thread: Any) -> None:
        await self.send("Welcome back.")

    async def on_message(self, message: UserMessage) -> None:
        if message.content == "ask file":
            files = await self.ask_file("Upload the report", max_files=1)
            await self.send(f"ask got {len(files or ())} file(s)")
        elif message.files:
            # The frame carries ids only (names and sizes are the file store's business).
            await self.send(
                f"got {len(message.files)} file(s): {' '.join(f.id for f in message.files)}"
            )
        else:
            await self.send(f"echo: {message.content}")

    async def on_settings_update(self, settings: dict[str, Any]) -> None:
        await self.send(f"settings: {json.dumps(settings, sort_keys=True)}")
