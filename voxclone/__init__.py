"""voxclone: consent-first voice cloning and text to speech that runs offline on a CPU."""

from importlib.metadata import PackageNotFoundError, version

from .api import SpeechSettings, Voxclone
from .audio import Audio
from .errors import VoxcloneError

try:
    __version__ = version("voxclone")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+src"

__all__ = ["Audio", "SpeechSettings", "Voxclone", "VoxcloneError", "__version__"]
