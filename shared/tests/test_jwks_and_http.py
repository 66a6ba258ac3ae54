"""RS256 tokens verified against a JWKS served over HTTP, and the internal client's retry rules."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Request, Response

from shared.auth import AuthConfig, ServiceTokenSource, TokenVerifier
from shared.errors import Unauthorized
from shared.http import ServiceClient, UpstreamUnavailable

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def jwks_url() -> Iterator[str]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "key-1", "use": "sig", "alg": "RS256"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/.well-known/jwks.json"
    server.shutdown()


def _rs256(key: rsa.RSAPrivateKey, kid: str = "key-1", **claims: object) -> str:
    now = int(time.time())
    base = {
        "sub": "alice",
        "roles": ["creator"],
        "iss": "https://idp.example",
        "aud": "crowdfund",
        "iat": now,
        "exp": now + 300,
    }
    return jwt.encode({**base, **claims}, key, algorithm="RS256", headers={"kid": kid})


async def test_rs256_tokens_are_verified_with_keys_from_the_jwks_url(jwks_url: str) -> None:
    verifier = TokenVerifier(AuthConfig(issuer="https://idp.example", jwks_url=jwks_url))
    principal = await verifier.verify(_rs256(KEY))
    assert principal.subject == "alice"
    for bad in (_rs256(OTHER_KEY), _rs256(KEY, kid="unknown"), _rs256(KEY, iss="https://evil.example")):
        with pytest.raises(Unauthorized):
            await verifier.verify(bad)


async def test_hs256_tokens_are_refused_when_the_verifier_expects_rs256(jwks_url: str) -> None:
    verifier = TokenVerifier(AuthConfig(issuer="https://idp.example", jwks_url=jwks_url))
    now = int(time.time())
    forged = jwt.encode(
        {
            "sub": "eve",
            "roles": ["operator"],
            "iss": "https://idp.example",
            "aud": "crowdfund",
            "iat": now,
            "exp": now + 60,
        },
        "guessable-secret-0123456789abcdef0123",
        algorithm="HS256",
        headers={"kid": "key-1"},
    )
    with pytest.raises(Unauthorized):
        await verifier.verify(forged)


def _flaky_app(failures: int) -> tuple[FastAPI, list[dict[str, str]]]:
    app = FastAPI()
    seen: list[dict[str, str]] = []

    @app.api_route("/thing", methods=["GET", "POST"])
    async def thing(request: Request) -> Response:
        seen.append(dict(request.headers))
        if len(seen) <= failures:
            return Response(status_code=503)
        return Response(b'{"ok":true}', media_type="application/json")

    return app, seen


def _client(app: FastAPI) -> ServiceClient:
    return ServiceClient(
        "thing", "http://thing", ServiceTokenSource("s" * 40, "pledges"), transport=httpx.ASGITransport(app=app)
    )


async def test_safe_requests_are_retried_and_carry_the_service_credential() -> None:
    app, seen = _flaky_app(failures=2)
    client = _client(app)
    response = await client.request("GET", "/thing")
    assert response.status_code == 200
    assert len(seen) == 3
    assert all(h["authorization"].startswith("Bearer ") for h in seen)
    await client.aclose()


async def test_a_post_without_idempotency_key_is_never_repeated() -> None:
    app, seen = _flaky_app(failures=2)
    client = _client(app)
    response = await client.request("POST", "/thing", json={})
    assert response.status_code == 503
    assert len(seen) == 1
    await client.aclose()


async def test_a_post_with_an_idempotency_key_is_retried_with_the_same_key() -> None:
    app, seen = _flaky_app(failures=1)
    client = _client(app)
    response = await client.request("POST", "/thing", json={}, idempotency_key="reserve:42")
    assert response.status_code == 200
    assert [h["idempotency-key"] for h in seen] == ["reserve:42", "reserve:42"]
    await client.aclose()


async def test_an_unreachable_service_is_reported_after_bounded_retries() -> None:
    client = ServiceClient("nobody", "http://127.0.0.1:9", ServiceTokenSource("s" * 40, "pledges"), timeout_seconds=0.5)
    started = time.perf_counter()
    with pytest.raises(UpstreamUnavailable):
        await client.request("GET", "/thing")
    assert time.perf_counter() - started < 5
    await client.aclose()
