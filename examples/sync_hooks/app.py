"""Plain ``def`` hooks: they run in a worker thread, with the same output API.

Useful for blocking libraries (a synchronous SDK, a CPU-bound parser): the
session's Trio task stays free and other sessions are not held up.

    triolet run examples/sync_hooks/triolet.toml
"""

import hashlib

from triolet import SessionActor
from triolet.supervisor.session import UserMessage


class Hasher(SessionActor):
    def on_chat_start(self) -> None:
        self.send("Send me text; I answer with its SHA-256.")

    def on_message(self, message: UserMessage) -> None:
        digest = hashlib.sha256(message.content.encode()).hexdigest()  # blocking work is fine here
        reply = self.stream_start()
        for start in range(0, len(digest), 16):
            reply.stream_token(digest[start : start + 16])
        reply.stream_end()
