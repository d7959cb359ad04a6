"""Who is calling the stored-conversation routes, and which stored data that lets them reach.

The one seam the auth issue fills is `current_user`: it hands the request's bearer token and
headers to the router's `Authenticator` (anonymous by default) and gets a `User`. Everything
below it only ever sees a `Caller`, whose ``owner`` is the key every storage query is scoped
by; a route never builds a scope of its own, so none can forget to.

Anonymous callers (the default, no ``[auth]``) get no identity, because one would be shared by
everybody who reaches the server: "anonymous" listing "anonymous's threads" would show every
visitor every other visitor's conversations. Instead an anonymous caller is scoped to the
session it holds. The session id is already the capability for an anonymous session (whoever
has it may attach to the session over the WebSocket and read it live), so naming it in the
``X-Triolet-Session`` header (or ``?session=``) grants that session's stored thread and files
and nothing more; this reveals nothing the id did not already give. The storage owner of an
anonymous session's records is `anonymous_owner(session_id)` (``triolet run`` must record
anonymous sessions under it; see `anonymous_owner`). Naming a session that belongs to a
signed-in user reaches nothing: its records are owned by that user's identifier.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from triolet._exceptions import AuthError
from triolet.supervisor.router import Router, User

from ._http import _Problem
from ._storage_models import SESSION_HEADER

__all__ = ["ANONYMOUS_OWNER_PREFIX", "Caller", "anonymous_owner", "caller_of", "current_user"]

#: Storage owner keys of anonymous sessions start with this (no real identifier can: the
#: authenticator of the auth issue must refuse identifiers with this prefix).
ANONYMOUS_OWNER_PREFIX: Final = "anon:"

#: What a session id may look like when a client names one (ids are ``s_`` + urlsafe base64).
_SESSION_ID: Final = re.compile(r"[A-Za-z0-9_\-.~]{1,128}")


def anonymous_owner(session_id: str) -> str:
    """The storage owner key of an anonymous session's thread, feedback and files.

    ``triolet run``'s recorder factory passes this as the ``user_id`` of sessions opened
    anonymously, so `caller_of` can find their records again by the session id alone.
    """
    return f"{ANONYMOUS_OWNER_PREFIX}{session_id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Caller:
    """A resolved caller: the user, and the storage owner key its queries are scoped by."""

    user: User
    owner: str
    session: str | None = None
    """For an anonymous caller, the session it named (its whole scope)."""


def bearer_token(headers: Mapping[str, str]) -> str | None:
    header = headers.get("authorization", "")
    return header[7:].strip() or None if header[:7].lower() == "bearer " else None


async def current_user(router: Router, headers: Mapping[str, str]) -> User:
    """The user behind a request's credentials: the router's authenticator decides.

    ``headers`` are the request's headers with lower-case names. Raises `_Problem` 401
    ``auth_failed`` when the authenticator refuses them.
    """
    try:
        return await router.authenticate(bearer_token(headers), headers)
    except AuthError as exc:
        raise _Problem(401, "auth_failed", str(exc) or "credentials refused") from None


async def caller_of(
    router: Router, headers: Mapping[str, str], query_session: str | None = None
) -> Caller:
    """The `Caller` of a request (see the module docstring for the anonymous rule)."""
    user = await current_user(router, headers)
    if not user.anonymous:
        if user.identifier.startswith(ANONYMOUS_OWNER_PREFIX):
            raise _Problem(401, "auth_failed", "identifiers may not start with 'anon:'")
        return Caller(user=user, owner=user.identifier)
    session = headers.get(SESSION_HEADER.lower()) or query_session
    if not session:
        raise _Problem(
            401,
            "session_required",
            f"anonymous callers reach only their own session's thread and files: name the "
            f"session in the {SESSION_HEADER} header or the 'session' query parameter "
            "(or sign in)",
        )
    if not _SESSION_ID.fullmatch(session):
        raise _Problem(401, "session_required", "the named session is not a session id")
    return Caller(user=user, owner=anonymous_owner(session), session=session)
