"""The benchmark app: the echo example, plus a stream of N tokens with no delay.

    triolet run benchmarks/apps/triolet.toml

A message ``stream N <text>`` is answered with N tokens streamed back to back (the
tokens of the Chainlit twin's `reply_tokens`, so both sides send the same bytes);
anything else comes back as ``echo: <text>``, like examples/echo. There is no
delay between tokens: the benchmark measures the framework, not a model's pace.
"""

from triolet import SessionActor
from triolet.benchmarks.chainlit.app import GREETING, echo_reply, reply_tokens
from triolet.supervisor.session import UserMessage


def stream_request(content: str) -> tuple[int, str] | None:
    """``stream N text`` to ``(N, text)``; None for a plain message."""
    head, _, rest = content.partition(" ")
    count, _, text = rest.partition(" ")
    if head != "stream" or not count.isdigit():
        return None
    return int(count), text


class Bench(SessionActor):
    async def on_chat_start(self) -> None:
        await self.send(GREETING)

    async def on_message(self, message: UserMessage) -> None:
        request = stream_request(message.content)
        if request is None:
            await self.send(echo_reply(message.content))
            return
        count, text = request
        reply = await self.stream_start()
        for token in reply_tokens(text, count):
            await reply.stream_token(token)
        await reply.stream_end()
