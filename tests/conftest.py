import os

import pytest


@pytest.fixture(scope="session")
def tts():
    from voxclone import Voxclone

    return Voxclone().load()


@pytest.fixture(scope="session")
def asr():
    from voxclone.transcribe import Transcriber

    return Transcriber()


@pytest.fixture(scope="session")
def vocab():
    from voxclone.engine import assets

    return assets.vocab()


@pytest.fixture
def isolated_home(tmp_path, monkeypatch):
    """A fresh, empty VOXCLONE_HOME for tests that must build assets from scratch."""
    home = tmp_path / "home"
    monkeypatch.setenv("VOXCLONE_HOME", str(home))
    return home


def pytest_configure(config):
    import tempfile

    os.environ.setdefault("VOXCLONE_THREADS", "2")
    # cloned voices made by tests never land in the user's library
    os.environ["VOXCLONE_LIBRARY"] = tempfile.mkdtemp(prefix="voxclone-test-library-")
