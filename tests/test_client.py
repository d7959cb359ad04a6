"""`triolet.client` against a real server: actions, asks, settings, steps, encodings, errors."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.lowlevel
from test_ws_endpoint import SAFETY, collect_until, serving

import triolet.client
from triolet.client import ServerError
from triolet.supervisor.router import SessionLimits
from triolet.supervisor.session import Action, SessionActor, UserMessage
from triolet.transport._frames import ProtocolLimits


class Helper(SessionActor):
    """Buttons, questions, settings and steps."""

    async def on_chat_start(self) -> None:
        await self.send(
            "pick one",
            actions=[
                Action(
                    name="double",
                    label="Double",
                    payload={"n": 2},
                    schema={
                        "type": "object",
                        "properties": {"n": {"type": "integer"}},
                        "required": ["n"],
                    },
                )
            ],
        )

    async def on_action(self, action: Action) -> None:
        await self.send(f"doubled: {action.payload['n'] * 2}")

    async def on_message(self, message: UserMessage) -> None:
        if message.content == "name?":
            name = await self.ask_text("What is your name?", timeout=SAFETY)
            await self.send(f"hi {name}")
        elif message.content == "slow":
            await trio.sleep(SAFETY)
        else:
            async with self.step("think", type="tool", input={"q": message.content}) as step:
                step.output = "thought"
            await self.send(f"thought about {message.content}")

    async def on_settings_update(self, settings: dict[str, Any]) -> None:
        await self.send(f"model is {settings['model']}")


async def test_click_an_action_with_a_validated_payload() -> None:
    async with serving(Helper) as served, triolet.client.connect(served.url) as chat:
        actions = await chat.next_event("actions", timeout=SAFETY)
        button = actions["actions"][0]
        assert button["name"] == "double" and button["schema"]["required"] == ["n"]
        await chat.click(button, payload={"n": 21})
        await collect_until(chat, lambda e: e.get("content") == "doubled: 42")
        with pytest.raises(ServerError) as refused:
            await chat.click(button, payload={"n": "many"})
        assert refused.value.code == "invalid_payload" and "'n'" not in refused.value.code


async def test_answer_an_ask() -> None:
    async with serving(Helper) as served, triolet.client.connect(served.url) as chat:
        await chat.send_message("name?")
        ask = await chat.next_event("ask", timeout=SAFETY)
        assert ask["kind"] == "text" and ask["prompt"] == "What is your name?"
        await chat.answer(ask["id"], "Ada")
        events = await collect_until(chat, lambda e: e.get("content") == "hi Ada")
        assert any(e["type"] == "ask_end" and e["reason"] == "answered" for e in events)
        with pytest.raises(ServerError) as over:
            await chat.answer(ask["id"], "again")
        assert over.value.code == "unknown_ask"
        assert await chat.ask("still", timeout=SAFETY) == "thought about still"
        # The refused reply was not acked (not counted as accepted): 3 of the 4 frames were.
        assert served.endpoint.metrics.messages_in == 3


async def test_settings_and_steps_in_msgpack() -> None:
    async with (
        serving(Helper) as served,
        triolet.client.connect(served.url, encoding="msgpack") as chat,
    ):
        await chat.settings({"model": "small"})
        await collect_until(chat, lambda e: e.get("content") == "model is small")
        assert await chat.ask("trio", timeout=SAFETY) == "thought about trio"


async def test_steps_reach_the_client() -> None:
    async with serving(Helper) as served, triolet.client.connect(served.url) as chat:
        await chat.send_message("trio")
        events = await collect_until(chat, lambda e: e.get("content") == "thought about trio")
        phases = [(e["phase"], e.get("status")) for e in events if e["type"] == "step"]
        assert phases[0] == ("start", "running") and phases[-1] == ("end", "ok")
        start = next(e for e in events if e["type"] == "step")
        assert start["name"] == "think" and start["kind"] == "tool"


async def test_a_full_mailbox_answers_busy_and_the_retry_goes_through() -> None:
    limits = SessionLimits(mailbox_size=1, block_timeout=0.05)
    async with (
        serving(Helper, session_limits=limits) as served,
        triolet.client.connect(served.url) as chat,
    ):
        await chat.send_message("slow")  # occupies the handler
        await chat.send_message("queued")  # fills the one-slot mailbox
        with pytest.raises(ServerError) as busy:
            await chat.send_message("one too many", id="c-retry")
        assert busy.value.code == "busy" and busy.value.retry
        await chat.stop()  # the slow handler goes; the queue drains
        await chat.send_message("one too many", id="c-retry")  # same id: processed now


async def test_a_stored_ack_waits_for_durability() -> None:
    stored: list[str] = []

    async def durable(session_id: str, command: Any) -> None:
        await trio.lowlevel.checkpoint()
        stored.append(command.id)

    async with (
        serving(Helper, durability=durable) as served,
        triolet.client.connect(served.url) as chat,
    ):
        assert chat.welcome["ack_mode"] == "stored"
        client_id = await chat.send_message("x")
        assert stored == [client_id]


async def test_a_client_ping_gets_a_pong() -> None:
    async with (
        serving(limits=ProtocolLimits()) as served,
        triolet.client.connect(served.url, auto_pong=False) as chat,
    ):
        await chat.send_frame({"type": "ping", "nonce": "n-1"})
        await chat.send_frame({"type": "ack", "seq": 1})
        assert chat.welcome["session"] == chat.session_id
        assert await chat.ask("still", timeout=SAFETY) == "echo: still"
