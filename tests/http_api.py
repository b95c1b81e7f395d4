"""The HTTP app under FastAPI's TestClient, with API keys made through worker.http.apikeys."""

from __future__ import annotations

from fastapi.testclient import TestClient

from models.db import get_sessionmaker
from worker.http import apikeys
from worker.http.app import create_app
from worker.settings import Settings

MEETING = "0f8fad5b-d9cb-469f-a165-70867728950e"
AT = "2031-01-01T10:00:00Z"


class Api:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = TestClient(create_app(settings), raise_server_exceptions=True)
        self._made = 0

    def key(self, *scopes: str, expires: str | None = None) -> str:
        self._made += 1
        with get_sessionmaker(self.settings.database_url).begin() as session:
            _, key = apikeys.create(
                session, name=f"key{self._made}", scopes=scopes, expires=expires
            )
        return key

    def auth(self, *scopes: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key(*scopes)}"}

    def book(self, headers: dict[str, str], **fields: object) -> dict:
        body = {"meeting_id": MEETING, "at": AT, **fields}
        answer = self.client.post("/v1/bookings", json=body, headers=headers)
        assert answer.status_code == 201, answer.text
        return answer.json()
