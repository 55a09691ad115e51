"""voxclone: consent-first voice cloning and text to speech that runs offline on a CPU."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("voxclone")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+src"

from .api import SpeechSettings, Voxclone  # noqa: E402
from .audio import Audio  # noqa: E402
from .errors import VoxcloneError  # noqa: E402

__all__ = ["Audio", "SpeechSettings", "Voxclone", "VoxcloneError", "__version__"]
