"""Bursts into one session are stored whole: storage pushes back, it never drops.

A real ``triolet run`` process with its SQLite database. Two shapes of burst that once lost
about a quarter of their messages (a session's storage lane dropped what did not fit):

* a client sends 5,000 messages as fast as it can, with ``ack = "received"`` (nothing waits
  for storage on the way in);
* one turn publishes 5,000 messages (how the web UI benchmark seeds a long thread).
"""

from __future__ import annotations

from pathlib import Path

import trio
from run_harness import running, stored_steps, write_app

from triolet.client import connect

APP = """
from triolet import SessionActor


class Burst(SessionActor):
    async def on_message(self, message):
        head, _, count = message.content.partition(" ")
        if head == "fill":
            for index in range(int(count)):
                await self.send(f"fill {index}")
        else:
            await self.send(f"echo: {message.content}")
"""

BURST = 5000
#: ``ack = "received"``, and an outbox that holds a whole burst (this test reads as fast as
#: it can, but it is not what is tested: a client too far behind would be cut off).
RECEIVED = {"TRIOLET__SERVER__ACK": "received", "TRIOLET__SERVER__OUTBOX_SIZE": str(4 * BURST)}


async def test_a_burst_of_client_messages_is_stored_whole(tmp_path: Path) -> None:
    toml = write_app(tmp_path, APP)
    async with (
        running(toml, tmp_path, env=RECEIVED) as server,
        connect(server.ws, buffer=4 * BURST) as client,
    ):
        assert client.welcome["ack_mode"] == "received"
        for index in range(BURST):
            await client.send_message(f"m{index}", wait_ack=False)
        last = f"echo: m{BURST - 1}"
        with trio.fail_after(120):  # a safety net, not a timing assertion
            while (await client.next_event("message", timeout=120))["content"] != last:
                pass
    steps = stored_steps(tmp_path)
    assert [c for r, c in steps if r == "user"] == [f"m{i}" for i in range(BURST)]
    assert [c for r, c in steps if r == "assistant"] == [f"echo: m{i}" for i in range(BURST)]


async def test_a_turn_publishing_thousands_of_messages_is_stored_whole(tmp_path: Path) -> None:
    toml = write_app(tmp_path, APP)
    async with (
        running(toml, tmp_path, env=RECEIVED) as server,
        connect(server.ws, buffer=4 * BURST) as client,
    ):
        await client.send_message(f"fill {BURST}")
        last = f"fill {BURST - 1}"
        with trio.fail_after(120):
            while (await client.next_event("message", timeout=120))["content"] != last:
                pass
    steps = stored_steps(tmp_path)
    assert [c for r, c in steps if r == "assistant"] == [f"fill {i}" for i in range(BURST)]
