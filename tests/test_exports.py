"""The public names of the runtime's packages, pinned.

Like trio's ``test_exports``: adding or removing a public name is a decision,
so it must show up as a change to this file, not slip in or out by accident.
"""

from __future__ import annotations

import importlib
import types

import pytest

PUBLIC = {
    "triolet.actors": [
        "DEFAULT_ASK_TIMEOUT",
        "DEFAULT_MAILBOX_SIZE",
        "Actor",
        "ActorCell",
        "ActorCrashed",
        "ActorRef",
        "ActorStopped",
        "AskTimeout",
        "AsyncioStream",
        "AsyncioThread",
        "CellState",
        "DeadLetter",
        "DeadLetterOffice",
        "DeadLetterReason",
        "ExitReason",
        "MailboxFull",
        "NameTaken",
        "NoSuchActor",
        "Overflow",
        "Runtime",
        "ServiceActor",
        "ServiceEnded",
        "Terminated",
        "Timer",
        "shared_asyncio_thread",
    ],
    "triolet.actors.lowlevel": [
        "Ask",
        "Crash",
        "Mailbox",
        "Passivate",
        "ReplySlot",
        "Stop",
        "Tick",
    ],
    "triolet.supervisor": [
        "DEFAULT_BACKOFF",
        "DEFAULT_MAX_RESTARTS",
        "DEFAULT_PERIOD",
        "DEFAULT_SHUTDOWN_TIMEOUT",
        "DEFAULT_SYSTEM_SHUTDOWN_TIMEOUT",
        "ActorSnapshot",
        "ActorSystem",
        "Backoff",
        "ChildSpec",
        "ChildSpecError",
        "Restart",
        "Strategy",
        "SupervisionError",
        "Supervisor",
        "SupervisorEscalation",
        "SystemSnapshot",
        "child",
        "open_actor_system",
    ],
    "triolet.testing": [
        "DEFAULT_EXPECT_TIMEOUT",
        "InjectedCrash",
        "Probe",
        "crash",
        "spawn_probe",
    ],
}


@pytest.mark.parametrize("module_name", sorted(PUBLIC))
def test_all_is_pinned(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert sorted(module.__all__) == sorted(PUBLIC[module_name])
    assert len(set(module.__all__)) == len(module.__all__), "duplicate names in __all__"


@pytest.mark.parametrize("module_name", sorted(PUBLIC))
def test_every_public_name_resolves(module_name: str) -> None:
    module = importlib.import_module(module_name)
    for name in module.__all__:
        value = getattr(module, name)
        assert value is not None, name
        assert not isinstance(value, types.ModuleType), f"{module_name}.{name} is a module"


@pytest.mark.parametrize("module_name", sorted(PUBLIC))
def test_star_import_gives_exactly_all(module_name: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"from {module_name} import *", namespace)
    namespace.pop("__builtins__")
    assert sorted(namespace) == sorted(PUBLIC[module_name])


def test_errors_are_the_same_objects_everywhere() -> None:
    # Re-exports, not copies: `except triolet.actors.MailboxFull` must catch
    # what the face package and the exceptions module call MailboxFull.
    import triolet._exceptions as errors
    from triolet import actors, supervisor, testing

    for name in ("ActorCrashed", "ActorStopped", "AskTimeout", "MailboxFull"):
        assert getattr(actors, name) is getattr(errors, name)
    assert supervisor.SupervisorEscalation is errors.SupervisorEscalation
    assert testing.InjectedCrash is errors.InjectedCrash
