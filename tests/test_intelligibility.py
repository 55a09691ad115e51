"""Whisper-base listens to what voxclone says (slow: real ASR)."""

import pytest

from voxclone.transcribe import normalize_for_wer, word_errors

pytestmark = pytest.mark.slow

STORY = """The keeper's log, volume 3.

On January 12th, 1931, a storm broke two windows and the lamp went out for 20 minutes. Nobody was hurt.

By spring the village had raised $250 to repair the tower; Dr. Evans gave the most. The work took 6 weeks.

Why did they bother? Because ships still passed at night, and a light that fails once is a light nobody trusts."""

MARKERS = ["keeper", "storm", "windows", "hurt", "village", "tower", "evans", "weeks", "ships", "trusts"]


def test_long_multi_paragraph_text_loses_nothing(tts, asr, tmp_path):
    from voxclone.audio import Audio

    path = tmp_path / "story.wav"
    tts.save(STORY, path)
    heard = asr.transcribe(Audio.from_file(path), language="en")
    norm = normalize_for_wer(heard)
    positions = [norm.find(m) for m in MARKERS]
    assert all(p >= 0 for p in positions), (MARKERS, heard)
    assert positions == sorted(positions), heard  # in order: nothing repeated out of place
    errors, words = word_errors(tts._g2p_for("en-us").prepare(STORY).text, heard)
    assert errors / words < 0.08, heard


@pytest.mark.parametrize(
    "voice, lang, text, expect",
    [
        ("ef_dora", "es", "El tren sale de la estación a las ocho de la mañana.", ["tren", "estación", "mañana"]),
        ("ff_siwis", "fr", "Le train part de la gare à huit heures du matin.", ["train", "gare", "matin"]),
        ("if_sara", "it", "Il treno parte dalla stazione alle otto del mattino.", ["treno", "stazione", "mattino"]),
        ("pf_dora", "pt", "O trem sai da estação às oito horas da manhã.", ["trem", "estação", "manhã"]),
        ("bf_emma", "en", "The train leaves the station at eight in the morning.", ["train", "station", "morning"]),
    ],
)
def test_languages_are_understood(tts, asr, voice, lang, text, expect):
    heard = asr.transcribe(tts.speak(text, voice=voice), language=lang).lower()
    missing = [w for w in expect if w not in heard]
    assert not missing, heard


def test_packed_clips_each_get_their_own_words(tts, asr):
    """Clips transcribed together in one Whisper window come back in order, each with its own words only;
    the language is detected once (on the first window) and given to the rest."""
    from voxclone.bench.sentences import SENTENCES

    texts = [t for t, _ in SENTENCES[:12]]
    clips = [tts._render(t, voice=("bf_emma", "am_michael")[i % 2]).samples for i, t in enumerate(texts)]
    assert sum(len(c) for c in clips) / 24_000 > 40  # so the clips span two windows or more
    got = list(asr.transcribe_clips(clips, None, 24_000))
    assert len(got) == len(texts) and {lang for _, lang in got} == {"en"}
    for text, (heard, _) in zip(texts, got, strict=True):
        errors, words = word_errors(text, heard)
        assert errors / words <= 0.2, (text, heard)
