from __future__ import annotations

import json

import pytest
import structlog
from pydantic import ValidationError

from shared.logging import configure_logging
from shared.settings import DEV_JWT_SECRET, DEV_SERVICE_SECRET, ServiceSettings


def test_secrets_tokens_and_card_numbers_never_reach_the_log(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", json=True, component="test")
    structlog.get_logger("t").info(
        "payment.attempt",
        authorization="Bearer abc",
        card_number="4242424242424242",
        note="token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlc2ln and sk_test_123abc",
        params={"payment_method": "pm_card_visa", "card": {"number": "4000000000000002", "cvc": "123"}},
        amount=1500,
    )
    line = capsys.readouterr().out.strip().splitlines()[-1]
    record = json.loads(line)
    assert record["event"] == "payment.attempt"
    assert record["amount"] == 1500
    assert record["component"] == "test"
    for secret in ("Bearer abc", "4242424242424242", "eyJhbGciOiJIUzI1NiJ9", "sk_test_123abc", "4000000000000002"):
        assert secret not in line
    assert record["params"]["payment_method"] == "pm_card_visa"


def test_production_refuses_to_start_without_real_secrets() -> None:
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        ServiceSettings(environment="production")
    with pytest.raises(ValidationError, match="development secret"):
        ServiceSettings(environment="production", jwt_secret=DEV_JWT_SECRET, service_token_secret="x" * 40)
    with pytest.raises(ValidationError, match="development secret"):
        ServiceSettings(environment="production", jwt_secret="y" * 40, service_token_secret=DEV_SERVICE_SECRET)
    with pytest.raises(ValidationError, match="at least 32"):
        ServiceSettings(environment="production", jwt_secret="", service_token_secret="z" * 40)
    ok = ServiceSettings(environment="production", jwt_jwks_url="https://idp/jwks", service_token_secret="z" * 40)
    assert ok.jwt_secret is None


def test_development_gets_development_secrets_by_default() -> None:
    settings = ServiceSettings(environment="development")
    assert settings.jwt_secret is not None
    assert settings.jwt_secret.get_secret_value() == DEV_JWT_SECRET
    assert "dev-only" not in repr(settings)  # SecretStr keeps it out of reprs and tracebacks
