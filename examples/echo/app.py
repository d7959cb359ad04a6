"""The smallest Triolet app: every message comes back, prefixed.

triolet run examples/echo/triolet.toml
"""

from triolet import SessionActor
from triolet.supervisor.session import UserMessage


class Echo(SessionActor):
    async def on_chat_start(self) -> None:
        await self.send("Hello! I repeat what you say.")

    async def on_message(self, message: UserMessage) -> None:
        await self.send(f"echo: {message.content}")
