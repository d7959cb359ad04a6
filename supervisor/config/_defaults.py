"""Every default of ``triolet.toml``, as a named constant.

Why a module of constants: a default is a decision (how long may an ask wait,
how many messages may queue for one session), and a decision deserves a name
that code, tests and docs can point at.  Like httpx's ``DEFAULT_TIMEOUT_CONFIG``,
limits and timeouts are *on* by default; turning one off is an explicit act
(``inf`` for a timeout in TOML).

Sizes are bytes, durations are seconds (floats) unless the name says ``_MS``.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "DEFAULT_ACCESS_TOKEN_TTL",
    "DEFAULT_ACK",
    "DEFAULT_ACTOR_MAILBOX_SIZE",
    "DEFAULT_ALLOWED_TYPES",
    "DEFAULT_APP_ACTOR",
    "DEFAULT_APP_DESCRIPTION",
    "DEFAULT_APP_NAME",
    "DEFAULT_ASK_TIMEOUT",
    "DEFAULT_AUTH_PROVIDER",
    "DEFAULT_BACKOFF_JITTER",
    "DEFAULT_BACKOFF_MAX",
    "DEFAULT_BACKOFF_MIN",
    "DEFAULT_BATCH_MS",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_BLOCK_TIMEOUT",
    "DEFAULT_CONFIG_FILE",
    "DEFAULT_DETACHED_TTL",
    "DEFAULT_DISCORD_RATE_LIMIT",
    "DEFAULT_FILES_DIR",
    "DEFAULT_HEARTBEAT_INTERVAL",
    "DEFAULT_HEARTBEAT_TIMEOUT",
    "DEFAULT_HOST",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_JWT_ALGORITHMS",
    "DEFAULT_JWT_LEEWAY",
    "DEFAULT_LANGUAGE",
    "DEFAULT_LOCKOUT_SECONDS",
    "DEFAULT_MAILBOX_SIZE",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_FILE_BYTES",
    "DEFAULT_MAX_FRAME_BYTES",
    "DEFAULT_MAX_LOGIN_ATTEMPTS",
    "DEFAULT_MAX_RESTARTS",
    "DEFAULT_MAX_SESSIONS",
    "DEFAULT_MAX_SESSION_BYTES",
    "DEFAULT_MIN_PASSWORD_LENGTH",
    "DEFAULT_OUTBOX_SIZE",
    "DEFAULT_OVERFLOW",
    "DEFAULT_PORT",
    "DEFAULT_RATE_BURST",
    "DEFAULT_REFRESH_TOKEN_TTL",
    "DEFAULT_RESTART",
    "DEFAULT_RESTART_PERIOD",
    "DEFAULT_ROLES_CLAIM",
    "DEFAULT_ROLES_HEADER",
    "DEFAULT_SHUTDOWN_TIMEOUT",
    "DEFAULT_SLACK_RATE_LIMIT",
    "DEFAULT_STORAGE_URL",
    "DEFAULT_STRATEGY",
    "DEFAULT_TEAMS_RATE_LIMIT",
    "DEFAULT_THEME",
    "DEFAULT_USER_HEADER",
    "ENV_PREFIX",
    "ENV_SEPARATOR",
    "MIN_AUTH_SECRET_LENGTH",
]

DEFAULT_CONFIG_FILE: Final = "triolet.toml"
ENV_PREFIX: Final = "TRIOLET__"
ENV_SEPARATOR: Final = "__"

# [app]
DEFAULT_APP_ACTOR: Final = "app.py"
DEFAULT_APP_NAME: Final = "Triolet"
DEFAULT_APP_DESCRIPTION: Final = ""

# [server]
DEFAULT_HOST: Final = "127.0.0.1"  # loopback: exposing the server is a choice
DEFAULT_PORT: Final = 8000
DEFAULT_MAX_FRAME_BYTES: Final = 1024 * 1024
DEFAULT_HEARTBEAT_INTERVAL: Final = 20.0
DEFAULT_HEARTBEAT_TIMEOUT: Final = 20.0
DEFAULT_OUTBOX_SIZE: Final = 256
DEFAULT_MAX_CONNECTIONS: Final = 1000
DEFAULT_ACK: Final = "durable"
#: Seconds a running session's replay log and dedup window wait for a reconnect once its last
#: connection has gone (the transport's own default, `transport.DEFAULT_DETACHED_TTL`).
DEFAULT_DETACHED_TTL: Final = 120.0

# [sessions]: one mailbox per session, so small; a busy session pushes back fast
DEFAULT_MAILBOX_SIZE: Final = 64
DEFAULT_OVERFLOW: Final = "block"
DEFAULT_BLOCK_TIMEOUT: Final = 10.0
DEFAULT_IDLE_TIMEOUT: Final = 15 * 60.0  # Chainlit keeps a dead session an hour
DEFAULT_MAX_SESSIONS: Final = 10_000
DEFAULT_ASK_TIMEOUT: Final = 300.0

# [supervision]: the same values as triolet.supervisor's own defaults (a test pins them)
# The app's root supervisor: rest_for_one, so a failed child restarts those started after it
# (the transport depends on the sessions, which depend on storage and the user's actors).
DEFAULT_STRATEGY: Final = "rest_for_one"
DEFAULT_MAX_RESTARTS: Final = 3
DEFAULT_RESTART_PERIOD: Final = 5.0
DEFAULT_BACKOFF_MIN: Final = 0.01
DEFAULT_BACKOFF_MAX: Final = 5.0
DEFAULT_BACKOFF_JITTER: Final = 0.2
DEFAULT_SHUTDOWN_TIMEOUT: Final = 5.0

# [storage]
DEFAULT_STORAGE_URL: Final = ".triolet/triolet.sqlite3"
DEFAULT_FILES_DIR: Final = ".triolet/files"
DEFAULT_MAX_FILE_BYTES: Final = 20 * 1024 * 1024
DEFAULT_MAX_SESSION_BYTES: Final = 200 * 1024 * 1024
# No "*/*": a user-uploaded HTML or SVG file served back is a script-injection risk.
DEFAULT_ALLOWED_TYPES: Final = (
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "text/plain",
    "text/markdown",
    "text/csv",
    "application/pdf",
    "application/json",
    "audio/*",
    "video/*",
)
DEFAULT_BATCH_SIZE: Final = 1000  # the writer measured 1.2x faster than at 500 (BENCHMARKS.md)
DEFAULT_BATCH_MS: Final = 5.0

# [auth]
DEFAULT_AUTH_PROVIDER: Final = "anonymous"
MIN_AUTH_SECRET_LENGTH: Final = 32
DEFAULT_ACCESS_TOKEN_TTL: Final = 15 * 60.0
DEFAULT_REFRESH_TOKEN_TTL: Final = 14 * 24 * 3600.0
DEFAULT_MIN_PASSWORD_LENGTH: Final = 12
DEFAULT_MAX_LOGIN_ATTEMPTS: Final = 5
DEFAULT_LOCKOUT_SECONDS: Final = 15 * 60.0
DEFAULT_JWT_ALGORITHMS: Final = ("RS256",)
DEFAULT_JWT_LEEWAY: Final = 30.0
DEFAULT_ROLES_CLAIM: Final = "roles"
DEFAULT_USER_HEADER: Final = "X-Forwarded-User"
DEFAULT_ROLES_HEADER: Final = "X-Forwarded-Groups"

# [bridges.*]: platform limits, per channel (Slack allows about one message a second)
DEFAULT_SLACK_RATE_LIMIT: Final = 1.0
DEFAULT_DISCORD_RATE_LIMIT: Final = 5.0
DEFAULT_TEAMS_RATE_LIMIT: Final = 7.0
DEFAULT_RATE_BURST: Final = 5

# [ui]
DEFAULT_THEME: Final = "system"
DEFAULT_LANGUAGE: Final = "en-US"

# [[actors]]
DEFAULT_RESTART: Final = "permanent"
# A shared service actor serves many sessions: the runtime's roomier default.
DEFAULT_ACTOR_MAILBOX_SIZE: Final = 1000
