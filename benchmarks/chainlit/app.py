"""The Chainlit twin of Triolet's benchmark apps, run by ``chainlit run`` in its own virtualenv.

    TRIOLET_BENCH_MODE=echo   chainlit run app.py --headless --port 8001
    TRIOLET_BENCH_MODE=stream TRIOLET_BENCH_TOKENS=20 chainlit run app.py --headless

``echo`` does what examples/echo/app.py does: greet on chat start, then answer
every message with ``echo: <content>``, one message. ``stream`` answers with
``TRIOLET_BENCH_TOKENS`` ``stream_token`` calls (the tokens of `reply_tokens`),
then ``send()`` to end the stream, as the Chainlit docs teach; with
``TRIOLET_BENCH_TOKEN_DELAY`` seconds between tokens (default 0: the benchmark
measures the framework, not a model's pace).

Chainlit itself is imported only when Chainlit is the one loading this file, so
the module stays importable (and type-checked) in Triolet's environment, where
Chainlit must never be installed; `reply_tokens` is plain code both sides share.
"""

from __future__ import annotations

import os
import sys
from typing import Any

GREETING = "Hello! I repeat what you say."


def echo_reply(content: str) -> str:
    """The echo app's answer, the same text examples/echo/app.py sends."""
    return f"echo: {content}"


def reply_tokens(content: str, count: int) -> list[str]:
    """The ``count`` tokens streamed in answer to ``content``: ``echo:`` then the words.

    The words of ``content`` are repeated (or cut) to fill ``count`` tokens, so
    the reply reads like the echo and its length is set by ``count`` alone.
    """
    words = content.split() or [content]
    return ["echo:"] + [f" {words[i % len(words)]}" for i in range(max(0, count - 1))]


def _register(cl: Any) -> None:
    """Hook the handlers into the running Chainlit (called only inside ``chainlit run``)."""
    import asyncio

    mode = os.environ.get("TRIOLET_BENCH_MODE", "echo")
    tokens = int(os.environ.get("TRIOLET_BENCH_TOKENS", "20"))
    delay = float(os.environ.get("TRIOLET_BENCH_TOKEN_DELAY", "0"))

    async def greet() -> None:
        await cl.Message(content=GREETING).send()

    async def echo(message: Any) -> None:
        await cl.Message(content=echo_reply(message.content)).send()

    async def stream(message: Any) -> None:
        reply = cl.Message(content="")
        for token in reply_tokens(message.content, tokens):
            await reply.stream_token(token)
            if delay:
                await asyncio.sleep(delay)
        await reply.send()

    if mode == "echo":
        cl.on_chat_start(greet)
        cl.on_message(echo)
    elif mode == "stream":
        cl.on_message(stream)
    else:
        raise ValueError(f"TRIOLET_BENCH_MODE must be 'echo' or 'stream', not {mode!r}")


if "chainlit" in sys.modules:  # loaded by ``chainlit run``, which imported Chainlit first
    _register(sys.modules["chainlit"])
