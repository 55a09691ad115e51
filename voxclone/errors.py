"""Errors a user can act on. Each message says what is wrong and how to fix it."""


class VoxcloneError(Exception):
    """Base class for every error voxclone raises on purpose."""


class AssetError(VoxcloneError):
    """A model file or package is missing, corrupt or unreadable."""


class TextError(VoxcloneError, ValueError):
    """The input text cannot be spoken (empty, only punctuation, too long, bad override)."""


class VoiceNotFoundError(VoxcloneError, KeyError):
    """No stock or user voice has that name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class LanguageError(VoxcloneError, ValueError):
    """The language is unknown or cannot be spoken well enough."""


class OutputError(VoxcloneError, ValueError):
    """The output path or format cannot be written."""


class AudioInputError(VoxcloneError, ValueError):
    """An input recording cannot be read, or holds no usable speech."""


class VoiceExistsError(VoxcloneError):
    """A voice with that name is already in the library."""
