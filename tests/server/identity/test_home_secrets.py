"""A fresh QC_HOME keeps its secrets to its user: the folder, the token key, and the
embedded Valkey (password required, its files unreachable)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import redis

from server.kit.config import Settings
from server.kit.embedded import private_file
from server.kit.redis import EmbeddedValkey


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_secret_key_file_is_created_private(qc_home: Path) -> None:
    key = Settings(home=qc_home).secret_key_value()
    assert len(key) >= 48 and Settings(home=qc_home).secret_key_value() == key
    assert _mode(qc_home / "secret_key") == 0o600
    assert _mode(qc_home) == (0o711 if os.geteuid() == 0 else 0o700)


def test_a_private_file_is_never_readable_by_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = os.umask(0o000)  # the widest umask: the mode must come from os.open itself
    try:
        seen: list[int] = []
        real_open = os.open

        def spying_open(path: str | os.PathLike[str], flags: int, mode: int = 0o777) -> int:
            fd = real_open(path, flags, mode)
            seen.append(stat.S_IMODE(os.fstat(fd).st_mode))
            return fd

        monkeypatch.setattr(os, "open", spying_open)
        assert private_file(tmp_path / "key", lambda: "s3cret") == "s3cret"
    finally:
        os.umask(old)
    assert seen == [0o600] and _mode(tmp_path / "key") == 0o600


def test_embedded_valkey_requires_its_password(qc_home: Path) -> None:
    valkey = EmbeddedValkey(qc_home.resolve())
    url = valkey.acquire()
    try:
        assert url.startswith("redis://:") and "@127.0.0.1:" in url
        client = redis.Redis.from_url(url)
        assert client.ping()
        client.close()
        anonymous = redis.Redis.from_url("redis://" + url.rsplit("@", 1)[1])
        with pytest.raises(redis.AuthenticationError):
            anonymous.ping()
        anonymous.close()
        folder = qc_home / "valkey"
        assert _mode(folder) == 0o700
        assert _mode(folder / "password") == _mode(folder / "valkey.conf") == 0o600
        # a second process on the same home reuses the server, password and all
        assert EmbeddedValkey(qc_home.resolve())._running_url() == url
    finally:
        valkey.release()
