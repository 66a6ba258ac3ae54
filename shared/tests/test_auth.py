from __future__ import annotations

import time

import jwt
import pytest

from shared.auth import (
    SERVICE_AUDIENCE,
    SERVICE_ISSUER,
    AuthConfig,
    Role,
    ServiceTokenSource,
    TokenVerifier,
    issue_user_token,
)
from shared.errors import Unauthorized

SECRET = "test-secret-0123456789abcdef0123456789"
SERVICE_SECRET = "service-secret-0123456789abcdef012345"
CONFIG = AuthConfig(issuer="crowdfund-dev", hs256_secret=SECRET, service_secret=SERVICE_SECRET)


async def test_a_valid_user_token_gives_its_subject_and_roles() -> None:
    token = issue_user_token(SECRET, "alice", ["backer", "creator"], issuer="crowdfund-dev")
    principal = await TokenVerifier(CONFIG).verify(token)
    assert principal.subject == "alice"
    assert principal.roles == {Role.BACKER, Role.CREATOR}
    assert not principal.is_service


@pytest.mark.parametrize(
    ("claims", "code"),
    [
        ({"iss": "someone-else"}, "invalid_token"),
        ({"aud": "another-api"}, "invalid_token"),
        ({"exp": int(time.time()) - 3600}, "token_expired"),
        ({"roles": ["service"]}, "invalid_token"),  # a user token cannot grant the service role
        ({"roles": "operator"}, "invalid_token"),
        ({"roles": []}, "invalid_token"),
    ],
)
async def test_bad_user_tokens_are_refused(claims: dict[str, object], code: str) -> None:
    now = int(time.time())
    base = {
        "sub": "alice",
        "roles": ["operator"],
        "iss": "crowdfund-dev",
        "aud": "crowdfund",
        "iat": now,
        "exp": now + 60,
    }
    token = jwt.encode({**base, **claims}, SECRET, algorithm="HS256")
    with pytest.raises(Unauthorized) as caught:
        await TokenVerifier(CONFIG).verify(token)
    assert caught.value.instance_code == code


async def test_a_token_signed_with_another_key_or_alg_none_is_refused() -> None:
    now = int(time.time())
    claims = {
        "sub": "eve",
        "roles": ["operator"],
        "iss": "crowdfund-dev",
        "aud": "crowdfund",
        "iat": now,
        "exp": now + 60,
    }
    for token in (
        jwt.encode(claims, "another-secret-0123456789abcdef0123", algorithm="HS256"),
        jwt.encode(claims, "", algorithm="none"),
    ):
        with pytest.raises(Unauthorized):
            await TokenVerifier(CONFIG).verify(token)


async def test_service_tokens_need_the_service_secret() -> None:
    source = ServiceTokenSource(SERVICE_SECRET, "pledges")
    principal = await TokenVerifier(CONFIG).verify(source.token())
    assert principal.is_service
    assert principal.roles == {Role.SERVICE}
    assert principal.subject == "pledges"
    # Signed with the *user* secret (which developers hold), it is refused.
    forged = ServiceTokenSource(SECRET, "pledges").token()
    with pytest.raises(Unauthorized):
        await TokenVerifier(CONFIG).verify(forged)
    # A verifier without a service secret (the gateway) accepts no service token at all.
    gateway = TokenVerifier(AuthConfig(issuer="crowdfund-dev", hs256_secret=SECRET))
    with pytest.raises(Unauthorized):
        await gateway.verify(source.token())


def test_service_tokens_are_reused_until_close_to_expiry() -> None:
    source = ServiceTokenSource(SERVICE_SECRET, "refunds", ttl_seconds=300)
    assert source.token() == source.token()
    claims = jwt.decode(source.token(), SERVICE_SECRET, algorithms=["HS256"], audience=SERVICE_AUDIENCE)
    assert claims["iss"] == SERVICE_ISSUER
    assert claims["exp"] - claims["iat"] == 300


async def test_the_verification_cache_never_admits_a_tampered_token() -> None:
    verifier = TokenVerifier(CONFIG)
    token = issue_user_token(SECRET, "alice", ["backer"], issuer="crowdfund-dev")
    assert (await verifier.verify(token)).subject == "alice"
    header, _payload, signature = token.split(".")
    elevated = jwt.encode(
        {**jwt.decode(token, options={"verify_signature": False}), "roles": ["operator"]}, "x" * 40, algorithm="HS256"
    )
    with pytest.raises(Unauthorized):
        await verifier.verify(f"{header}.{elevated.split('.')[1]}.{signature}")
    assert (await verifier.verify(token)).roles == {Role.BACKER}


async def test_a_token_about_to_expire_is_not_served_from_the_cache() -> None:
    verifier = TokenVerifier(CONFIG)
    # Lives 10 s: shorter than the 30 s leeway, so it is verified every time and never cached.
    token = issue_user_token(SECRET, "alice", ["backer"], issuer="crowdfund-dev", ttl_seconds=10)
    await verifier.verify(token)
    assert token not in verifier._cache or verifier._cache[token][1] <= time.time()
