"""What a session hook learns about the files a frame names: the file store's metadata.

A ``message`` or ``ask_reply`` frame carries file ids only (the files were uploaded over HTTP
before it). Before the command reaches the session, `describe_files` looks each id up in the
file store and fills the `FileRef` with its display name, sniffed content type, size and, for
the local store, the path of its bytes, so ``on_message`` and ``ask_file`` see what the user
sent without a store lookup of their own (and the stored message records the names too).

Access follows the rule of ``GET /api/files/{key}`` (`transport/_files_api.py`): a file is
described only to the session it was uploaded to (the upload route checked that the uploader
may use that session), or to a session of the signed-in user who owns it. Any other id
(another visitor's file, a typo, an expired upload) stays a bare id, exactly as if it did not
exist, so ids cannot be used to probe for other people's files. A store that fails or is slow
costs the frame nothing but the description: the ids go through unchanged.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Final

import trio

from triolet._exceptions import StorageError, UnknownFile
from triolet.storage import FileStore, LocalFileStore, StoredFile
from triolet.supervisor.router import User
from triolet.supervisor.session import AskReply, Command, FileRef, UserMessage

__all__ = ["FILE_INFO_TIMEOUT", "describe_files"]

logger = logging.getLogger("triolet.transport")

#: Seconds the file store gets to describe one frame's files (at most 32 of them).
FILE_INFO_TIMEOUT: Final = 5.0


async def describe_files(
    store: FileStore,
    command: Command,
    *,
    session_id: str,
    user: User | None,
    timeout: float = FILE_INFO_TIMEOUT,
) -> Command:
    """``command`` with its file references filled from ``store`` (itself when it has none)."""
    if not isinstance(command, UserMessage | AskReply) or not command.files:
        return command
    owner = user.identifier if user is not None and not user.anonymous else None
    found: dict[str, StoredFile] = {}
    with trio.move_on_after(timeout) as scope:
        async with trio.open_nursery() as nursery:
            for key in {ref.id for ref in command.files}:
                nursery.start_soon(_stat, store, key, found)
    if scope.cancelled_caught:
        logger.warning("the file store took over %gs to describe %d file(s)", timeout, len(found))
    files = tuple(
        _described(ref, found.get(ref.id), store, session_id=session_id, owner=owner)
        for ref in command.files
    )
    return dataclasses.replace(command, files=files)


async def _stat(store: FileStore, key: str, found: dict[str, StoredFile]) -> None:
    try:
        found[key] = await store.stat(key)
    except UnknownFile:
        pass
    except (StorageError, OSError):
        logger.warning("the file store could not describe file %r", key, exc_info=True)


def _described(
    ref: FileRef, info: StoredFile | None, store: FileStore, *, session_id: str, owner: str | None
) -> FileRef:
    if info is None or not _readable(info, session_id, owner):
        return ref
    path = str(store.path(info.key)) if isinstance(store, LocalFileStore) else None
    return FileRef(id=ref.id, name=info.name, mime=info.content_type, size=info.size, path=path)


def _readable(info: StoredFile, session_id: str, owner: str | None) -> bool:
    """The session the file was uploaded to (uploading needed access to it), or its owner."""
    return info.session_id == session_id or (owner is not None and info.owner == owner)
