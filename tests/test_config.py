"""triolet.toml: defaults, every section, errors that say what to fix, env overrides."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pydantic
import pytest

from triolet._exceptions import ConfigError
from triolet.supervisor import config as cfg
from triolet.supervisor.config import TrioletConfig, load_config, render_starter_config

SECRET = "s" * 40


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "triolet.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def error_of(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), environ or {})
    return info.value


# --- defaults ------------------------------------------------------------------


def test_no_file_is_every_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(None, {})
    assert config.source is None
    assert config.server.host == cfg.DEFAULT_HOST
    assert config.server.port == cfg.DEFAULT_PORT
    assert config.server.ack == "durable"
    assert config.sessions.mailbox_size == cfg.DEFAULT_MAILBOX_SIZE
    assert config.sessions.overflow == cfg.DEFAULT_OVERFLOW
    assert config.supervision.strategy == "rest_for_one"
    assert config.storage.backend == "sqlite"
    assert config.storage.sqlite_path == tmp_path / cfg.DEFAULT_STORAGE_URL
    assert config.auth.provider == "anonymous"
    assert not config.bridges.slack.enabled
    assert config.ui.name == config.app.name == cfg.DEFAULT_APP_NAME
    assert config.actors == ()


def test_empty_file_is_valid_and_paths_follow_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    config = load_config(path, {})
    assert config.source == path.resolve()
    assert Path(config.storage.files_dir) == tmp_path.resolve() / cfg.DEFAULT_FILES_DIR
    assert config.app.actor_path == tmp_path.resolve() / "app.py"


def test_config_is_frozen() -> None:
    config = load_config(None, {})
    with pytest.raises(pydantic.ValidationError):
        config.server.port = 1


# --- every section -------------------------------------------------------------

FULL = f"""
    [app]
    actor = "my_app.bot:ChatBot"
    name = "Helper"
    description = "answers questions"

    [server]
    host = "0.0.0.0"
    port = 9000
    allowed_origins = ["https://chat.example.com", "http://localhost:3000"]
    max_frame_bytes = 65536
    heartbeat_interval = 5
    heartbeat_timeout = 7.5
    outbox_size = 32
    max_connections = 50
    detached_ttl = 30
    headless = true
    ack = "received"

    [sessions]
    mailbox_size = 8
    overflow = "drop_oldest"
    block_timeout = 2.0
    idle_timeout = inf
    max_sessions = 100
    ask_timeout = 30

    [supervision]
    strategy = "rest_for_one"
    max_restarts = 10
    period = 60
    backoff_min = 0.5
    backoff_max = 30
    backoff_jitter = 0.25
    shutdown_timeout = 3

    [storage]
    url = "postgres://triolet@db.internal/triolet"
    files_dir = "/var/lib/triolet/files"
    max_file_bytes = 1000
    max_session_bytes = 5000
    allowed_types = ["image/*", "application/pdf"]
    batch_size = 200
    batch_ms = 2

    [auth]
    provider = "oauth"
    secret = "{SECRET}"
    access_token_ttl = 60

    [auth.password]
    min_length = 16

    [auth.oauth.github]
    client_id = "abc"
    client_secret = "shh"

    [auth.oauth.generic]
    client_id = "id"
    client_secret = "shh"
    discovery_url = "https://id.example.com/.well-known/openid-configuration"

    [bridges.slack]
    enabled = true
    bot_token = "xoxb-1"
    app_token = "xapp-1"
    rate_limit = 0.5

    [bridges.discord]
    enabled = true
    bot_token = "d"

    [bridges.teams]
    enabled = true
    app_id = "app"
    app_password = "pw"

    [ui]
    logo = "https://cdn.example.com/logo.svg"
    theme = "dark"
    language = "fr-FR"

    [ui.colors]
    primary = "#ff0000"

    [[actors]]
    name = "cache"
    actor = "my_app.cache:Cache"
    restart = "transient"
    mailbox_size = 16
    overflow = "reject"
    options = {{ ttl = 60 }}

    [[actors]]
    name = "search-index"
    actor = "tools.py:Index"
"""


def test_every_section_is_read(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FULL), {})
    assert config.app.actor == "my_app.bot:ChatBot"
    assert config.app.actor_path is None
    assert config.server.allowed_origins == ("https://chat.example.com", "http://localhost:3000")
    assert config.server.headless is True
    assert config.server.ack == "received"
    assert config.server.heartbeat_interval == 5.0
    assert config.server.detached_ttl == 30.0
    assert config.sessions.overflow == "drop_oldest"
    assert config.sessions.idle_timeout == float("inf")
    assert config.supervision.strategy == "rest_for_one"
    assert config.supervision.backoff_max == 30
    assert config.storage.backend == "postgresql"
    assert config.storage.url == "postgresql://triolet@db.internal/triolet"
    assert config.storage.sqlite_path is None
    assert config.storage.allowed_types == ("image/*", "application/pdf")
    assert config.auth.provider == "oauth"
    assert config.auth.secret is not None
    assert config.auth.secret.get_secret_value() == SECRET
    assert config.auth.password.min_length == 16
    assert set(config.auth.oauth.clients) == {"github", "generic"}
    assert config.bridges.slack.rate_limit == 0.5
    assert config.bridges.discord.enabled and config.bridges.teams.enabled
    assert config.ui.name == "Helper"
    assert config.ui.theme == "dark"
    assert config.ui.logo == "https://cdn.example.com/logo.svg"
    assert config.ui.colors.primary == "#ff0000"
    cache, index = config.actors
    assert (cache.name, cache.restart, cache.mailbox_size, cache.overflow) == (
        "cache",
        "transient",
        16,
        "reject",
    )
    assert cache.options == {"ttl": 60}
    assert index.restart == cfg.DEFAULT_RESTART
    assert index.actor == f"{tmp_path.resolve() / 'tools.py'}:Index"


def test_secrets_do_not_leak_into_repr(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FULL), {})
    assert SECRET not in repr(config)
    assert "xoxb-1" not in repr(config)


@pytest.mark.parametrize(
    ("url", "backend"),
    [
        ("data/app.db", "sqlite"),
        ("sqlite:///data/app.db", "sqlite"),
        (":memory:", "sqlite"),
        ("postgresql://u@h/db", "postgresql"),
    ],
)
def test_storage_urls(tmp_path: Path, url: str, backend: str) -> None:
    config = load_config(write(tmp_path, f'[storage]\nurl = "{url}"\n'), {})
    assert config.storage.backend == backend
    if url.startswith("data") or url.startswith("sqlite"):
        assert config.storage.sqlite_path == tmp_path.resolve() / "data/app.db"


# --- errors --------------------------------------------------------------------


def test_unknown_key_suggests_the_close_one(tmp_path: Path) -> None:
    error = error_of(tmp_path, "[server]\nprot = 9000\n")
    message = str(error)
    assert "triolet.toml" in message
    assert "server.prot = 9000" in message
    assert "did you mean server.port?" in message
    assert error.key == "server.prot"


def test_unknown_section_and_misplaced_key(tmp_path: Path) -> None:
    message = str(error_of(tmp_path, "[sever]\nport = 1\n[server]\nmailbox_size = 3\n"))
    assert "did you mean server?" in message
    assert "server.mailbox_size = 3" in message
    assert "did you mean sessions.mailbox_size?" in message
    assert "2 problems" in message


def test_unknown_key_in_array_of_tables(tmp_path: Path) -> None:
    text = '[[actors]]\nname = "a"\nactor = "m:C"\nrestrat = "permanent"\n'
    message = str(error_of(tmp_path, text))
    assert "actors[0].restrat" in message
    assert "did you mean actors[0].restart?" in message


def test_wrong_type_names_file_key_value_and_expectation(tmp_path: Path) -> None:
    error = error_of(tmp_path, '[server]\nport = "9000"\n')
    assert error.file is not None and error.file.endswith("triolet.toml")
    assert error.key == "server.port"
    assert error.value == '"9000"'
    assert error.expected == "an integer"
    assert str(error).endswith('triolet.toml: server.port = "9000": expected an integer')


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ("[server]\nport = 70000", "server.port", "a number less than or equal to 65535"),
        ('[server]\nack = "maybe"', "server.ack", "'durable' or 'received'"),
        ('[server]\nallowed_origins = ["https://a/path"]', "server.allowed_origins", "origins"),
        ("[server]\nheadless = 1", "server.headless", "true or false"),
        ('[server]\nallowed_origins = "https://a"', "server.allowed_origins", "an array"),
        ("server = 1", "server", "a table"),
        ('[sessions]\noverflow = "drop"', "sessions.overflow", "'block', 'reject'"),
        ("[sessions]\nmailbox_size = 0", "sessions.mailbox_size", "greater than or equal to 1"),
        ("[sessions]\nidle_timeout = -1", "sessions.idle_timeout", "greater than 0"),
        ('[supervision]\nstrategy = "all"', "supervision.strategy", "'one_for_one'"),
        ("[supervision]\nbackoff_min = 5\nbackoff_max = 1", "supervision.backoff_max", ">="),
        ('[storage]\nurl = "mysql://h/db"', "storage.url", "postgresql://"),
        ('[storage]\nallowed_types = ["png"]', "storage.allowed_types", "MIME types"),
        ("[storage]\nmax_file_bytes = 10\nmax_session_bytes = 5", "storage.max_session_bytes", ""),
        ('[app]\nactor = "not a ref"', "app.actor", "module:Class"),
        ('[ui]\ntheme = "blue"', "ui.theme", "'light', 'dark' or 'system'"),
        ('[ui.colors]\nprimary = "red"', "ui.colors.primary", "hex colour"),
        ('[auth]\nprovider = "ldap"', "auth.provider", "'anonymous'"),
        ('[auth]\nprovider = "password"', "auth.secret", "a secret"),
        ('[auth]\nprovider = "header"', "auth.header", "trusted_proxies"),
        ('[auth]\nprovider = "jwt"', "auth.jwt", "key or jwks_url"),
        ('[auth]\nprovider = "oauth"\nsecret = "' + SECRET + '"', "auth.oauth", "at least one"),
        ('[auth.jwt]\nalgorithms = ["none"]', "auth.jwt.algorithms", "non-empty list"),
        ('[auth.jwt]\nalgorithms = ["HS256", "RS256"]', "auth.jwt.algorithms", "not both"),
        ('[auth.header]\ntrusted_proxies = ["proxy"]', "auth.header.trusted_proxies", "CIDR"),
        ('[auth.oauth.github]\nclient_id = "x"', "auth.oauth.github.client_secret", "required"),
        ("[bridges.slack]\nenabled = true", "bridges.slack.bot_token", "xoxb"),
        ("[bridges.discord]\nenabled = true", "bridges.discord.bot_token", "bot token"),
        ("[bridges.teams]\nenabled = true", "bridges.teams.app_id", "app id"),
        ('[[actors]]\nname = "router"\nactor = "m:C"', "actors[0].name", "reserved"),
        ('[[actors]]\nname = "a"', "actors[0].actor", "required"),
        ('[[actors]]\nname = "a"\nactor = "m:C"\nrestart = "always"', "actors[0].restart", ""),
    ],
)
def test_each_check_names_the_key(tmp_path: Path, text: str, key: str, expected: str) -> None:
    error = error_of(tmp_path, text + "\n")
    assert error.key == key, str(error)
    assert error.expected is not None and expected in error.expected, str(error)
    assert "triolet.toml" in str(error)


def test_duplicate_actor_names(tmp_path: Path) -> None:
    entry = '[[actors]]\nname = "a"\nactor = "m:C"\n'
    error = error_of(tmp_path, entry + entry)
    assert error.key == "actors"
    assert "'a' appears twice" in str(error)


def test_all_errors_are_reported_together(tmp_path: Path) -> None:
    message = str(error_of(tmp_path, '[server]\nport = "x"\nack = 1\n[sessions]\noverflow = 3\n'))
    assert "3 problems" in message
    for key in ("server.port", "server.ack", "sessions.overflow"):
        assert key in message


def test_secrets_are_masked_in_errors(tmp_path: Path) -> None:
    message = str(error_of(tmp_path, '[auth]\nsecret = "short-secret"\n'))
    assert "auth.secret" in message and "at least 32" in message
    assert "short-secret" not in message


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    error = error_of(tmp_path, '[server]\nhost = "a"\nport = \n')
    assert str(error).startswith(f"{tmp_path / 'triolet.toml'}:3:")
    assert "invalid TOML" in str(error)


def test_duplicate_toml_key_is_a_syntax_error(tmp_path: Path) -> None:
    # tomlkit reports a duplicate inside a table without its line; the key is named.
    message = str(error_of(tmp_path, "[server]\nport = 1\nport = 2\n"))
    assert "triolet.toml" in message and '"port" already exists' in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.toml", {})


# --- environment and overrides -------------------------------------------------


def test_env_overrides_nested_keys_with_types(tmp_path: Path) -> None:
    environ = {
        "TRIOLET__SERVER__PORT": "9000",
        "TRIOLET__SERVER__HEADLESS": "yes",
        "TRIOLET__SERVER__ALLOWED_ORIGINS": '["https://a"]',
        "TRIOLET__SESSIONS__IDLE_TIMEOUT": "inf",
        "TRIOLET__SESSIONS__OVERFLOW": "reject",
        "TRIOLET__BRIDGES__SLACK__ENABLED": "true",
        "TRIOLET__BRIDGES__SLACK__BOT_TOKEN": "xoxb-env",
        "TRIOLET__BRIDGES__SLACK__SIGNING_SECRET": "sig",
        "TRIOLET__AUTH__SECRET": SECRET,
        "TRIOLET__ACTORS__0__MAILBOX_SIZE": "4",
        "PATH": "/usr/bin",  # not ours: ignored
    }
    text = '[server]\nport = 1\n[[actors]]\nname = "a"\nactor = "m:C"\n'
    config = load_config(write(tmp_path, text), environ)
    assert config.server.port == 9000
    assert config.server.headless is True
    assert config.server.allowed_origins == ("https://a",)
    assert config.sessions.idle_timeout == float("inf")
    assert config.sessions.overflow == "reject"
    assert config.bridges.slack.enabled
    assert config.auth.secret is not None
    assert config.actors[0].mailbox_size == 4
    assert config.actors[0].name == "a"


def test_env_table_as_json_merges_with_file(tmp_path: Path) -> None:
    environ = {"TRIOLET__SERVER": '{"port": 9001}', "TRIOLET__SERVER__HOST": "0.0.0.0"}
    config = load_config(write(tmp_path, "[server]\nheadless = true\n"), environ)
    assert (config.server.port, config.server.host, config.server.headless) == (
        9001,
        "0.0.0.0",
        True,
    )


def test_env_array_of_tables_as_json(tmp_path: Path) -> None:
    environ = {"TRIOLET__ACTORS": '[{"name": "a", "actor": "m:C"}]'}
    assert load_config(None, environ).actors[0].name == "a"


def test_bad_env_value_names_the_variable(tmp_path: Path) -> None:
    error = error_of(
        tmp_path,
        "",
        {"TRIOLET__SERVER__PORT": "abc", "TRIOLET__SERVER__ALLOWED_ORIGINS": "https://a"},
    )
    message = str(error)
    assert 'environment variable TRIOLET__SERVER__PORT: server.port = "abc"' in message
    assert "an integer" in message
    assert "environment variable TRIOLET__SERVER__ALLOWED_ORIGINS" in message
    assert "JSON array" in message


def test_env_constraint_failure_names_the_variable(tmp_path: Path) -> None:
    message = str(error_of(tmp_path, "", {"TRIOLET__SERVER__PORT": "99999"}))
    assert "environment variable TRIOLET__SERVER__PORT: server.port = 99999" in message


def test_env_enabling_a_bridge_is_blamed_for_its_missing_token() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, {"TRIOLET__BRIDGES__SLACK__ENABLED": "true"})
    assert "environment variable TRIOLET__BRIDGES__SLACK__ENABLED" in str(info.value)


def test_unknown_env_key_suggests(tmp_path: Path) -> None:
    error = error_of(tmp_path, "", {"TRIOLET__SERVER__PROT": "1", "TRIOLET__SESION__X": "1"})
    message = str(error)
    assert "environment variable TRIOLET__SERVER__PROT" in message
    assert "did you mean server.port?" in message
    assert "did you mean sessions?" in message


def test_env_index_past_the_end(tmp_path: Path) -> None:
    message = str(error_of(tmp_path, "", {"TRIOLET__ACTORS__0__NAME": "x"}))
    assert "actors[0].name" in message and "has 0" in message


def test_env_key_under_a_scalar(tmp_path: Path) -> None:
    message = str(error_of(tmp_path, "", {"TRIOLET__SERVER__PORT__X": "1"}))
    assert "server.port.x" in message


def test_precedence_file_env_override(tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\nport = 1\nhost = "h"\n')
    config = load_config(
        path,
        {"TRIOLET__SERVER__PORT": "2", "TRIOLET__SERVER__HOST": "e"},
        overrides={"server.port": 3},
    )
    assert (config.server.port, config.server.host) == (3, "e")


def test_bad_override_names_itself() -> None:
    with pytest.raises(ConfigError, match=r"override server\.port"):
        load_config(None, {}, overrides={"server.port": "x"})


# --- the starter file ----------------------------------------------------------


def test_starter_config_loads_back_to_the_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    loaded = load_config(write(tmp_path, render_starter_config()), {})
    assert loaded.model_dump() == load_config(None, {}).model_dump()


def test_starter_config_takes_name_and_actor(tmp_path: Path) -> None:
    text = render_starter_config(name='My "quoted" bot', actor="bot:Bot")
    config = load_config(write(tmp_path, text), {})
    assert (config.app.name, config.app.actor) == ('My "quoted" bot', "bot:Bot")


def _keys(model: type[pydantic.BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        sub = next(
            (
                a
                for a in (*getattr(field.annotation, "__args__", ()), field.annotation)
                if isinstance(a, type) and issubclass(a, pydantic.BaseModel)
            ),
            None,
        )
        if sub is None:
            keys.append(f"{prefix}{name}")
        elif name not in {"google", "microsoft", "generic"}:
            keys += _keys(sub, f"{prefix}{name}.")
    return keys


def test_starter_config_documents_every_key() -> None:
    text = render_starter_config()
    sections: dict[str, list[str]] = {}
    current = ""
    for line in text.splitlines():
        stripped = line.lstrip("# ")
        if stripped.startswith("[") and "]" in stripped:
            current = stripped.split("]")[0].strip("[")
            sections.setdefault(current, [])
        elif " = " in stripped and not line.startswith("#   "):
            sections.setdefault(current, []).append(stripped.split(" = ")[0])
    documented = {f"{table}.{key}" for table, keys in sections.items() for key in keys}
    for key in _keys(TrioletConfig):
        if key != "actors":
            assert key in documented, key
    for key in cfg.ActorConfig.model_fields:
        assert f"actors.{key}" in documented


def test_choices_and_defaults_match_the_runtime() -> None:
    """The TOML spells the runtime's enums and defaults; this catches either side drifting."""
    from triolet import actors, supervisor

    for literal, enum in (
        (cfg.Overflow, actors.Overflow),
        (cfg.Restart, supervisor.Restart),
        (cfg.Strategy, supervisor.Strategy),
    ):
        assert set(literal.__args__) == {member.value for member in enum}
    assert cfg.DEFAULT_ACTOR_MAILBOX_SIZE == actors.DEFAULT_MAILBOX_SIZE
    assert cfg.DEFAULT_MAX_RESTARTS == supervisor.DEFAULT_MAX_RESTARTS
    assert cfg.DEFAULT_RESTART_PERIOD == supervisor.DEFAULT_PERIOD
    assert cfg.DEFAULT_SHUTDOWN_TIMEOUT == supervisor.DEFAULT_SHUTDOWN_TIMEOUT
    backoff = supervisor.DEFAULT_BACKOFF
    assert (
        backoff.minimum,
        backoff.maximum,
        backoff.jitter,
    ) == (cfg.DEFAULT_BACKOFF_MIN, cfg.DEFAULT_BACKOFF_MAX, cfg.DEFAULT_BACKOFF_JITTER)


def test_public_names() -> None:
    assert {"TrioletConfig", "load_config", "render_starter_config"} <= set(cfg.__all__)
    for name in cfg.__all__:
        assert hasattr(cfg, name), name


# --- storage.record -------------------------------------------------------------------


def test_unrecorded_chats_turn_the_default_ack_into_received(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "[storage]\nrecord = false\n"), {})
    assert config.storage.record is False
    assert config.server.ack == "received"
    assert load_config(write(tmp_path, ""), {}).server.ack == "durable"


def test_durable_ack_without_recording_is_an_error_at_server_ack(tmp_path: Path) -> None:
    error = error_of(tmp_path, '[server]\nack = "durable"\n[storage]\nrecord = false\n')
    assert error.key == "server.ack"
    assert error.value == '"durable"'
    assert "storage.record = false" in error.expected
    from_env = error_of(
        tmp_path, "[storage]\nrecord = false\n", {"TRIOLET__SERVER__ACK": "durable"}
    )
    assert from_env.key == "server.ack" and "TRIOLET__SERVER__ACK" in str(from_env)


def test_server_settings_reach_the_websocket_endpoint(tmp_path: Path) -> None:
    from triolet._run import TransportService
    from triolet.supervisor.router import Router
    from triolet.supervisor.session import SessionActor
    from triolet.transport import TransportMetrics

    config = load_config(
        write(
            tmp_path, "[server]\ndetached_ttl = 45\nmax_connections = 7\nheartbeat_interval = 3\n"
        ),
        {},
    )
    service = TransportService(config, Router(SessionActor), system=None)  # type: ignore[arg-type]
    endpoint = service.endpoint(TransportMetrics())
    assert endpoint.detached_ttl == 45.0
    assert endpoint.max_connections == 7
    assert endpoint.limits.heartbeat_interval == 3.0
