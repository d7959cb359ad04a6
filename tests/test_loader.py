"""Finding the user's session behaviour and actors from ``triolet.toml``'s references."""

from __future__ import annotations

from pathlib import Path

import pytest

from triolet import App, ConfigError, SessionActor
from triolet._loader import load_actor_class, load_behaviour
from triolet.actors import Actor

ONE_ACTOR = """
from triolet import SessionActor

class Echo(SessionActor):
    async def on_message(self, message):
        await self.send(message.content)
"""

TWO_ACTORS = (
    ONE_ACTOR
    + """
class Shout(SessionActor):
    async def on_message(self, message):
        await self.send(message.content.upper())
"""
)

DECORATED = """
import triolet
app = triolet.App()

@app.on_message
async def on_message(ctx, message):
    await ctx.send(message.content)
"""

ACTOR = """
from triolet import Actor

class Cache(Actor):
    def __init__(self, size=10):
        self.size = size
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_a_file_with_one_session_actor(tmp_path: Path) -> None:
    write(tmp_path, "bot.py", ONE_ACTOR)
    found = load_behaviour("bot.py", base=tmp_path)
    assert isinstance(found, type) and issubclass(found, SessionActor)
    assert found.__name__ == "Echo"


def test_a_file_with_an_app(tmp_path: Path) -> None:
    write(tmp_path, "chat.py", DECORATED)
    assert isinstance(load_behaviour("chat.py", base=tmp_path), App)


def test_two_candidates_must_be_named(tmp_path: Path) -> None:
    write(tmp_path, "two.py", TWO_ACTORS)
    with pytest.raises(ConfigError, match=r"found 2 \(Echo, Shout\); name one as two.py:Name"):
        load_behaviour("two.py", base=tmp_path)
    assert load_behaviour("two.py:Shout", base=tmp_path).__name__ == "Shout"  # type: ignore[union-attr]


def test_a_module_reference(tmp_path: Path) -> None:
    write(tmp_path, "my_bot_module.py", ONE_ACTOR)
    found = load_behaviour("my_bot_module:Echo", base=tmp_path)
    assert getattr(found, "__name__", None) == "Echo"


@pytest.mark.parametrize(
    ("ref", "text", "message"),
    [
        ("missing.py", None, "no such file"),
        ("no_such_module_xyz:Bot", None, "cannot import 'no_such_module_xyz'"),
        ("bot.py:Nope", ONE_ACTOR, "has no 'Nope'"),
        ("broken.py", "raise RuntimeError('boom at import')", "RuntimeError: boom at import"),
        ("plain.py:X", "X = 3", "X is a int, expected a SessionActor subclass"),
        ("empty.py", "", r"found 0 \(none\)"),
    ],
)
def test_bad_references_name_the_key_and_the_problem(
    tmp_path: Path, ref: str, text: str | None, message: str
) -> None:
    if text is not None:
        write(tmp_path, ref.partition(":")[0], text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_behaviour(ref, base=tmp_path)
    assert caught.value.key == "app.actor"
    assert str(caught.value).startswith(f"app.actor = {ref!r}")


def test_actor_classes_for_the_tree(tmp_path: Path) -> None:
    write(tmp_path, "cache_mod.py", ACTOR)
    cls = load_actor_class("cache_mod.py:Cache", key="actors[0].actor", base=tmp_path)
    assert issubclass(cls, Actor)
    with pytest.raises(ConfigError, match="name the class"):
        load_actor_class("cache_mod.py", key="actors[0].actor", base=tmp_path)
    write(tmp_path, "bot.py", ONE_ACTOR)
    with pytest.raises(ConfigError, match="Echo is not an Actor subclass"):
        load_actor_class("bot.py:Echo", key="actors[0].actor", base=tmp_path)
