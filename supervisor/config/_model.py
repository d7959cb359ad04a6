"""The typed shape of ``triolet.toml``: one model per section, and the whole.

Why pydantic: it gives typed, frozen objects, collects every error in one pass
with the dotted location of each, and forbids unknown keys; a hand-written
validator for ~90 keys would be longer and less thorough.  Every field has a
default (from ``_defaults``), so an empty file is a valid config, and a
``description`` that the starter file (``_starter``) prints as its comment.

Paths that are relative are resolved against the config file's folder by the
loader, so ``triolet run ../x/triolet.toml`` finds the same database and files
as ``cd ../x && triolet run``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from . import _defaults as d
from ._auth import AuthConfig
from ._bridges import BridgesConfig
from ._issues import CrossKeyError
from ._types import (
    Ack,
    Count,
    Duration,
    ImportRef,
    Overflow,
    Restart,
    Section,
    Strategy,
    StrTuple,
    Timeout,
)

__all__ = [
    "ActorConfig",
    "AppConfig",
    "ServerConfig",
    "SessionsConfig",
    "StorageConfig",
    "SupervisionConfig",
    "TrioletConfig",
    "UIColors",
    "UIConfig",
]

# Names the server's own tree uses; a user actor may not take them.
RESERVED_ACTOR_NAMES = frozenset({"root", "router", "storage", "sessions", "bridges", "transport"})


class AppConfig(Section):
    """[app]: which session actor to run, and what the app is called."""

    actor: ImportRef = Field(
        default=d.DEFAULT_APP_ACTOR,
        description='the session actor: "package.module:Class", or a .py file that defines it',
        examples=["my_app.bot:ChatBot"],
    )
    name: str = Field(default=d.DEFAULT_APP_NAME, min_length=1, description="the app's name")
    description: str = Field(
        default=d.DEFAULT_APP_DESCRIPTION, description="one line about the app, shown in the UI"
    )

    @property
    def actor_path(self) -> Path | None:
        """The .py file named by ``actor`` (absolute once loaded), or None for a module."""
        file = self.actor.partition(":")[0] if ".py" in self.actor else None
        return Path(file) if file and file.endswith(".py") else None


_ORIGIN = re.compile(r"https?://[^/\s?#]+")


class ServerConfig(Section):
    """[server]: the socket, its limits, and when a message counts as received."""

    host: str = Field(default=d.DEFAULT_HOST, min_length=1, description="address to listen on")
    port: int = Field(default=d.DEFAULT_PORT, ge=0, le=65535, description="0 picks a free port")
    allowed_origins: StrTuple = Field(
        default=(),
        description='Origins allowed to open /ws; [] means the server\'s own origin only, "*" any',
        examples=[["https://chat.example.com"]],
    )
    max_frame_bytes: int = Field(
        default=d.DEFAULT_MAX_FRAME_BYTES, ge=1024, description="largest WebSocket frame accepted"
    )
    heartbeat_interval: Timeout = Field(
        default=d.DEFAULT_HEARTBEAT_INTERVAL, description="seconds between pings"
    )
    heartbeat_timeout: Timeout = Field(
        default=d.DEFAULT_HEARTBEAT_TIMEOUT, description="seconds without a pong before closing"
    )
    outbox_size: Count = Field(
        default=d.DEFAULT_OUTBOX_SIZE,
        description="frames queued for a slow client before it is disconnected",
    )
    max_connections: Count = Field(
        default=d.DEFAULT_MAX_CONNECTIONS, description="open WebSockets; more are refused"
    )
    detached_ttl: Timeout = Field(
        default=d.DEFAULT_DETACHED_TTL,
        description="seconds a session's replay log waits for a reconnect after its last tab left",
    )
    headless: bool = Field(default=False, description="serve the API only, no web UI")
    ack: Ack = Field(
        default=d.DEFAULT_ACK,
        description='"durable": ack once stored; "received": ack on arrival (faster, can lose)',
    )

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            if origin != "*" and not _ORIGIN.fullmatch(origin):
                raise ValueError(
                    f'origins like "https://host[:port]" (no path) or "*", not {origin!r}'
                )
        return value


class SessionsConfig(Section):
    """[sessions]: each session actor's mailbox, and how long sessions live."""

    mailbox_size: Count = Field(
        default=d.DEFAULT_MAILBOX_SIZE, description="messages queued for one session"
    )
    overflow: Overflow = Field(
        default=d.DEFAULT_OVERFLOW,
        description='full mailbox: "block" the sender, "reject", "drop_newest" or "drop_oldest"',
    )
    block_timeout: Timeout = Field(
        default=d.DEFAULT_BLOCK_TIMEOUT,
        description='seconds a "block" sender waits before the message is rejected',
    )
    idle_timeout: Timeout = Field(
        default=d.DEFAULT_IDLE_TIMEOUT,
        description="seconds without activity before a session is passivated (inf: never)",
    )
    max_sessions: Count = Field(default=d.DEFAULT_MAX_SESSIONS, description="live sessions")
    ask_timeout: Timeout = Field(
        default=d.DEFAULT_ASK_TIMEOUT,
        description="default seconds to wait when a session asks the user something",
    )


class SupervisionConfig(Section):
    """[supervision]: restart policy and intensity of the app's root supervisor."""

    strategy: Strategy = Field(
        default=d.DEFAULT_STRATEGY,
        description='"one_for_one", "one_for_all" or "rest_for_one"',
    )
    max_restarts: int = Field(
        default=d.DEFAULT_MAX_RESTARTS, ge=0, description="restarts allowed within period"
    )
    period: Duration = Field(
        default=d.DEFAULT_RESTART_PERIOD, gt=0, description="seconds of the restart window"
    )
    backoff_min: Duration = Field(
        default=d.DEFAULT_BACKOFF_MIN, description="first restart delay, seconds"
    )
    backoff_max: Duration = Field(
        default=d.DEFAULT_BACKOFF_MAX, description="longest restart delay, seconds"
    )
    backoff_jitter: float = Field(
        default=d.DEFAULT_BACKOFF_JITTER, ge=0, le=1, description="random spread, 0 to 1"
    )
    shutdown_timeout: Timeout = Field(
        default=d.DEFAULT_SHUTDOWN_TIMEOUT,
        description="seconds running handlers get to finish at shutdown",
    )

    @field_validator("backoff_max")
    @classmethod
    def _backoff_order(cls, value: float, info: ValidationInfo) -> float:
        low = info.data.get("backoff_min")
        if low is not None and value < low:
            raise ValueError(f"a value >= supervision.backoff_min ({low:g})")
        return value


_MIME = re.compile(r"(?:[a-z0-9][\w.+-]*|\*)/(?:[a-z0-9][\w.+-]*|\*)")


class StorageConfig(Section):
    """[storage]: where threads, messages and files are kept, and upload limits."""

    url: str = Field(
        default=d.DEFAULT_STORAGE_URL,
        description="a SQLite file path (embedded) or a postgresql:// URL",
        examples=["postgresql://triolet@localhost/triolet"],
    )
    files_dir: str = Field(
        default=d.DEFAULT_FILES_DIR, min_length=1, description="folder for uploaded files"
    )
    record: bool = Field(
        default=True,
        description="store every conversation; false: chats are not kept (acks are then"
        ' "received"), uploads and session snapshots still are',
    )
    max_file_bytes: Count = Field(default=d.DEFAULT_MAX_FILE_BYTES, description="per upload")
    max_session_bytes: Count = Field(
        default=d.DEFAULT_MAX_SESSION_BYTES, description="all uploads of one session"
    )
    allowed_types: StrTuple = Field(
        default=d.DEFAULT_ALLOWED_TYPES, description='MIME types accepted; "image/*" wildcards'
    )
    batch_size: int = Field(
        default=d.DEFAULT_BATCH_SIZE, ge=1, le=100_000, description="rows per group commit"
    )
    batch_ms: Duration = Field(
        default=d.DEFAULT_BATCH_MS, description="milliseconds a batch waits to fill; 0: none"
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value.startswith("postgres://"):
            value = "postgresql://" + value.removeprefix("postgres://")
        if value.startswith("postgresql://"):
            if not urlsplit(value).hostname:
                raise ValueError('a postgresql:// URL with a host, "postgresql://user@host/db"')
            return value
        if value.startswith("sqlite:///"):
            value = value.removeprefix("sqlite:///")
        if not value or "://" in value:
            raise ValueError('a SQLite file path or a "postgresql://user@host/db" URL')
        return value

    @field_validator("max_session_bytes")
    @classmethod
    def _session_quota(cls, value: int, info: ValidationInfo) -> int:
        per_file = info.data.get("max_file_bytes")
        if per_file is not None and value < per_file:
            raise ValueError(f"a value >= storage.max_file_bytes ({per_file})")
        return value

    @field_validator("allowed_types")
    @classmethod
    def _types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for mime in value:
            if not _MIME.fullmatch(mime):
                raise ValueError(f'MIME types like "image/png" or "image/*", not {mime!r}')
        return value

    @property
    def backend(self) -> Literal["sqlite", "postgresql"]:
        """Which storage backend ``url`` selects."""
        return "postgresql" if self.url.startswith("postgresql://") else "sqlite"

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite database file (absolute once loaded), or None for PostgreSQL."""
        return None if self.backend == "postgresql" else Path(self.url)


_COLOUR = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})")


class UIColors(Section):
    """[ui.colors]: theme colours as hex; unset ones keep the theme's own."""

    primary: str | None = Field(default=None, description="accent colour", examples=["#3b82f6"])
    background: str | None = Field(default=None, description="page background")
    surface: str | None = Field(default=None, description="cards and message bubbles")
    text: str | None = Field(default=None, description="body text")

    @field_validator("primary", "background", "surface", "text")
    @classmethod
    def _hex(cls, value: str | None) -> str | None:
        if value is not None and not _COLOUR.fullmatch(value):
            raise ValueError('a hex colour like "#3b82f6"')
        return value


_LANGUAGE = re.compile(r"[a-zA-Z]{2,3}(?:-[a-zA-Z0-9]{2,8})*")


class UIConfig(Section):
    """[ui]: how the web UI looks."""

    name: str | None = Field(
        default=None, description="title shown in the UI; defaults to app.name", examples=["Bot"]
    )
    logo: str | None = Field(
        default=None, description="a path or URL of the logo", examples=["public/logo.svg"]
    )
    theme: Literal["light", "dark", "system"] = Field(
        default=d.DEFAULT_THEME, description='"light", "dark" or "system" (follow the browser)'
    )
    language: str = Field(default=d.DEFAULT_LANGUAGE, description='a BCP 47 tag like "fr-FR"')
    colors: UIColors = Field(default_factory=UIColors, description="theme colour overrides")

    @field_validator("language")
    @classmethod
    def _language(cls, value: str) -> str:
        if not _LANGUAGE.fullmatch(value):
            raise ValueError('a language tag like "en-US" or "fr"')
        return value


_ACTOR_NAME = re.compile(r"[a-z][a-z0-9_-]*")


class ActorConfig(Section):
    """[[actors]]: your own actor, started with the server; sessions reach it by name."""

    name: str = Field(description="registry name sessions use to reach it", examples=["cache"])
    actor: ImportRef = Field(description='"package.module:Class"', examples=["my_app.cache:Cache"])
    restart: Restart = Field(
        default=d.DEFAULT_RESTART,
        description='"permanent" (always), "transient" (after a crash) or "temporary" (never)',
    )
    mailbox_size: Count = Field(default=d.DEFAULT_ACTOR_MAILBOX_SIZE, description="queued messages")
    overflow: Overflow = Field(default=d.DEFAULT_OVERFLOW, description="as in [sessions]")
    options: dict[str, Any] = Field(
        default_factory=dict, description="passed to the actor's constructor as keywords"
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if value in RESERVED_ACTOR_NAMES:
            raise ValueError(
                f"a name not reserved by Triolet ({', '.join(sorted(RESERVED_ACTOR_NAMES))})"
            )
        if not _ACTOR_NAME.fullmatch(value):
            raise ValueError("a lowercase name: letters, digits, '_' and '-'")
        return value


class TrioletConfig(Section):
    """The whole of ``triolet.toml``: built once at start, read by everything after.

    ``source`` is the file it came from (None when there was none).
    """

    app: AppConfig = Field(default_factory=AppConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    sessions: SessionsConfig = Field(default_factory=SessionsConfig)
    supervision: SupervisionConfig = Field(default_factory=SupervisionConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    bridges: BridgesConfig = Field(default_factory=BridgesConfig)
    ui: UIConfig = Field(default_factory=UIConfig)
    actors: tuple[ActorConfig, ...] = Field(default=(), strict=False)

    _source: Path | None = PrivateAttr(default=None)

    @property
    def source(self) -> Path | None:
        """The file this config was loaded from, or None."""
        return self._source

    @field_validator("actors")
    @classmethod
    def _unique_names(cls, value: tuple[ActorConfig, ...]) -> tuple[ActorConfig, ...]:
        seen: set[str] = set()
        for entry in value:
            if entry.name in seen:
                raise ValueError(f"unique actor names ({entry.name!r} appears twice)")
            seen.add(entry.name)
        return value

    @model_validator(mode="after")
    def _ack_needs_recording(self) -> TrioletConfig:
        if self.storage.record or self.server.ack != "durable":
            return self
        if "ack" in self.server.model_fields_set:
            raise CrossKeyError(
                ("server", "ack"),
                "durable",
                '"received": with storage.record = false nothing is stored to wait for',
            )
        # Unrecorded chats: the durable default cannot hold, so it quietly becomes received.
        object.__setattr__(self, "server", self.server.model_copy(update={"ack": "received"}))
        return self

    @model_validator(mode="after")
    def _ui_name(self) -> TrioletConfig:
        if self.ui.name is None:
            # Frozen: a copy is the only way, and it happens once, at load.
            object.__setattr__(self, "ui", self.ui.model_copy(update={"name": self.app.name}))
        return self
