"""The router: opens chat sessions, starts their host actors on demand, keeps the limits.

The transport authenticates a client with `Router.authenticate`, opens (or re-attaches to) a
session with `Router.open`, and then talks to it through the returned `SessionHandle`.
"""

from triolet._exceptions import AuthError, SessionError, SessionLimitReached, UnknownSession

from ._auth import ANONYMOUS, AnonymousAuthenticator, Authenticator, User
from ._handle import SessionHandle
from ._router import DEFAULT_SESSION_LIMITS, Router, SessionLimits

__all__ = [
    "ANONYMOUS",
    "DEFAULT_SESSION_LIMITS",
    "AnonymousAuthenticator",
    "AuthError",
    "Authenticator",
    "Router",
    "SessionError",
    "SessionHandle",
    "SessionLimitReached",
    "SessionLimits",
    "UnknownSession",
    "User",
]
