"""Webhook credentials: bearer tokens and HMAC-SHA256 body signatures, 401 versus 403."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from pydantic import SecretStr, ValidationError

from selective_autonomy.config import IngestAuthMode, IngestSettings
from selective_autonomy.edges.errors import AuthFailure
from selective_autonomy.edges.ingest.auth import Caller, WebhookAuthenticator, signature
from selective_autonomy.errors import ConfigError

TOKEN = "t" * 24
SECRET = "s3cret-signing-key-0123"
BODY = b'{"session_id": "s1"}'


def authenticator(mode: IngestAuthMode = IngestAuthMode.either) -> WebhookAuthenticator:
    return WebhookAuthenticator(
        mode,
        tokens={"crm": SecretStr(TOKEN), "backfill": SecretStr("b" * 20)},
        hmac_secrets={"crm-old": SecretStr("old-signing-key-0123"), "crm": SecretStr(SECRET)},
    )


def test_signature_is_hex_hmac_sha256_of_the_raw_body() -> None:
    expected = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    assert signature(SECRET, BODY) == f"sha256={expected}"


def test_a_valid_signature_names_its_caller_and_any_header_case_works() -> None:
    auth = authenticator()
    assert auth.authenticate({"X-Selauto-Signature": signature(SECRET, BODY)}, BODY) == Caller("crm", "hmac")
    rotated = signature("old-signing-key-0123", BODY)
    assert auth.authenticate({"x-selauto-signature": rotated.upper().replace("SHA256=", "sha256=")}, BODY).name == (
        "crm-old"
    )


@pytest.mark.parametrize(
    "header",
    [
        signature(SECRET, BODY + b" "),  # signed another body
        signature("not-the-secret-at-all", BODY),
        signature(SECRET, BODY).removeprefix("sha256="),  # no scheme
        "sha1=" + hmac.new(SECRET.encode(), BODY, hashlib.sha1).hexdigest(),
        "sha256=",
        "sha256=zz",
    ],
)
def test_a_wrong_signature_is_forbidden(header: str) -> None:
    with pytest.raises(AuthFailure) as caught:
        authenticator().authenticate({"X-Selauto-Signature": header}, BODY)
    assert caught.value.status_code == 403


def test_bearer_tokens() -> None:
    auth = authenticator()
    assert auth.authenticate({"Authorization": f"Bearer {TOKEN}"}, BODY) == Caller("crm", "bearer")
    assert auth.authenticate({"authorization": f"bearer {'b' * 20}"}, BODY).name == "backfill"
    for header in (f"Bearer {TOKEN}x", f"Basic {TOKEN}", "Bearer ", TOKEN):
        with pytest.raises(AuthFailure) as caught:
            auth.authenticate({"Authorization": header}, BODY)
        assert caught.value.status_code == 403, header


def test_no_credentials_is_unauthenticated() -> None:
    with pytest.raises(AuthFailure) as caught:
        authenticator().authenticate({"Content-Type": "application/json"}, BODY)
    assert caught.value.status_code == 401
    assert "Bearer" in caught.value.message and "X-Selauto-Signature" in caught.value.message.title()


def test_in_either_mode_every_presented_credential_must_verify() -> None:
    auth = authenticator()
    headers = {"Authorization": f"Bearer {TOKEN}", "X-Selauto-Signature": signature("wrong-secret-000000", BODY)}
    with pytest.raises(AuthFailure) as caught:
        auth.authenticate(headers, BODY)
    assert caught.value.status_code == 403


def test_a_mode_ignores_the_other_kind_of_credential() -> None:
    hmac_only = authenticator(IngestAuthMode.hmac)
    with pytest.raises(AuthFailure) as caught:
        hmac_only.authenticate({"Authorization": f"Bearer {TOKEN}"}, BODY)
    assert caught.value.status_code == 401
    bearer_only = authenticator(IngestAuthMode.bearer)
    with pytest.raises(AuthFailure) as caught:
        bearer_only.authenticate({"X-Selauto-Signature": signature(SECRET, BODY)}, BODY)
    assert caught.value.status_code == 401


def test_the_signature_header_is_configurable() -> None:
    auth = WebhookAuthenticator(IngestAuthMode.hmac, {}, {"crm": SecretStr(SECRET)}, signature_header="X-Hub-Sig")
    assert auth.authenticate({"x-hub-sig": signature(SECRET, BODY)}, BODY).via == "hmac"


def test_an_open_webhook_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match=r"ingest\.tokens"):
        WebhookAuthenticator.from_settings(IngestSettings(auth=IngestAuthMode.bearer))
    with pytest.raises(ConfigError, match=r"ingest\.hmac_secrets"):
        WebhookAuthenticator.from_settings(IngestSettings(auth=IngestAuthMode.hmac, tokens={"crm": SecretStr(TOKEN)}))
    with pytest.raises(ValidationError, match="shorter than 16"):
        IngestSettings(tokens={"crm": SecretStr("short")})
