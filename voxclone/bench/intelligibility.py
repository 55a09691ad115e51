"""`voxclone bench intelligibility`: Whisper-base WER of English speech, espeak-ng as a floor.

WER = (substitutions + deletions + insertions) / reference words, summed over all sentences,
after Whisper's English text normaliser on both sides.
"""

from __future__ import annotations

import time

from ..api import Voxclone
from ..engine.voices import describe
from ..text.normalize import normalize_english
from ..transcribe import Transcriber, word_errors
from .espeak_tts import synthesize as espeak_synthesize
from .sentences import SENTENCES


def run(voices: list[str], limit: int = 0) -> dict:
    items = SENTENCES[:limit] if limit else SENTENCES
    tts = Voxclone().load()
    asr = Transcriber()
    results: dict = {"sentences": len(items), "asr": "whisper-base int8 (faster-whisper)", "voices": {}}
    rows = [["system", "lang", "WER %", "errors / words", "RTF"]]

    def score(name: str, lang: str, synth) -> dict:
        edits = words = 0
        wall = audio_s = 0.0
        misheard = []
        for text, ref in items:
            t0 = time.perf_counter()
            samples, rate = synth(text)
            wall += time.perf_counter() - t0
            audio_s += len(samples) / rate
            hyp = asr.transcribe(samples, language="en", sample_rate=rate)
            e, n = word_errors(ref or text, hyp)
            edits, words = edits + e, words + n
            if e:
                misheard.append({"text": text, "heard": hyp, "errors": e})
        wer = edits / max(words, 1)
        rtf = wall / max(audio_s, 1e-9)
        rows.append([name, lang, f"{100 * wer:.2f}", f"{edits} / {words}", f"{rtf:.3f}"])
        return {"wer": round(wer, 4), "errors": edits, "words": words, "rtf": round(rtf, 4), "misheard": misheard}

    for voice in voices:
        lang = describe(voice).language if describe(voice).language.startswith("en") else "en-us"

        def synth(text: str, voice=voice, lang=lang):
            a = tts.speak(text, voice=voice, lang=lang)
            return a.samples, a.sample_rate

        results["voices"][voice] = score(voice, lang, synth)

    def floor(text: str):
        return espeak_synthesize(normalize_english(text), "en-us")

    results["espeak_ng"] = score("espeak-ng (floor)", "en-us", floor)
    default = voices[0] if voices else None
    if default:
        results["wer_default"] = results["voices"][default]["wer"]
        results["default_voice"] = default
    results["wer_espeak"] = results["espeak_ng"]["wer"]
    notes = [f"{len(items)} sentences; WER after Whisper's English normaliser; target for the default voice: <= 5%"]
    return {"title": "intelligibility (Whisper-base WER)", "table": rows, "notes": notes, "json": results}
