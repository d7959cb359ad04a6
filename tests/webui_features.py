"""A session for the browser tests of history, feedback, uploads, edit and settings.

    triolet run tests/webui_features.py

- ``on_chat_start`` greets and offers chat settings (a select, a number and a checkbox).
- ``ask file``: asks for one file and describes what came.
- a message with files: ``got <n> file(s): <name> (<type>, <size> B, on disk); ...`` from the
  `FileRef` the hook received (``on disk``: its ``path`` holds that many bytes); a file the
  session may not see is ``<id> (unknown)``.
- anything else: ``echo: <text>``.
Changed settings are answered with ``settings: <values as JSON>``.
"""

from __future__ import annotations

import json
import os
from typing import Any

from triolet import FileRef, SessionActor
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
            await self.send(f"ask got {len(files or ())} file(s): {describe(files or ())}")
        elif message.files:
            await self.send(f"got {len(message.files)} file(s): {describe(message.files)}")
        else:
            await self.send(f"echo: {message.content}")

    async def on_settings_update(self, settings: dict[str, Any]) -> None:
        await self.send(f"settings: {json.dumps(settings, sort_keys=True)}")


def describe(files: tuple[FileRef, ...]) -> str:
    """What the hook was told about each file (the frame itself carried ids only)."""
    parts = []
    for f in files:
        if not f.name:
            parts.append(f"{f.id} (unknown)")
            continue
        on_disk = f.path is not None and os.path.getsize(f.path) == f.size
        parts.append(f"{f.name} ({f.mime}, {f.size} B{', on disk' if on_disk else ''})")
    return "; ".join(parts)
