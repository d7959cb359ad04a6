"""Files named by id in a frame reach the hooks described by the file store (`describe_files`).

A real `LocalFileStore` in a temporary folder; the end-to-end path (upload over HTTP, a
message frame, the hook's view) is in ``tests/test_webui_features.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from triolet._exceptions import StorageError
from triolet.storage import FileLimits, LocalFileStore, StoredFile
from triolet.supervisor.router import User
from triolet.supervisor.session import AskReply, FileRef, SettingsUpdate, UserMessage
from triolet.transport import anonymous_owner
from triolet.transport._file_refs import describe_files

LIMITS = FileLimits(allowed_types=("text/plain", "application/pdf"))
ADA = User(identifier="ada")
ANONYMOUS = User(identifier="anonymous", anonymous=True)


@pytest.fixture
def store(tmp_path: Path) -> LocalFileStore:
    return LocalFileStore(tmp_path / "files", LIMITS)


async def upload(store: LocalFileStore, session: str, owner: str, name: str) -> StoredFile:
    return await store.put(
        b"hello\n", session_id=session, declared_name=name, declared_type="text/plain", owner=owner
    )


def message(*keys: str) -> UserMessage:
    return UserMessage(id="c-1", content="see", files=tuple(FileRef(id=k) for k in keys))


async def test_a_sessions_own_upload_is_described(store: LocalFileStore) -> None:
    info = await upload(store, "s_1", anonymous_owner("s_1"), "../notes.txt")
    described = await describe_files(store, message(info.key), session_id="s_1", user=ANONYMOUS)
    assert isinstance(described, UserMessage)
    (ref,) = described.files
    assert (ref.id, ref.name, ref.mime, ref.size) == (info.key, "notes.txt", "text/plain", 6)
    assert ref.path is not None and await trio.Path(ref.path).read_bytes() == b"hello\n"
    assert (described.id, described.content) == ("c-1", "see")


async def test_other_peoples_and_unknown_files_stay_bare_ids(store: LocalFileStore) -> None:
    theirs = await upload(store, "s_2", anonymous_owner("s_2"), "secret.txt")
    bobs = await upload(store, "s_3", "bob", "bob.txt")
    keys = (theirs.key, bobs.key, "0" * 32, "../../etc/passwd")
    described = await describe_files(store, message(*keys), session_id="s_1", user=ADA)
    assert isinstance(described, UserMessage)
    assert described.files == tuple(FileRef(id=k) for k in keys)


async def test_a_signed_in_user_sees_their_files_from_any_session(store: LocalFileStore) -> None:
    mine = await upload(store, "s_old", "ada", "old.txt")
    reply = AskReply(id="c-2", ask="q_1", files=(FileRef(id=mine.key),))
    described = await describe_files(store, reply, session_id="s_new", user=ADA)
    assert isinstance(described, AskReply)
    assert [f.name for f in described.files] == ["old.txt"]
    # ...but an anonymous visitor of another session does not.
    bare = await describe_files(store, reply, session_id="s_new", user=ANONYMOUS)
    assert bare == reply


async def test_commands_without_files_are_returned_as_they_are(store: LocalFileStore) -> None:
    settings = SettingsUpdate(id="c-3", values={"a": 1})
    assert await describe_files(store, settings, session_id="s_1", user=None) is settings
    empty = message()
    assert await describe_files(store, empty, session_id="s_1", user=None) is empty


class BrokenStore(LocalFileStore):
    async def stat(self, key: str) -> StoredFile:
        raise StorageError("the disk is gone")


class SlowStore(LocalFileStore):
    async def stat(self, key: str) -> StoredFile:
        await trio.sleep_forever()
        raise AssertionError


@pytest.mark.parametrize("kind", [BrokenStore, SlowStore])
async def test_a_failing_store_costs_only_the_description(
    tmp_path: Path, kind: type[LocalFileStore], autojump_clock: trio.testing.MockClock
) -> None:
    store = kind(tmp_path / "files", LIMITS)
    command = message("a" * 32)
    described = await describe_files(store, command, session_id="s_1", user=None, timeout=1.0)
    assert described == command
