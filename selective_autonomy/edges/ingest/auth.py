"""Who is calling the webhook: a bearer token, or an HMAC-SHA256 signature of the raw body.

Standard library only. Every comparison is constant-time (:func:`hmac.compare_digest`) and runs
against every configured credential, so neither timing nor the order of the configuration tells
a caller which credential came close.

- ``Authorization: Bearer <token>``: the token names the caller (``ingest.tokens``).
- ``X-Selauto-Signature: sha256=<hex>``: hex HMAC-SHA256 of the exact request body bytes under one
  of ``ingest.hmac_secrets`` (the header name is ``ingest.signature_header``). Sign the bytes you
  send: re-serialising the JSON on either side breaks the signature.

No credential at all answers 401; a credential that does not verify answers 403. In ``either``
mode a caller may send both, and then both must verify.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import SecretStr

from selective_autonomy.config import IngestAuthMode, IngestSettings
from selective_autonomy.edges.errors import AuthFailure
from selective_autonomy.errors import ConfigError

SIGNATURE_SCHEME = "sha256="
BEARER_SCHEME = "bearer"


def signature(secret: str | bytes, body: bytes) -> str:
    """The header value a platform sends: ``sha256=`` and the hex HMAC-SHA256 of ``body``."""
    key = secret.encode() if isinstance(secret, str) else secret
    return SIGNATURE_SCHEME + hmac.new(key, body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Caller:
    """An authenticated platform: the configured name of the credential it proved, and how."""

    name: str
    via: Literal["bearer", "hmac"]


def _match(candidate: bytes, known: Mapping[str, bytes]) -> str | None:
    """The name whose secret equals ``candidate``; compares with every entry, constant time each."""
    found: str | None = None
    for name, secret in known.items():
        if hmac.compare_digest(candidate, secret) and found is None:
            found = name
    return found


class WebhookAuthenticator:
    """Checks webhook credentials.

    :param mode: which credentials are accepted (bearer, hmac, either).
    :param tokens: caller name -> bearer token.
    :param hmac_secrets: caller name -> signing secret.
    :param signature_header: the header carrying the signature; default ``X-Selauto-Signature``.
    :raises ConfigError: when ``mode`` accepts no configured credential (the webhook would be open).
    """

    def __init__(
        self,
        mode: IngestAuthMode,
        tokens: Mapping[str, SecretStr],
        hmac_secrets: Mapping[str, SecretStr],
        signature_header: str = "X-Selauto-Signature",
    ) -> None:
        self.mode = mode
        self.signature_header_name = signature_header
        self.signature_header = signature_header.lower()
        self._tokens = {name: secret.get_secret_value().encode() for name, secret in tokens.items()}
        self._secrets = {name: secret.get_secret_value().encode() for name, secret in hmac_secrets.items()}
        bearer_ok = mode is not IngestAuthMode.hmac and bool(self._tokens)
        hmac_ok = mode is not IngestAuthMode.bearer and bool(self._secrets)
        if not (bearer_ok or hmac_ok):
            needed = {
                IngestAuthMode.bearer: "ingest.tokens",
                IngestAuthMode.hmac: "ingest.hmac_secrets",
                IngestAuthMode.either: "ingest.tokens or ingest.hmac_secrets",
            }[mode]
            raise ConfigError(f"the ingest webhook would accept anyone: configure {needed} (auth mode {mode.value})")

    @classmethod
    def from_settings(cls, settings: IngestSettings) -> WebhookAuthenticator:
        return cls(settings.auth, settings.tokens, settings.hmac_secrets, settings.signature_header)

    @property
    def accepts_bearer(self) -> bool:
        return self.mode is not IngestAuthMode.hmac and bool(self._tokens)

    @property
    def accepts_hmac(self) -> bool:
        return self.mode is not IngestAuthMode.bearer and bool(self._secrets)

    def _bearer(self, header: str) -> Caller:
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != BEARER_SCHEME or not token.strip():
            raise AuthFailure("the Authorization header is not 'Bearer <token>'", 403)
        name = _match(token.strip().encode(), self._tokens)
        if name is None:
            raise AuthFailure("unknown bearer token", 403)
        return Caller(name=name, via="bearer")

    def _signed(self, header: str, body: bytes) -> Caller:
        value = header.strip()
        if not value.lower().startswith(SIGNATURE_SCHEME):
            raise AuthFailure(f"the signature must read '{SIGNATURE_SCHEME}<hex>'", 403)
        presented = value[len(SIGNATURE_SCHEME) :].strip().lower().encode()
        found: str | None = None
        for name, secret in self._secrets.items():
            expected = hmac.new(secret, body, hashlib.sha256).hexdigest().encode()
            if hmac.compare_digest(presented, expected) and found is None:
                found = name
        if found is None:
            raise AuthFailure("the body's signature does not verify", 403)
        return Caller(name=found, via="hmac")

    def authenticate(self, headers: Mapping[str, str], body: bytes) -> Caller:
        """The caller behind ``headers`` (any case) and ``body``; raises :class:`AuthFailure` (401 or 403)."""
        lowered = {name.lower(): value for name, value in headers.items()}
        callers: list[Caller] = []
        authorization = lowered.get("authorization") if self.accepts_bearer else None
        signed = lowered.get(self.signature_header) if self.accepts_hmac else None
        if authorization is not None:
            callers.append(self._bearer(authorization))
        if signed is not None:
            callers.append(self._signed(signed, body))
        if not callers:
            wanted = []
            if self.accepts_bearer:
                wanted.append("Authorization: Bearer <token>")
            if self.accepts_hmac:
                wanted.append(f"{self.signature_header_name}: {SIGNATURE_SCHEME}<hex HMAC-SHA256 of the body>")
            raise AuthFailure("no credentials: send " + " or ".join(wanted), 401)
        return callers[-1]
