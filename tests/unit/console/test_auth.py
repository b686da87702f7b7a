"""Tokens, signed session cookies and CSRF tokens."""

from __future__ import annotations

import base64

from pydantic import SecretStr

from selective_autonomy.console.auth import Authenticator


class Clock:
    now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def make(clock: Clock | None = None) -> Authenticator:
    operators = {"alice": SecretStr("alice-token-1"), "bob": SecretStr("bob-token-22")}
    return Authenticator(operators, secret=b"k" * 32, ttl_s=3600, clock=clock or Clock())


def test_bearer_tokens_map_to_operators() -> None:
    auth = make()
    assert auth.from_bearer("Bearer bob-token-22") is not None
    identity = auth.from_bearer("bearer alice-token-1")
    assert identity is not None and identity.operator_id == "alice" and identity.via == "token"
    for header in (None, "", "Bearer", "Bearer wrong-token", "Basic alice-token-1", "alice-token-1"):
        assert auth.from_bearer(header) is None


def test_login_checks_the_pair() -> None:
    auth = make()
    assert auth.check_login("alice", "alice-token-1")
    assert not auth.check_login("alice", "bob-token-22")
    assert not auth.check_login("mallory", "alice-token-1")


def test_session_cookie_round_trip_tamper_expiry_and_revocation() -> None:
    clock = Clock()
    auth = make(clock)
    cookie = auth.issue_session("alice")
    identity = auth.from_session(cookie)
    assert identity is not None and identity.operator_id == "alice" and identity.via == "session"
    body, signature = cookie.split(".")
    forged = make(clock).issue_session("bob").split(".")[0] + "." + signature
    assert auth.from_session(forged) is None
    tampered = ("B" if signature[0] == "A" else "A") + signature[1:]
    assert auth.from_session(body + "." + tampered) is None
    assert auth.from_session("garbage") is None
    # Another key cannot read it.
    assert Authenticator({"alice": SecretStr("alice-token-1")}, secret=b"x" * 32).from_session(cookie) is None
    auth.revoke(identity)
    assert auth.from_session(cookie) is None
    fresh = auth.issue_session("alice")
    clock.now += 3601
    assert auth.from_session(fresh) is None


def test_only_the_canonical_spelling_of_a_signature_passes() -> None:
    auth = make(Clock())
    body, signature = auth.issue_session("alice").split(".")
    # 32 bytes are 43 base64 characters: the last one carries 4 bits of the MAC and 2 unused ones,
    # so changing only those gives another spelling that decodes to the same bytes.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(signature[-1])
    respelled = signature[:-1] + alphabet[last ^ 1]
    assert base64.urlsafe_b64decode(respelled + "=") == base64.urlsafe_b64decode(signature + "=")
    assert auth.from_session(f"{body}.{signature}") is not None
    assert auth.from_session(f"{body}.{respelled}") is None


def test_removed_operator_loses_their_session() -> None:
    cookie = make().issue_session("bob")
    only_alice = Authenticator({"alice": SecretStr("alice-token-1")}, secret=b"k" * 32, clock=Clock())
    assert only_alice.from_session(cookie) is None


def test_csrf_is_bound_to_the_session() -> None:
    auth = make()
    mine = auth.from_session(auth.issue_session("alice"))
    other = auth.from_session(auth.issue_session("alice"))
    assert mine is not None and other is not None
    assert auth.check_csrf(mine, mine.csrf_token)
    assert not auth.check_csrf(mine, other.csrf_token)
    assert not auth.check_csrf(mine, None)
    bearer = auth.from_bearer("Bearer alice-token-1")
    assert bearer is not None and auth.check_csrf(bearer, None)
    nonce = auth.new_login_nonce()
    assert auth.check_login_csrf(nonce, auth.login_csrf(nonce))
    assert not auth.check_login_csrf(auth.new_login_nonce(), auth.login_csrf(nonce))
    assert not auth.check_login_csrf(None, auth.login_csrf(nonce))
