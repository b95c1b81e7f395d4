"""Stream keys at rest: Fernet encryption with key rotation, and masking for display.

Keys come from LIVESTREAMS_SECRET_KEY (comma-separated, newest first: the first encrypts, all
decrypt). With the embedded SQLite default and no key set, a key file is created beside the
database with mode 0600, so the demo works with nothing configured and still never stores a
stream key in the clear.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy.engine import make_url

from worker.errors import SecretKeyError
from worker.settings import Secret, Settings


class StreamKeyCipher:
    """Encrypts and decrypts stream keys; its repr shows nothing."""

    def __init__(self, keys: tuple[Secret, ...]) -> None:
        if not keys:
            raise SecretKeyError("no stream-key encryption key: set LIVESTREAMS_SECRET_KEY")
        try:
            self._fernet = MultiFernet([Fernet(k.get().encode("ascii")) for k in keys])
        except (ValueError, UnicodeEncodeError):
            raise SecretKeyError(
                "LIVESTREAMS_SECRET_KEY: each key must be 32 url-safe base64-encoded bytes "
                "(make one with `livestreams keygen`)"
            ) from None

    def encrypt(self, stream_key: Secret) -> str:
        return self._fernet.encrypt(stream_key.get().encode("utf-8")).decode("ascii")

    def decrypt(self, ciphertext: str) -> Secret:
        try:
            return Secret(self._fernet.decrypt(ciphertext.encode("ascii")).decode("utf-8"))
        except (InvalidToken, UnicodeError):
            raise SecretKeyError(
                "no key in LIVESTREAMS_SECRET_KEY decrypts this stream key "
                "(was the key rotated without keeping the old one?)"
            ) from None

    def __repr__(self) -> str:
        return "StreamKeyCipher(**********)"


def new_key() -> str:
    return Fernet.generate_key().decode("ascii")


def key_file_for(database_url: str) -> Path | None:
    """The embedded default's key file: beside a file-backed SQLite database, else None."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database).resolve().with_name(Path(url.database).name + ".key")


def cipher_for(settings: Settings, *, create: bool = False) -> StreamKeyCipher:
    """The cipher for these settings.

    With no LIVESTREAMS_SECRET_KEY and a SQLite file database, use (and with ``create``, make)
    the 0600 key file beside it. Anything else without a key is an error, never a silent
    plaintext column.
    """
    return StreamKeyCipher(key_material(settings, create=create))


def key_material(settings: Settings, *, create: bool = False) -> tuple[Secret, ...]:
    """LIVESTREAMS_SECRET_KEY's keys, newest first, or the key file's (see ``cipher_for``).

    The ops page derives its session-signing secret from them (worker.http.pages.signing), so
    one setting holds every server secret and rotating it rotates both.
    """
    if settings.secret_keys:
        return settings.secret_keys
    path = key_file_for(settings.database_url)
    if path is None:
        raise SecretKeyError(
            "LIVESTREAMS_SECRET_KEY is not set; it is required for a server database"
        )
    if not path.exists():
        if not create:
            raise SecretKeyError(f"LIVESTREAMS_SECRET_KEY is not set and {path} does not exist")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first: use theirs
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(new_key() + "\n")
    return tuple(Secret(k.strip()) for k in path.read_text().split(",") if k.strip())


def mask(stream_key: Secret | None) -> str:
    """A stream key for display: enough to tell two apart, not enough to use."""
    if stream_key is None:
        return "-"
    value = stream_key.get()
    return "****" + value[-4:] if len(value) > 12 else "****"
