"""Encode speech piece by piece for HTTP responses: every format streams.

wav and pcm are written by hand (a WAV header with open-ended sizes, as streaming servers do);
mp3, opus (in Ogg), aac (ADTS) and flac go through FFmpeg (PyAV) into a sink that is drained
after every piece, so the first bytes leave as soon as the first piece is spoken.
"""

from __future__ import annotations

import struct

import numpy as np

from ..audio import resample

# response_format -> (media type, PyAV container, codec, codec rate or None for the speech's rate)
FORMATS = {
    "mp3": ("audio/mpeg", "mp3", "libmp3lame", None),
    "opus": ("audio/ogg", "ogg", "libopus", 48_000),
    "aac": ("audio/aac", "adts", "aac", None),
    "flac": ("audio/flac", "flac", "flac", None),
    "wav": ("audio/wav", None, None, None),
    "pcm": ("audio/pcm", None, None, None),
}
BIT_RATES = {"mp3": 128_000, "opus": 48_000, "aac": 96_000}


def _pcm16(x: np.ndarray) -> bytes:
    return (np.clip(x, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()


class _Sink:
    """A write-only file for FFmpeg; not seekable, so muxers write in order."""

    def __init__(self):
        self.parts: list[bytes] = []

    def write(self, b) -> int:
        self.parts.append(bytes(b))
        return len(b)

    def flush(self) -> None:
        pass

    def drain(self) -> bytes:
        out, self.parts = b"".join(self.parts), []
        return out


class StreamEncoder:
    """``feed(samples)`` -> bytes ready to send; ``close()`` -> the last bytes."""

    def __init__(self, fmt: str, rate: int, tags: dict | None = None):
        if fmt not in FORMATS:
            raise ValueError(f"response_format {fmt!r}: use one of {', '.join(FORMATS)}")
        self.fmt, self.rate = fmt, rate
        self.media_type, container, codec, codec_rate = FORMATS[fmt]
        self._header_sent = False
        self._out = None
        if container is None:
            return
        import av

        self.codec_rate = codec_rate or rate
        self._sink = _Sink()
        self._out = av.open(self._sink, "w", format=container)
        for k, v in (tags or {}).items():
            self._out.metadata[k] = str(v)
        self._stream = self._out.add_stream(codec, rate=self.codec_rate)
        self._stream.layout = "mono"
        if fmt in BIT_RATES:
            self._stream.bit_rate = BIT_RATES[fmt]
        self._pts = 0

    def feed(self, samples: np.ndarray) -> bytes:
        x = np.asarray(samples, np.float32)
        if self.fmt == "pcm":
            return _pcm16(x)
        if self.fmt == "wav":
            head = b"" if self._header_sent else self._wav_header()
            self._header_sent = True
            return head + _pcm16(x)
        import av

        y = resample(x, self.rate, self.codec_rate) if self.codec_rate != self.rate else x
        frame = av.AudioFrame.from_ndarray(y.reshape(1, -1), format="flt", layout="mono")
        frame.rate = self.codec_rate
        frame.pts = self._pts
        self._pts += y.size
        for packet in self._stream.encode(frame):
            self._out.mux(packet)
        return self._sink.drain()

    def close(self) -> bytes:
        if self._out is None:
            return b"" if self._header_sent or self.fmt == "pcm" else self._wav_header()
        for packet in self._stream.encode(None):
            self._out.mux(packet)
        self._out.close()
        return self._sink.drain()

    def _wav_header(self) -> bytes:
        unknown = 0xFFFFFFFF  # the length is not known when the header leaves; readers take "to the end"
        return (
            b"RIFF"
            + struct.pack("<I", unknown)
            + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, 1, self.rate, self.rate * 2, 2, 16)
            + b"data"
            + struct.pack("<I", unknown)
        )
