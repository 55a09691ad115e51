"""espeak-ng's own formant synthesiser, as a floor in the intelligibility benchmark.

Uses the libespeak-ng that ``espeakng-loader`` ships (no apt), through its C API. phonemizer
loads its own copy of the library, so this instance does not disturb G2P.
"""

from __future__ import annotations

import ctypes
import threading

import numpy as np

_lock = threading.Lock()
_lib = None
_rate = 0
_buf: list[np.ndarray] = []

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


@_CALLBACK
def _on_audio(wav, n, events):
    if n > 0:
        _buf.append(np.ctypeslib.as_array(wav, shape=(n,)).astype(np.float32) / 32768.0)
    return 0


def _init():
    global _lib, _rate
    if _lib is None:
        from pathlib import Path

        import espeakng_loader

        lib = ctypes.cdll.LoadLibrary(espeakng_loader.get_library_path())
        data_parent = str(Path(espeakng_loader.get_data_path()).parent).encode()
        _rate = lib.espeak_Initialize(2, 0, data_parent, 0)  # 2: AUDIO_OUTPUT_SYNCHRONOUS
        if _rate <= 0:
            raise RuntimeError("libespeak-ng failed to initialise")
        lib.espeak_SetSynthCallback(_on_audio)
        _lib = lib


def synthesize(text: str, voice: str = "en-us") -> tuple[np.ndarray, int]:
    """(float32 samples, sample rate) of espeak-ng speaking ``text``."""
    with _lock:
        _init()
        _lib.espeak_SetVoiceByName(voice.encode())
        _buf.clear()
        data = text.encode("utf-8") + b"\0"
        # position 0, POS_CHARACTER (1), no end, espeakCHARS_UTF8 (1)
        _lib.espeak_Synth(data, len(data), 0, 1, 0, 1, None, None)
        _lib.espeak_Synchronize()
        samples = np.concatenate(_buf) if _buf else np.zeros(0, np.float32)
        return samples, _rate
