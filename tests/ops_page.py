"""The ops page (/ops) under FastAPI's TestClient: signing in, reading forms' CSRF tokens."""

from __future__ import annotations

import re
from html import unescape

from fastapi.testclient import TestClient

from models.db import get_sessionmaker
from tests.http_api import Api
from worker.http import apikeys
from worker.settings import Settings

_CSRF = re.compile(r'name="csrf" value="([^"]*)"')
_ALERT = re.compile(r'role="(?:alert|status)"[^>]*>([^<]*)<')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no CSRF field on the page"
    return found[1]


def alerts(html: str) -> list[str]:
    """What the page says in its alert and status lines (refusals, confirmations)."""
    return [" ".join(unescape(m).split()) for m in _ALERT.findall(html)]


class OpsPage(Api):
    """A browser-like client: cookies kept, redirects not followed unless asked."""

    def __init__(
        self, settings: Settings, base_url: str = "http://testserver", prefix: str = "key"
    ) -> None:
        super().__init__(settings)
        self.prefix = prefix
        self.client = TestClient(self.client.app, base_url=base_url, follow_redirects=False)
        self.csrf = ""

    def key(self, *scopes: str, expires: str | None = None) -> str:
        self._made += 1
        with get_sessionmaker(self.settings.database_url).begin() as session:
            _, key = apikeys.create(
                session, name=f"{self.prefix}{self._made}", scopes=scopes, expires=expires
            )
        return key

    def sign_in(self, key: str, wanted: str = "/ops"):
        form = self.client.get("/ops/sign-in", params={"next": wanted})
        assert form.status_code == 200, form.text
        answer = self.client.post(
            "/ops/sign-in", data={"api_key": key, "csrf": csrf_of(form.text), "next": wanted}
        )
        if answer.status_code == 303:
            self.csrf = csrf_of(self.client.get("/ops").text)
        return answer

    def signed_in(self, *scopes: str) -> str:
        key = self.key(*(scopes or ("ops",)))
        answer = self.sign_in(key)
        assert answer.status_code == 303, answer.text
        return key

    def post(self, path: str, **data: str):
        return self.client.post(path, data={"csrf": self.csrf, **data})
