"""A supervised actor tree in one screen: sessions that crash, restart and go idle.

    python examples/supervision_demo.py

A `Transcript` actor keeps every line said (it stands in for storage); one
`Session` actor per chat answers messages, one message at a time. One session
crashes on purpose and its supervisor restarts it without touching the other;
idle sessions passivate (saving their state first); the tree stops in reverse
start order. The script prints what happens and the tree's snapshot.
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from triolet import Actor, ActorRef, Restart, Supervisor, child, open_actor_system


class Transcript(Actor):
    """Appends lines; answers ("count",) with how many it holds."""

    async def on_start(self) -> None:
        self.lines: list[str] = []

    async def handle(self, message: Any) -> Any:
        if message == ("count",):
            return len(self.lines)
        self.lines.append(message)
        return None


class Session(Actor):
    """Echoes in upper case; crashes on "boom"; passivates after 2 idle seconds."""

    mailbox_size = 32
    idle_timeout = 2.0

    def __init__(self, transcript: ActorRef) -> None:
        self.transcript = transcript

    async def on_start(self) -> None:
        self.turns = 0
        print(f"  {self.name}: started")

    async def handle(self, message: Any) -> Any:
        if message == "boom":
            raise RuntimeError("the model returned garbage")
        self.turns += 1
        reply = message.upper()
        await self.transcript.tell(f"{self.name}: {message} -> {reply}")
        return reply

    async def on_passivate(self) -> None:
        print(f"  {self.name}: idle, saving {self.turns} turns and passivating")

    async def on_stop(self) -> None:
        print(f"  {self.name}: stopped")


async def main() -> None:
    async with open_actor_system([child(Transcript, name="transcript")]) as system:
        transcript = system.lookup("transcript")
        sessions_ref = await system.spawn(
            child(Supervisor, name="sessions", max_restarts=5, period=10.0)
        )
        sessions = system.root.children()[-1].actor
        assert isinstance(sessions, Supervisor) and sessions.name == sessions_ref.name

        alice = await sessions.start_child(
            child(Session, transcript, name="alice", restart=Restart.TRANSIENT)
        )
        bob = await sessions.start_child(
            child(Session, transcript, name="bob", restart=Restart.TRANSIENT)
        )
        print("alice says hi ->", await alice.ask("hi"))
        print("bob says hello ->", await bob.ask("hello"))

        print("alice crashes:")
        await alice.tell("boom")
        print("alice after restart ->", await alice.ask("still there?"))
        print("bob was untouched ->", await bob.ask("yes"))

        print("both go quiet for 3 seconds:")
        await trio.sleep(3)
        print("alice alive:", alice.alive, "| bob alive:", bob.alive)
        print("transcript holds", await transcript.ask(("count",)), "lines")

        snapshot = system.snapshot()
        for node in snapshot.root.walk():
            print(f"  {node.name:<11} {node.kind:<10} {node.state:<8} restarts={node.restarts}")
        print("stopping the tree (reverse start order):")


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="  [log] %(name)s: %(message)s")
    trio.run(main)
