"""The console's operators (the ``Authorization`` headers of the settings the app tests give it) and
signing one in through the login form."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

ALICE = {"Authorization": "Bearer alice-token-1"}
BOB = {"Authorization": "Bearer bob-token-22"}


def login(client: TestClient, operator_id: str = "alice", token: str = "alice-token-1") -> str:
    """Sign in through the form; returns the CSRF token of the new session."""
    page = client.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf is not None
    response = client.post(
        "/login",
        data={"operator_id": operator_id, "token": token, "csrf_token": csrf.group(1), "next": "/"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    inbox_page = client.get("/")
    assert inbox_page.status_code == 200
    session_csrf = re.search(r'"X-CSRF-Token": "([^"]+)"', inbox_page.text)
    assert session_csrf is not None
    return session_csrf.group(1)
