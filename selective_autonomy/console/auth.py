"""Who is asking: bearer tokens, signed session cookies and CSRF tokens. Standard library only.

- API clients send ``Authorization: Bearer <token>``; the configured token says which operator.
- People log in with their operator id and token; the console sets a signed, HttpOnly session
  cookie (``payload.signature``, HMAC-SHA256, with an expiry) and derives a CSRF token from the
  session id. Every unsafe request made with the cookie must carry that token (header
  ``X-CSRF-Token`` or form field ``csrf_token``); bearer requests need none, since a browser never
  adds that header by itself.
- The login form itself carries a token bound to a pre-login cookie (login CSRF).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import SecretStr

SESSION_COOKIE = "selauto_console"
LOGIN_COOKIE = "selauto_console_login"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True)
class Identity:
    """An authenticated operator and how they proved it."""

    operator_id: str
    via: Literal["token", "session"]
    session_id: str | None = None
    csrf_token: str | None = None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Authenticator:
    """Checks tokens, issues and reads session cookies, derives CSRF tokens.

    :param operators: operator id -> token.
    :param secret: signing key; default a random one (sessions end when the process does).
    :param ttl_s: session lifetime; default 12 h.
    """

    def __init__(
        self,
        operators: Mapping[str, SecretStr],
        secret: bytes | None = None,
        ttl_s: int = 12 * 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._tokens = {op: token.get_secret_value().encode() for op, token in operators.items()}
        self._secret = secret or secrets.token_bytes(32)
        self.ttl_s = ttl_s
        self.clock = clock
        self._revoked: dict[str, float] = {}
        self._lock = threading.Lock()

    @property
    def has_operators(self) -> bool:
        return bool(self._tokens)

    def _mac(self, purpose: str, message: bytes) -> bytes:
        return hmac.new(self._secret, purpose.encode() + b"\x1f" + message, hashlib.sha256).digest()

    # -- tokens ------------------------------------------------------------------------------------

    def operator_for_token(self, token: str) -> str | None:
        """The operator whose token this is; every configured token is compared, in constant time."""
        given = token.encode()
        found: str | None = None
        for operator_id, expected in self._tokens.items():
            if hmac.compare_digest(given, expected):
                found = operator_id
        return found

    def check_login(self, operator_id: str, token: str) -> bool:
        expected = self._tokens.get(operator_id)
        # Compare against something even for an unknown id, so timing does not tell ids apart.
        ok = hmac.compare_digest(token.encode(), expected if expected is not None else self._secret)
        return ok and expected is not None

    def from_bearer(self, authorization: str | None) -> Identity | None:
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        operator_id = self.operator_for_token(token.strip())
        return Identity(operator_id=operator_id, via="token") if operator_id is not None else None

    # -- sessions ----------------------------------------------------------------------------------

    def issue_session(self, operator_id: str) -> str:
        payload = {"o": operator_id, "s": secrets.token_urlsafe(16), "e": int(self.clock()) + self.ttl_s}
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        return f"{body}.{_b64(self._mac('session', body.encode()))}"

    def from_session(self, cookie: str | None) -> Identity | None:
        if not cookie or cookie.count(".") != 1:
            return None
        body, signature = cookie.split(".")
        try:
            # The signature's text against the canonical text of the expected one, not decoded bytes:
            # base64 decoding ignores the unused low bits of the last character, so four spellings of
            # one signature would pass (a test that tampered the last two characters with "AA" saw
            # its forgery accepted once in about a thousand runs).
            valid = hmac.compare_digest(signature.encode(), _b64(self._mac("session", body.encode())).encode())
            payload = json.loads(_unb64(body)) if valid else None
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(payload, dict):
            return None
        operator_id, session_id, expires = payload.get("o"), payload.get("s"), payload.get("e")
        if not isinstance(operator_id, str) or not isinstance(session_id, str) or not isinstance(expires, int):
            return None
        if expires < self.clock() or operator_id not in self._tokens:
            return None
        with self._lock:
            if session_id in self._revoked:
                return None
        return Identity(operator_id, "session", session_id, self.csrf_token(session_id))

    def revoke(self, identity: Identity) -> None:
        if identity.session_id is None:
            return
        now = self.clock()
        with self._lock:
            self._revoked[identity.session_id] = now + self.ttl_s
            for session_id, until in list(self._revoked.items()):
                if until < now:
                    del self._revoked[session_id]

    # -- CSRF --------------------------------------------------------------------------------------

    def csrf_token(self, session_id: str) -> str:
        return _b64(self._mac("csrf", session_id.encode()))

    def check_csrf(self, identity: Identity, token: str | None) -> bool:
        """Bearer requests pass; cookie requests need the token bound to their session."""
        if identity.via == "token":
            return True
        if not token or identity.csrf_token is None:
            return False
        return hmac.compare_digest(token.encode(), identity.csrf_token.encode())

    def new_login_nonce(self) -> str:
        return secrets.token_urlsafe(16)

    def login_csrf(self, nonce: str) -> str:
        return _b64(self._mac("login", nonce.encode()))

    def check_login_csrf(self, nonce: str | None, token: str | None) -> bool:
        if not nonce or not token:
            return False
        return hmac.compare_digest(token.encode(), self.login_csrf(nonce).encode())
