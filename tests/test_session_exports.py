"""The public names of the session and router packages, pinned (see test_exports.py)."""

from __future__ import annotations

from triolet.supervisor import router, session

ROUTER = {
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
}

SESSION_HOOKS = (
    "on_chat_start",
    "on_message",
    "on_action",
    "on_file_upload",
    "on_settings_update",
    "on_stop",
    "on_chat_end",
    "on_chat_resume",
)


def test_router_exports() -> None:
    assert set(router.__all__) == ROUTER
    for name in router.__all__:
        assert hasattr(router, name)


def test_session_exports_resolve() -> None:
    assert len(set(session.__all__)) == len(session.__all__)
    for name in session.__all__:
        assert hasattr(session, name), name
    # nothing importable that is not declared (the submodules are private)
    public = {n for n in vars(session) if n.isidentifier() and not n.startswith("_")}
    public.discard("annotations")
    assert public <= set(session.__all__)
    assert session.HOOKS == SESSION_HOOKS
