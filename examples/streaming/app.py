"""A fake LLM that streams its answer token by token, and honours the stop button.

triolet run examples/streaming/triolet.toml
"""

import trio

from triolet import SessionActor
from triolet.supervisor.session import UserMessage

#: Seconds between tokens, like a model that writes about 50 tokens a second.
TOKEN_DELAY = 0.02


class FakeLLM(SessionActor):
    async def on_message(self, message: UserMessage) -> None:
        words = f"You said {len(message.content.split())} words: {message.content}".split()
        reply = await self.stream_start(author="FakeLLM")
        for index, word in enumerate(words):
            await reply.stream_token(("" if index == 0 else " ") + word)
            await trio.sleep(TOKEN_DELAY)
        await reply.stream_end()

    async def on_stop(self) -> None:
        await self.send("(stopped)")
