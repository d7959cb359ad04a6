"""Authentication at session open: a pluggable `Authenticator`, anonymous by default.

The transport hands the router what the client presented (the ``hello`` frame's token, the
upgrade request's headers) and gets a `User` back, or `AuthError`. Password, JWT, OAuth and
trusted-header authenticators (issue #5) plug in here without touching the transport.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

__all__ = ["ANONYMOUS", "AnonymousAuthenticator", "Authenticator", "User"]


@dataclass(frozen=True, slots=True, kw_only=True)
class User:
    """Who opened a session. ``identifier`` is stable (the key of threads and ACLs)."""

    identifier: str
    display_name: str | None = None
    roles: frozenset[str] = frozenset()
    anonymous: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)


ANONYMOUS: Final = User(identifier="anonymous", anonymous=True)


class Authenticator(Protocol):
    """Turns a client's credentials into a `User`, or raises `AuthError`."""

    async def authenticate(self, token: str | None, headers: Mapping[str, str]) -> User: ...


class AnonymousAuthenticator:
    """Lets everyone in as the anonymous user (the default: a local dev server)."""

    async def authenticate(self, token: str | None, headers: Mapping[str, str]) -> User:
        return ANONYMOUS
