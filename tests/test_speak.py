"""The Python API with the real model: durations, determinism, controls, formats, bad input."""

import os
import stat
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voxclone import SpeechSettings, Voxclone
from voxclone.api import MAX_TEXT_CHARS
from voxclone.audio import Audio
from voxclone.errors import LanguageError, OutputError, TextError, VoiceNotFoundError


def speech_seconds(audio: Audio) -> float:
    """Seconds above -40 dB of the peak (pauses excluded)."""
    x = np.abs(audio.samples)
    frame = audio.sample_rate // 100
    n = len(x) // frame
    env = x[: n * frame].reshape(n, frame).max(axis=1)
    return float((env > env.max() * 0.01).sum() / 100)


@pytest.mark.parametrize(
    "text",
    [
        "Hello.",
        "The quick brown fox jumps over the lazy dog.",
        "When the storm finally passed, the villagers came out of their houses and began to clean up the mess.",
    ],
)
def test_duration_is_sane_for_text_length(tts, text):
    audio = tts.speak(text)
    words = len(text.split())
    assert audio.sample_rate == 24_000 and audio.samples.dtype == np.float32
    assert np.abs(audio.samples).max() <= 1.0
    # 1.5-5 words per second of voiced sound (people read 2-4), plus slack for one short word
    assert 0.2 * words < speech_seconds(audio) < 0.67 * words + 0.6


def test_same_input_same_output(tts):
    a = tts.speak("Same input, same output.", voice="am_michael")
    b = tts.speak("Same input, same output.", voice="am_michael")
    assert np.array_equal(a.samples, b.samples)


def test_stream_without_fast_start_joins_to_speak(tts):
    text = "First sentence here. Second one follows!\n\nA new paragraph, with a clause."
    chunks = list(tts.stream(text, fast_start=False))
    assert np.array_equal(np.concatenate([c.samples for c in chunks]), tts.speak(text).samples)
    assert " ".join(c.text for c in chunks).split() == tts._g2p_for("en-us").prepare(text).text.split()


def test_fast_start_first_chunk_is_short(tts):
    text = "Voice banking lets people record their own voice while they still can, and use it later."
    first = next(tts.stream(text))
    assert first.duration < 2.6
    assert len(list(tts.stream(text))) >= 2


def test_the_first_piece_length_may_be_asked_when_it_is_planned(tts):
    """A server decides how short a stream's first piece is when the piece is planned, not when the
    request came in (requests that arrive together are all in by then)."""
    text = "Please call Stella and ask her to bring these things with her from the store."
    s = SpeechSettings().validated()
    voice = tts._voice(s.voice)
    asked = []

    def first() -> int:
        asked.append(1)
        return 8

    pieces = tts._marked(text, s, voice, True, None, first)
    assert asked == []  # not yet: nothing was planned
    short = next(pieces)
    pieces.close()
    assert asked == [1]
    idle = next(tts._marked(text, s, voice, True, None, 18))
    assert short.text == "Please call" and idle.text == "Please call Stella"
    assert short.duration < idle.duration


def test_pieces_follow_the_limit_asked_before_each(tts):
    """A busy server asks for short pieces; the limit is asked again for every piece, as load changes."""
    text = (
        "When the storm finally passed, the villagers came out of their houses, looked at the fallen trees "
        "and broken fences, and quietly began to clean up the mess together. Then they went home."
    )
    s = SpeechSettings().validated()
    voice = tts._voice(s.voice)
    asked = []

    def limit() -> int:
        asked.append(1)
        return 36

    pieces = list(tts._marked(text, s, voice, True, None, 18, limit))
    whole = list(tts._marked(text, s, voice, True, None, 18))
    assert " ".join(p.text for p in pieces).split() == " ".join(p.text for p in whole).split() == text.split()
    assert len(asked) == len(whole) == 3 and len(pieces) >= 5  # asked once a piece; the long rest cut at phrases
    assert max(p.duration for p in pieces) < 3.5  # about 36 phonemes: 2-3 s of speech and a pause
    assert pieces[-1].text == "Then they went home."


def test_speed_changes_duration_not_words(tts):
    text = "We should leave early tomorrow if we want to avoid the traffic."
    normal, fast = speech_seconds(tts.speak(text)), speech_seconds(tts.speak(text, speed=1.5))
    assert 0.55 < fast / normal < 0.8


def _median_f0(audio: Audio) -> float:
    import pyworld

    x = audio.samples.astype(np.float64)
    f0, t = pyworld.dio(x, audio.sample_rate, frame_period=10)
    f0 = pyworld.stonemask(x, f0, t, audio.sample_rate)
    return float(np.median(f0[f0 > 0]))


@pytest.mark.parametrize("semitones", [-4, 4])
def test_pitch_shift_moves_f0_and_keeps_timing(tts, semitones):
    text = "The library closes at eight, but the reading room stays open until ten."
    base = tts.speak(text, voice="af_heart")
    shifted = tts.speak(text, voice="af_heart", pitch=semitones)
    ratio = _median_f0(shifted) / _median_f0(base)
    assert ratio == pytest.approx(2 ** (semitones / 12), rel=0.06)
    # same timing (only edge trimming differs): the model's F0 moved, not the tape speed
    assert abs(len(shifted.samples) - len(base.samples)) < 0.01 * len(base.samples)


@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg", "mp3"])
def test_formats_from_extension(tts, tmp_path, fmt):
    path = tmp_path / f"out.{fmt}"
    duration = tts.save("Testing every format.", path, sample_rate=16_000)
    data, rate = sf.read(path)
    assert rate == 16_000
    assert abs(len(data) / rate - duration) < 0.15  # mp3 pads a frame or two
    assert not [p for p in tmp_path.iterdir() if p.name != path.name]


def test_settings_object_and_overrides(tts):
    s = SpeechSettings(voice="bf_emma", speed=1.2, sample_rate=22_050)
    a = tts.speak("Settings travel together.", s)
    assert a.sample_rate == 22_050
    b = tts.speak("Settings travel together.", s, speed=1.0)
    assert b.duration > a.duration
    with pytest.raises(TypeError, match="colour"):
        tts.speak("x", colour="red")
    for bad in (dict(speed=5), dict(pitch=30), dict(sample_rate=12345), dict(format="aiff")):
        with pytest.raises(ValueError):
            SpeechSettings(**bad).validated()


def test_voice_mix(tts):
    mix = tts.speak("A blend of two voices.", voice="af_heart:0.5,am_michael:0.5")
    assert mix.duration > 0.5
    with pytest.raises(VoiceNotFoundError, match="weight"):
        tts.speak("x", voice="af_heart:lots")


def test_voice_mix_blends_decoder_adapters_of_either_length(tts):
    """A voice trained before the low-rank weights (offsets only) mixes with one that has them: its missing
    part counts as zeros, a stock voice's whole adapter does, and the mix speaks."""
    pack, _ = tts.voice_pack("af_heart")
    n, full = tts.engine.decoder_bias_size, tts.engine.decoder_adapter_size
    old, new = np.full(n, 0.02, np.float32), np.full(full, -0.01, np.float32)
    tts.add_voice("__old__", pack, "en-us", kind="fitting", decoder=old)
    tts.add_voice("__new__", pack, "en-us", kind="fitting", decoder=new)
    mixed = tts._voice("__old__:0.25,__new__:0.25,am_michael:0.5").decoder
    want = 0.25 * np.pad(old, (0, full - n)) + 0.25 * new
    assert mixed.shape == (full,) and np.allclose(mixed, want)
    assert tts.speak("Mixed adapters.", voice="__old__:0.5,__new__:0.5").duration > 0.5


@pytest.mark.parametrize(
    "voice, lang, text",
    [
        ("af_heart", "en-us", "Good morning, everyone."),
        ("bf_emma", "en-gb", "Good morning, everyone."),
        ("ef_dora", "es", "Buenos días a todos."),
        ("ff_siwis", "fr", "Bonjour à tous."),
        ("hf_alpha", "hi", "सभी को सुप्रभात।"),
        ("if_sara", "it", "Buongiorno a tutti."),
        ("pf_dora", "pt-br", "Bom dia a todos."),
    ],
)
def test_every_espeak_language_speaks(tts, voice, lang, text):
    audio = tts.speak(text, voice=voice, lang=lang)
    assert 0.5 < speech_seconds(audio) < 4


def test_japanese_speaks_or_refuses_clearly(tts):
    try:
        import pyopenjtalk  # noqa: F401
    except ImportError:
        with pytest.raises(LanguageError, match=r"voxclone\[ja\]"):
            tts.speak("こんにちは。", voice="jf_alpha")
        return
    assert 0.5 < speech_seconds(tts.speak("こんにちは。今日はいい天気ですね。", voice="jf_alpha")) < 5


def test_mandarin_and_unknown_languages_refuse(tts):
    with pytest.raises(LanguageError, match="Mandarin Chinese is not supported"):
        tts.speak("你好", voice="zf_xiaobei")
    with pytest.raises(LanguageError, match="unknown language 'klingon'"):
        tts.speak("Qapla'", lang="klingon")


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("text, match", [("", "empty"), ("   \n\t", "empty"), ("?! ... --- !!!", "only punctuation")])
def test_unspeakable_text(tts, text, match):
    with pytest.raises(TextError, match=match):
        tts.speak(text)


def test_huge_text_refused_before_any_file(tts, tmp_path):
    huge = "word " * (1_048_576 // 5)
    with pytest.raises(TextError, match="characters"):
        tts.speak(huge)
    with pytest.raises(TextError, match=f"{MAX_TEXT_CHARS:,}"):
        tts.save(huge, tmp_path / "huge.wav")
    assert not list(tmp_path.iterdir())


def test_unknown_voice(tts):
    with pytest.raises(VoiceNotFoundError, match="unknown voice 'nobody'.*voxclone voices"):
        tts.speak("Hello.", voice="nobody")


def test_unknown_format_and_unwritable_paths(tts, tmp_path):
    with pytest.raises(OutputError, match="unknown audio extension"):
        tts.save("Hello.", tmp_path / "out.xyz")
    with pytest.raises(OutputError, match="does not exist"):
        tts.save("Hello.", tmp_path / "no" / "such" / "dir.wav")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    # root ignores folder permissions; /proc refuses new files even to root
    target = locked / "out.wav" if not os.access(locked, os.W_OK) else Path("/proc/voxclone-test.wav")
    try:
        with pytest.raises(OutputError, match="not writable"):
            tts.save("Hello.", target)
    finally:
        locked.chmod(stat.S_IRWXU)
    assert not target.exists()
    assert not list(tmp_path.glob("*.wav"))


def test_failure_midway_keeps_the_old_file_and_leaves_no_partial(tts, tmp_path, monkeypatch):
    path = tmp_path / "keep.wav"
    tts.save("The old recording.", path)
    before = path.read_bytes()
    calls = {"n": 0}
    real = tts.engine.infer

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("simulated crash")
        return real(*a, **k)

    monkeypatch.setattr(tts.engine, "infer", flaky)
    with pytest.raises(RuntimeError, match="simulated"):
        tts.save("First paragraph.\n\nSecond paragraph.\n\nThird paragraph.", path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.wav"]


def test_user_model_and_voice_paths(tmp_path, monkeypatch):
    from voxclone.engine import assets

    # only the given folder: no cloned voices from an earlier test's library
    monkeypatch.setenv("VOXCLONE_LIBRARY", str(tmp_path / "empty-library"))

    packs, _ = assets.load_voice_packs()
    np.save(tmp_path / "mine.npy", packs["af_heart"])
    tts = Voxclone(model=assets.resolve_model(), voices=tmp_path, optimize=False)
    assert [v.name for v in tts.voices()] == ["mine"]
    assert tts.speak("A voice from my own folder.", voice="mine", lang="en-us").duration > 1
    with pytest.raises(Exception, match="pitch"):
        tts.speak("No pitch input in the plain graph.", voice="mine", lang="en-us", pitch=2)


def test_memory_stays_bounded_while_saving(tts, tmp_path):
    """save() streams: Python-side memory must not grow with the length of the audio."""
    import tracemalloc

    def peak_for(paragraphs: int) -> tuple[float, int]:
        text = "\n\n".join(
            f"Paragraph {i}. The keeper wrote the weather into the book, as always." for i in range(paragraphs)
        )
        tracemalloc.start()
        # Ogg: no C2PA step, which passes the finished file through memory once (capped at 100 MB)
        duration = tts.save(text, tmp_path / "long.ogg")
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return duration, peak

    short, short_peak = peak_for(4)
    long, long_peak = peak_for(16)
    assert long > 3.5 * short
    assert long_peak < 1.5 * short_peak  # one piece at a time, however long the text
    assert long_peak < long * 24_000 * 4 / 2  # well under the whole float32 signal


def test_output_file_gets_normal_permissions(tts, tmp_path):
    path = tmp_path / "perm.wav"
    tts.save("Readable by others.", path)
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask


def test_engine_sessions_run_side_by_side(tts):
    """A 2-session engine runs two callers at once (never more), with the one-session engine's audio."""
    import threading
    import time

    from voxclone.engine.kokoro import KokoroEngine

    engine = KokoroEngine(tts.engine.path, threads=2, optimize=False, sessions=2)
    assert (engine.sessions, engine.threads) == (2, 2)
    spans, running, most = [], [0], [0]
    lock = threading.Lock()

    class Recorded:
        def __init__(self, session):
            self.session = session

        def run(self, *args):
            with lock:
                running[0] += 1
                most[0] = max(most[0], running[0])
            t0 = time.perf_counter()
            try:
                return self.session.run(*args)
            finally:
                with lock:
                    running[0] -= 1
                    spans.append((t0, time.perf_counter()))

    engine._free = [Recorded(s) for s in engine._free]
    g2p = tts._g2p_for("en-us")
    tokens = [g2p.vocab[c] for c in g2p("Two requests, side by side.") if c in g2p.vocab]
    style = tts._stock()["af_heart"][len(tokens)]
    want = tts.engine.infer(tokens, style)
    got: list[np.ndarray] = []
    callers = [threading.Thread(target=lambda: got.append(engine.infer(tokens, style))) for _ in range(3)]
    for c in callers:
        c.start()
    for c in callers:
        c.join()
    assert len(got) == 3 and most[0] == 2  # side by side, and a third caller waited for a free session
    first, second = sorted(spans)[:2]
    assert second[0] < first[1]  # the second run started before the first ended
    for audio in got:
        assert len(audio) == len(want)
        assert np.abs(audio - want).max() < 1e-3 * np.abs(want).max()
