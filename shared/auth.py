"""Identity: JWT verification, the Principal, and FastAPI dependencies that require a role.

Two kinds of token are accepted:
- user tokens (backer, creator, operator): HS256 with a development secret, or RS256 keys from a JWKS URL
  in production; the gateway verifies them and forwards them unchanged, and every service verifies again;
- service tokens (role ``service``): HS256 with a secret only services know, for internal routes.

A bare header such as ``X-User-Id`` is never trusted: identity is always a verified signature.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import anyio
import jwt
from fastapi import Request

from shared.errors import Forbidden, Unauthorized

USER_AUDIENCE = "crowdfund"
SERVICE_ISSUER = "crowdfund-internal"
SERVICE_AUDIENCE = "crowdfund-internal"
LEEWAY_SECONDS = 30
CACHE_SIZE = 10_000


class Role(StrEnum):
    BACKER = "backer"
    CREATOR = "creator"
    OPERATOR = "operator"
    SERVICE = "service"


USER_ROLES = frozenset({Role.BACKER, Role.CREATOR, Role.OPERATOR})


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    roles: frozenset[Role]
    is_service: bool = False

    def has(self, *roles: Role) -> bool:
        return any(role in self.roles for role in roles)

    @property
    def is_operator(self) -> bool:
        return Role.OPERATOR in self.roles


@dataclass(frozen=True)
class AuthConfig:
    """What a verifier needs. Built from each component's settings."""

    issuer: str
    audience: str = USER_AUDIENCE
    hs256_secret: str | None = None
    jwks_url: str | None = None
    service_secret: str | None = None


class TokenVerifier:
    def __init__(self, config: AuthConfig) -> None:
        if not config.hs256_secret and not config.jwks_url:
            raise ValueError("a JWT secret (HS256) or a JWKS URL (RS256) is required")
        self.config = config
        self._cache: dict[str, tuple[Principal, float]] = {}
        # PyJWKClient caches the key set and refreshes it on an unknown `kid`; its fetch is blocking, so it
        # runs in a worker thread (only on a cache miss).
        self._jwks = (
            jwt.PyJWKClient(config.jwks_url, cache_keys=True, lifespan=300, timeout=5) if config.jwks_url else None
        )

    async def verify(self, token: str) -> Principal:
        """Verify a bearer token. A verified token is remembered until it expires (bounded cache): callers send
        the same token on every request, and verification is the costliest step of a proxied request."""
        cached = self._cache.get(token)
        if cached is not None and cached[1] > time.time():
            return cached[0]
        principal, expires_at = await self._verify_uncached(token)
        if len(self._cache) >= CACHE_SIZE:
            self._cache.pop(next(iter(self._cache)))  # evict the oldest entry
        self._cache[token] = (principal, expires_at)
        return principal

    async def _verify_uncached(self, token: str) -> tuple[Principal, float]:
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise Unauthorized("The bearer token is malformed.", code="invalid_token") from exc
        if unverified.get("iss") == SERVICE_ISSUER:
            principal, claims = self._verify_service(token)
        else:
            principal, claims = await self._verify_user(token)
        # Remembered a little less long than the token lives, so an expired token is never accepted from cache.
        return principal, float(claims["exp"]) - LEEWAY_SECONDS

    def _verify_service(self, token: str) -> tuple[Principal, dict[str, Any]]:
        if not self.config.service_secret:
            raise Unauthorized("Service tokens are not accepted here.", code="invalid_token")
        claims = self._decode(token, self.config.service_secret, ["HS256"], SERVICE_ISSUER, SERVICE_AUDIENCE)
        return Principal(subject=str(claims["sub"]), roles=frozenset({Role.SERVICE}), is_service=True), claims

    async def _verify_user(self, token: str) -> tuple[Principal, dict[str, Any]]:
        if self._jwks is not None:
            try:
                signing_key = await anyio.to_thread.run_sync(self._jwks.get_signing_key_from_jwt, token)
            except jwt.PyJWTError as exc:
                raise Unauthorized("The bearer token's signing key is unknown.", code="invalid_token") from exc
            claims = self._decode(token, signing_key.key, ["RS256"], self.config.issuer, self.config.audience)
        else:
            assert self.config.hs256_secret
            claims = self._decode(token, self.config.hs256_secret, ["HS256"], self.config.issuer, self.config.audience)
        raw_roles = claims.get("roles", [])
        if not isinstance(raw_roles, list):
            raise Unauthorized("The token's roles claim must be a list.", code="invalid_token")
        roles = frozenset(Role(r) for r in raw_roles if r in USER_ROLES)
        if not roles:
            raise Unauthorized("The token grants no known role.", code="invalid_token")
        return Principal(subject=str(claims["sub"]), roles=roles), claims

    @staticmethod
    def _decode(token: str, key: Any, algorithms: list[str], issuer: str, audience: str) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                key,
                algorithms=algorithms,
                issuer=issuer,
                audience=audience,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("The bearer token has expired.", code="token_expired") from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized("The bearer token is invalid.", code="invalid_token") from exc


def issue_user_token(
    secret: str,
    subject: str,
    roles: Iterable[str],
    *,
    issuer: str,
    audience: str = USER_AUDIENCE,
    ttl_seconds: int = 24 * 3600,
) -> str:
    """Development tokens (``make token``) and tests. Production user tokens come from the identity provider."""
    now = int(time.time())
    claims = {
        "sub": subject,
        "roles": [Role(r).value for r in roles],
        "iss": issuer,
        "aud": audience,
        "iat": now,
        "exp": now + ttl_seconds,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


class ServiceTokenSource:
    """Mints this service's own short-lived token for calls to other services, re-minting before expiry."""

    def __init__(self, secret: str, service_name: str, ttl_seconds: int = 300) -> None:
        self._secret = secret
        self._name = service_name
        self._ttl = ttl_seconds
        self._token = ""
        self._expires_at = 0.0

    def token(self) -> str:
        now = time.time()
        if now > self._expires_at - 60:
            iat = int(now)
            claims = {
                "sub": self._name,
                "roles": [Role.SERVICE.value],
                "iss": SERVICE_ISSUER,
                "aud": SERVICE_AUDIENCE,
                "iat": iat,
                "exp": iat + self._ttl,
            }
            self._token = jwt.encode(claims, self._secret, algorithm="HS256")
            self._expires_at = iat + self._ttl
        return self._token


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("Use 'Authorization: Bearer <token>'.", code="invalid_token")
    return token.strip()


async def optional_principal(request: Request) -> Principal | None:
    """The caller, if a token was sent (public routes); a bad token is still a 401."""
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    token = bearer_token(request)
    if token is None:
        return None
    verifier: TokenVerifier = request.app.state.token_verifier
    principal = await verifier.verify(token)
    request.state.principal = principal
    return principal


async def current_principal(request: Request) -> Principal:
    principal = await optional_principal(request)
    if principal is None:
        raise Unauthorized("A bearer token is required.", code="missing_token")
    return principal


def require_roles(*roles: Role) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency that admits callers holding any of ``roles``."""

    async def dependency(request: Request) -> Principal:
        principal = await current_principal(request)
        if not principal.has(*roles):
            raise Forbidden(f"This action requires one of the roles: {', '.join(roles)}.")
        return principal

    dependency.__name__ = f"require_{'_or_'.join(roles)}"
    return dependency


require_service = require_roles(Role.SERVICE)
