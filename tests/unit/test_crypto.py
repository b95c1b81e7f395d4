from __future__ import annotations

import stat

import pytest

from worker.crypto import StreamKeyCipher, cipher_for, key_file_for, mask, new_key
from worker.errors import SecretKeyError
from worker.settings import Secret, Settings

KEY = Secret("live_1234567890abcdef-streamkey")


def test_round_trip_and_ciphertext_hides_the_key() -> None:
    cipher = StreamKeyCipher((Secret(new_key()),))
    token = cipher.encrypt(KEY)
    assert KEY.get() not in token
    assert cipher.decrypt(token) == KEY
    assert "streamkey" not in repr(cipher)


def test_rotation_decrypts_with_an_older_key() -> None:
    old, new = Secret(new_key()), Secret(new_key())
    token = StreamKeyCipher((old,)).encrypt(KEY)
    assert StreamKeyCipher((new, old)).decrypt(token) == KEY


def test_a_wrong_key_is_a_clear_error() -> None:
    token = StreamKeyCipher((Secret(new_key()),)).encrypt(KEY)
    with pytest.raises(SecretKeyError, match="no key in LIVESTREAMS_SECRET_KEY decrypts"):
        StreamKeyCipher((Secret(new_key()),)).decrypt(token)


def test_a_malformed_key_is_a_clear_error() -> None:
    with pytest.raises(SecretKeyError, match="LIVESTREAMS_SECRET_KEY"):
        StreamKeyCipher((Secret("short"),))


def test_embedded_default_creates_a_private_key_file(tmp_path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}")
    path = key_file_for(settings.database_url)
    assert path == tmp_path / "x.db.key"
    with pytest.raises(SecretKeyError):
        cipher_for(settings)  # reading never creates a key
    cipher = cipher_for(settings, create=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert cipher_for(settings).decrypt(cipher.encrypt(KEY)) == KEY  # the same key next time


def test_server_database_without_key_is_refused() -> None:
    with pytest.raises(SecretKeyError, match="required for a server database"):
        cipher_for(Settings(database_url="postgresql+psycopg://x@localhost/db"), create=True)


def test_mask_keeps_only_the_tail() -> None:
    assert mask(KEY) == "****mkey"
    assert mask(Secret("short")) == "****"
    assert mask(None) == "-"
