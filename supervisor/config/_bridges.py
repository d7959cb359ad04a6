"""[bridges.slack], [bridges.discord], [bridges.teams]: chat platforms as clients.

Each bridge is off until ``enabled = true``; once on, the credentials it cannot
work without are required here, at start, rather than failing on the first
message.  Rate limits are per channel, in messages per second with a burst,
matching what each platform tolerates so a chatty session is smoothed instead
of banned.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr, ValidationInfo, field_validator

from . import _defaults as d
from ._types import Count, Section

__all__ = ["BridgesConfig", "DiscordBridge", "SlackBridge", "TeamsBridge"]


def _rate(default: float) -> Any:
    """A field for messages per second: positive and finite."""
    return Field(
        default=default, gt=0, allow_inf_nan=False, description="messages per second, per channel"
    )


def _needed(value: object, info: ValidationInfo, what: str) -> None:
    if value is None and info.data.get("enabled"):
        raise ValueError(f"{what} when enabled = true")


class SlackBridge(Section):
    """[bridges.slack]: the Events API (signing_secret) or Socket Mode (app_token)."""

    enabled: bool = Field(default=False, description="start the Slack bridge")
    bot_token: SecretStr | None = Field(
        default=None, validate_default=True, description='bot token, "xoxb-..."'
    )
    signing_secret: SecretStr | None = Field(
        default=None, description="verifies Events API requests"
    )
    app_token: SecretStr | None = Field(
        default=None, validate_default=True, description='Socket Mode token, "xapp-..."'
    )
    rate_limit: float = _rate(d.DEFAULT_SLACK_RATE_LIMIT)
    rate_burst: Count = Field(default=d.DEFAULT_RATE_BURST, description="messages in a burst")

    @field_validator("bot_token")
    @classmethod
    def _bot_token(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        _needed(value, info, 'a bot token ("xoxb-...")')
        if value is not None and not value.get_secret_value().startswith("xoxb-"):
            raise ValueError('a bot token starting with "xoxb-"')
        return value

    @field_validator("app_token")
    @classmethod
    def _app_token(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is None and info.data.get("signing_secret") is None:
            _needed(value, info, "signing_secret (Events API) or app_token (Socket Mode)")
        if value is not None and not value.get_secret_value().startswith("xapp-"):
            raise ValueError('an app-level token starting with "xapp-"')
        return value


class DiscordBridge(Section):
    """[bridges.discord]: a bot on the Gateway; public_key for slash-command webhooks."""

    enabled: bool = Field(default=False, description="start the Discord bridge")
    bot_token: SecretStr | None = Field(
        default=None, validate_default=True, description="the bot's token"
    )
    application_id: str | None = Field(default=None, description="for slash commands")
    public_key: str | None = Field(default=None, description="verifies interaction webhooks")
    rate_limit: float = _rate(d.DEFAULT_DISCORD_RATE_LIMIT)
    rate_burst: Count = Field(default=d.DEFAULT_RATE_BURST, description="messages in a burst")

    @field_validator("bot_token")
    @classmethod
    def _bot_token(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        _needed(value, info, "a bot token")
        return value


class TeamsBridge(Section):
    """[bridges.teams]: a Bot Framework app registration."""

    enabled: bool = Field(default=False, description="start the Microsoft Teams bridge")
    app_id: str | None = Field(
        default=None, validate_default=True, description="the bot's Microsoft App ID"
    )
    app_password: SecretStr | None = Field(
        default=None, validate_default=True, description="the bot's client secret"
    )
    tenant_id: str | None = Field(default=None, description="single-tenant bots: the tenant")
    rate_limit: float = _rate(d.DEFAULT_TEAMS_RATE_LIMIT)
    rate_burst: Count = Field(default=d.DEFAULT_RATE_BURST, description="messages in a burst")

    @field_validator("app_id")
    @classmethod
    def _app_id(cls, value: str | None, info: ValidationInfo) -> str | None:
        _needed(value, info, "an app id")
        return value

    @field_validator("app_password")
    @classmethod
    def _app_password(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        _needed(value, info, "an app password")
        return value


class BridgesConfig(Section):
    """[bridges]: one sub-table per platform."""

    slack: SlackBridge = Field(default_factory=SlackBridge)
    discord: DiscordBridge = Field(default_factory=DiscordBridge)
    teams: TeamsBridge = Field(default_factory=TeamsBridge)
