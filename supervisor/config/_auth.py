"""[auth]: who may connect, and the settings of each way to log in.

One ``provider`` is active; each provider has its own sub-table so that its
settings are validated as a closed shape (a JWT key under ``[auth.header]`` is an
unknown-key error, not a silent no-op).  The checks here close the holes
Chainlit is known for: header auth must name the proxies it trusts, JWT may not
accept ``none`` nor mix HMAC with public-key algorithms, and the secret that
signs Triolet's own tokens must be long enough.
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator

from . import _defaults as d
from ._types import Count, Duration, Section, StrTuple, Timeout

__all__ = [
    "AuthConfig",
    "AuthProvider",
    "HeaderAuth",
    "JwtAuth",
    "OAuthClient",
    "OAuthConfig",
    "PasswordAuth",
]

AuthProvider = Literal["anonymous", "password", "jwt", "header", "oauth"]

_HMAC = frozenset({"HS256", "HS384", "HS512"})
_PUBLIC_KEY = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


class PasswordAuth(Section):
    """[auth.password]: users with passwords stored (hashed) in Triolet's storage."""

    min_length: int = Field(
        default=d.DEFAULT_MIN_PASSWORD_LENGTH, ge=8, description="shortest password accepted"
    )
    allow_signup: bool = Field(default=False, description="let visitors create an account")
    max_attempts: Count = Field(
        default=d.DEFAULT_MAX_LOGIN_ATTEMPTS, description="failed logins before a lockout"
    )
    lockout_seconds: Duration = Field(
        default=d.DEFAULT_LOCKOUT_SECONDS, description="how long a lockout lasts"
    )


class JwtAuth(Section):
    """[auth.jwt]: accept tokens issued by another service."""

    algorithms: StrTuple = Field(
        default=d.DEFAULT_JWT_ALGORITHMS, description="accepted signing algorithms"
    )
    key: SecretStr | None = Field(
        default=None, description="HMAC secret or PEM public key", examples=["-----BEGIN ..."]
    )
    jwks_url: str | None = Field(
        default=None,
        description="https URL of the issuer's key set (instead of key)",
        examples=["https://issuer.example.com/.well-known/jwks.json"],
    )
    issuer: str | None = Field(default=None, description='required "iss" claim')
    audience: str | None = Field(default=None, description='required "aud" claim')
    leeway: Duration = Field(default=d.DEFAULT_JWT_LEEWAY, description="clock skew allowed, s")
    roles_claim: str = Field(default=d.DEFAULT_ROLES_CLAIM, description="claim holding roles")

    @field_validator("algorithms")
    @classmethod
    def _algorithms(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [alg for alg in value if alg not in _HMAC | _PUBLIC_KEY]
        if unknown or not value:
            raise ValueError(f"a non-empty list from {', '.join(sorted(_HMAC | _PUBLIC_KEY))}")
        if set(value) & _HMAC and set(value) & _PUBLIC_KEY:
            # Algorithm confusion: an RSA public key used as an HMAC secret forges tokens.
            raise ValueError("either HMAC (HS*) or public-key algorithms, not both")
        return value

    @field_validator("jwks_url")
    @classmethod
    def _jwks_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("https://"):
            raise ValueError("an https:// URL")
        return value


class HeaderAuth(Section):
    """[auth.header]: a trusted reverse proxy has authenticated the user already."""

    user_header: str = Field(default=d.DEFAULT_USER_HEADER, description="header with the user id")
    roles_header: str | None = Field(
        default=d.DEFAULT_ROLES_HEADER, description="header with comma-separated roles"
    )
    trusted_proxies: StrTuple = Field(
        default=(),
        description="addresses or CIDR ranges of the proxies; headers from others are ignored",
        examples=[["10.0.0.0/8"]],
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(
                    f'IP addresses or CIDR ranges like "10.0.0.0/8", not {network!r}'
                ) from None
        return value


class OAuthClient(Section):
    """[auth.oauth.github]: one OAuth/OIDC client registration."""

    client_id: str = Field(min_length=1, description="the client id from the provider")
    client_secret: SecretStr = Field(description="the client secret from the provider")
    scopes: StrTuple = Field(default=(), description="extra scopes to request")
    tenant: str | None = Field(default=None, description="Microsoft tenant id (Entra ID)")
    discovery_url: str | None = Field(
        default=None, description="OIDC discovery URL (generic provider)"
    )


class OAuthConfig(Section):
    """[auth.oauth]: the OAuth providers offered on the login page."""

    base_url: str | None = Field(
        default=None,
        description="public URL of this server, for redirects behind a proxy",
        examples=["https://chat.example.com"],
    )
    github: OAuthClient | None = None
    google: OAuthClient | None = None
    microsoft: OAuthClient | None = None
    generic: OAuthClient | None = None

    @field_validator("generic")
    @classmethod
    def _discovery(cls, value: OAuthClient | None) -> OAuthClient | None:
        if value is not None and not (value.discovery_url or "").startswith("https://"):
            raise ValueError("a table with an https:// discovery_url for the generic provider")
        return value

    @property
    def clients(self) -> dict[str, OAuthClient]:
        """The configured providers by name."""
        names = ("github", "google", "microsoft", "generic")
        return {name: client for name in names if (client := getattr(self, name)) is not None}


class AuthConfig(Section):
    """[auth]: the active provider, Triolet's own tokens, and each provider's settings."""

    provider: AuthProvider = Field(
        default=d.DEFAULT_AUTH_PROVIDER,
        description='"anonymous", "password", "jwt", "header" or "oauth"',
    )
    secret: SecretStr | None = Field(
        default=None,
        validate_default=True,
        description=f"signs Triolet's tokens (>= {d.MIN_AUTH_SECRET_LENGTH} chars); "
        "best set as TRIOLET__AUTH__SECRET",
    )
    access_token_ttl: Timeout = Field(
        default=d.DEFAULT_ACCESS_TOKEN_TTL, description="seconds an access token lives"
    )
    refresh_token_ttl: Timeout = Field(
        default=d.DEFAULT_REFRESH_TOKEN_TTL, description="seconds a refresh token lives"
    )
    password: PasswordAuth = Field(default_factory=PasswordAuth)
    jwt: JwtAuth = Field(default_factory=JwtAuth, validate_default=True)
    header: HeaderAuth = Field(default_factory=HeaderAuth, validate_default=True)
    oauth: OAuthConfig = Field(default_factory=OAuthConfig, validate_default=True)

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        provider = info.data.get("provider")
        if value is None and provider in ("password", "oauth"):
            raise ValueError(f'a secret when auth.provider = "{provider}"')
        if value is not None and len(value.get_secret_value()) < d.MIN_AUTH_SECRET_LENGTH:
            raise ValueError(f"a secret of at least {d.MIN_AUTH_SECRET_LENGTH} characters")
        return value

    @field_validator("jwt")
    @classmethod
    def _jwt(cls, value: JwtAuth, info: ValidationInfo) -> JwtAuth:
        if info.data.get("provider") == "jwt" and value.key is None and value.jwks_url is None:
            raise ValueError('key or jwks_url to be set when auth.provider = "jwt"')
        return value

    @field_validator("header")
    @classmethod
    def _header(cls, value: HeaderAuth, info: ValidationInfo) -> HeaderAuth:
        if info.data.get("provider") == "header" and not value.trusted_proxies:
            raise ValueError('trusted_proxies to be set when auth.provider = "header"')
        return value

    @field_validator("oauth")
    @classmethod
    def _oauth(cls, value: OAuthConfig, info: ValidationInfo) -> OAuthConfig:
        if info.data.get("provider") == "oauth" and not value.clients:
            raise ValueError('at least one of github, google, microsoft, generic for "oauth"')
        return value
