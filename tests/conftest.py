import os

import pytest


@pytest.fixture(scope="session")
def tts():
    from voxclone import Voxclone

    return Voxclone().load()


@pytest.fixture(scope="session")
def slowdown(tts) -> float:
    """How many times slower than the development machine (VNNI, RTF ~0.25) this one synthesises.

    Builds take a wall-clock budget; tests that check what a budget buys scale it by this, so a CPU
    without int8 dot products (~5x slower) gets the same amount of fitting, not a fifth of it.
    """
    import time

    tts.speak("Warming up.")
    t0 = time.perf_counter()
    audio = tts._render("A short sentence to time this machine's synthesis speed.")
    return max(1.0, (time.perf_counter() - t0) / audio.duration / 0.25)


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
