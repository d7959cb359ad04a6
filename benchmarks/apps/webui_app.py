"""The web UI benchmark's app: a long thread on demand, and a token flood.

    triolet run benchmarks/apps/webui.toml

- ``fill N``: answers with N short messages back to back (builds an N-message thread, stored
  like any other, for the "open a long thread" measurement).
- ``stream N``: streams N tokens ``t0 t1 ... t<N-1>`` with no delay (the framework's pace, not a
  model's), yielding to the transport every 200 tokens as a real model client would. The
  server's own send time of those tokens (first ``stream_token`` to ``stream_end`` returned, on
  the server's clock) goes to ``stream-timing.json`` in the working directory, for the benchmark.
- anything else: echoed.
"""

import json
import time

import trio

from triolet import SessionActor
from triolet.supervisor.session import UserMessage


class WebUIBench(SessionActor):
    async def on_chat_start(self) -> None:
        await self.send("Benchmark ready.")

    async def on_message(self, message: UserMessage) -> None:
        head, _, count = message.content.partition(" ")
        if head == "fill" and count.isdigit():
            for index in range(int(count)):
                await self.send(f"Message **{index}** with some text and `code`.")
        elif head == "stream" and count.isdigit():
            reply = await self.stream_start(author="Flood")
            started = time.perf_counter()
            for index in range(int(count)):
                reply.stream_token(f"t{index} ")
                if index % 200 == 199:
                    await trio.lowlevel.checkpoint()
            await reply.stream_end()
            elapsed = time.perf_counter() - started
            timing = {"tokens": int(count), "seconds": elapsed}
            await trio.Path("stream-timing.json").write_text(json.dumps(timing))
        else:
            await self.send(f"echo: {message.content}")
