"""Text front-end: normalisation, G2P mapping, overrides, lexicons, chunking."""

import json

import pytest

from voxclone.errors import LanguageError, TextError
from voxclone.text import chunk
from voxclone.text.g2p import G2P, load_lexicon, resolve_language
from voxclone.text.normalize import normalize_english, year_words


@pytest.mark.parametrize(
    "text, expected",
    [
        ("I paid $1,234.56.", "I paid one thousand two hundred thirty-four dollars and fifty-six cents."),
        ("It costs £5 million.", "It costs five million pounds."),
        ("He came 1st and she 22nd.", "He came first and she twenty-second."),
        ("Born in 1999, moved in 2005.", "Born in nineteen ninety-nine, moved in two thousand five."),
        ("We met on 2024-03-15.", "We met on March fifteenth, twenty twenty-four."),
        ("On March 3rd, 2021 it rained.", "On March third, twenty twenty-one it rained."),
        ("Lunch at 12:30 p.m. Then work.", "Lunch at twelve thirty P M. Then work."),
        ("Wake at 7:05", "Wake at seven oh five"),
        ("Dr. Smith lives on Main St. now.", "Doctor Smith lives on Main Street now."),
        ("Ask No. 7, not No.", "Ask number seven, not No."),
        ("Mail jo.doe@example.com", "Mail jo dot doe at example dot com"),
        ("See https://www.example.org/docs", "See w w w dot example dot org slash docs"),
        ("About 45% of 2,000 people.", "About forty-five percent of two thousand people."),
        ("It is 3.5 km long and -5 °C.", "It is three point five kilometers long and minus five degrees Celsius."),
        ("Pages 10-20 of the U.S.A. guide.", "Pages ten to twenty of the U S A guide."),
        ("The 1990s and the '80s.", "The nineteen nineties and the eighties."),
        ("Add 1/2 cup, then 3/4.", "Add one half cup, then three quarters."),
        ("Wait - what?", "Wait, what?"),
    ],
)
def test_normalize_english(text, expected):
    assert normalize_english(text) == expected


def test_year_words():
    assert year_words(1905) == "nineteen oh five"
    assert year_words(2000) == "two thousand"
    assert year_words(1800) == "eighteen hundred"


def test_english_phonemes_use_only_kokoro_symbols(vocab):
    g2p = G2P("en-us", vocab)
    ps = g2p("Hello there! How are you doing today, my friend?")
    assert ps and all(c in vocab or c == " " for c in ps)
    # misaki's diphthong letters, not espeak's tie-bar pairs
    assert "O" in g2p("hello") and "A" in g2p("today") and "I" in g2p("my")
    assert "^" not in ps and "ː" not in ps  # American English drops length marks


def test_british_keeps_length_marks(vocab):
    assert "ː" in G2P("en-gb", vocab)("Start the car.")


def test_inline_override_and_lexicon(tmp_path, vocab):
    g2p = G2P("en-us", vocab)
    assert "kˈOkəɹO" in g2p("Say [Kokoro](/kˈOkəɹO/) twice.")
    tsv = tmp_path / "lex.tsv"
    tsv.write_text("# my words\nvoxclone\tvˈɑksklOn\n", encoding="utf-8")
    g2p = G2P("en-us", vocab, load_lexicon(tsv))
    assert "vˈɑksklOn" in g2p("I love VoxClone.")
    js = tmp_path / "lex.json"
    js.write_text(json.dumps({"Nguyen": "/wˈɪn/"}), encoding="utf-8")
    assert "wˈɪn" in G2P("en-us", vocab, load_lexicon(js))("Mister Nguyen is here.")


def test_bad_override_names_the_symbol(vocab):
    with pytest.raises(TextError, match="Ж"):
        G2P("en-us", vocab)("Say [this](/ðɪЖ/).")
    with pytest.raises(TextError, match="empty"):
        G2P("en-us", vocab)("Say [this](//).")


def test_bad_lexicon_file(tmp_path):
    bad = tmp_path / "lex.json"
    bad.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(TextError, match="JSON object"):
        load_lexicon(bad)
    with pytest.raises(TextError, match="cannot read"):
        load_lexicon(tmp_path / "missing.tsv")


def test_languages_resolve_or_refuse(vocab):
    for code in ("en-us", "en-gb", "es", "fr", "hi", "it", "pt-br"):
        assert G2P(code, vocab)("uno dos tres")
    assert resolve_language("pt").code == "pt-br"
    with pytest.raises(LanguageError, match="Mandarin"):
        G2P("zh", vocab)
    with pytest.raises(LanguageError, match="unknown language"):
        resolve_language("xx")


LONG_TEXT = (
    "The lighthouse stood at the end of a narrow spit of rock. For ninety years its keepers wrote the weather "
    "into a leather book, every evening, at six o'clock.\n\n"
    "Some entries were only a word long: calm, fog, gale. Others ran for pages; they described ships that "
    "passed too close, storms that tore the shutters away, and one winter when the sea froze so far out that "
    "a fox walked across the bay!\n\n"
    + " ".join(["and then the wind came back again over the water"] * 30)
    + ".\n\nWho kept the book? A quiet woman named Margaret Hale."
)


def test_plan_keeps_every_word_once_and_fits_the_model(vocab):
    g2p = G2P("en-us", vocab)
    prepared = g2p.prepare(LONG_TEXT)
    pieces = list(chunk.plan(prepared.text, g2p.phonemize))
    assert chunk.words_of(pieces) == prepared.text.split()
    assert all(0 < len(p.phonemes) <= chunk.MAX_PHONEMES for p in pieces)
    assert len(pieces) >= 4
    # the 300-word run-on sentence had to be cut between words, with only a short pause
    assert any(p.pause == chunk.PAUSE_WORD for p in pieces)
    # paragraph ends get the longest pause
    assert pieces[-1].pause == chunk.PAUSE_PARAGRAPH
    assert sum(p.pause == chunk.PAUSE_PARAGRAPH for p in pieces) == 4


def test_fast_start_cuts_a_short_first_phrase(vocab):
    g2p = G2P("en-us", vocab)
    text = "Voice banking lets people record their own voice while they still can. Then it speaks."
    pieces = list(chunk.plan(text, g2p.phonemize, fast_start=True))
    assert len(pieces[0].phonemes) <= 1.3 * chunk.FIRST_PHONEMES
    assert pieces[0].text.split()[-1] not in ("their", "own", "the")
    assert chunk.words_of(pieces) == text.split()


def test_fast_start_cuts_a_phrase_even_when_none_is_as_short_as_asked(vocab):
    """A busy server asks for ~8 phonemes; when the first two words already say more, they still beat
    the whole sentence (before, the whole 51-phoneme sentence came back as the 'short' first piece)."""
    g2p = G2P("en-us", vocab)
    text = "My grandmother grows tomatoes, beans and pumpkins in her garden."
    pieces = list(chunk.plan(text, g2p.phonemize, fast_start=True, first_phonemes=8))
    assert pieces[0].text == "My grandmother"
    assert chunk.words_of(pieces) == text.split()
    # a phrase never ends on a word that needs the next one, even as that fallback
    pieces = list(
        chunk.plan("Take the grandmother to the market today.", g2p.phonemize, fast_start=True, first_phonemes=4)
    )
    assert pieces[0].text == "Take the grandmother"


def test_after_a_fast_start_pieces_grow_so_each_is_ready_before_the_audio_runs_out(vocab):
    """Without the ramp the second piece was a 239-phoneme group (~3 s to synthesise) after an
    18-phoneme first piece (~1 s of speech): a real-time listener waited ~1.5 s."""
    g2p = G2P("en-us", vocab)
    text = " ".join(
        [
            "The first sentence is here to start the stream.",
            "A second one follows it, a little longer than the first.",
            "Then a third sentence arrives, and a fourth after that.",
            "The fifth closes the paragraph with a full stop.",
        ]
        * 3
    )
    planned = list(chunk.plan(text, g2p.phonemize, fast_start=True, first_phonemes=18))
    assert len(planned[1].phonemes) > 200  # what the ramp is for
    pieces = list(chunk.ramp(planned, g2p.phonemize, 18))
    assert chunk.words_of(pieces) == text.split()
    sizes = [len(p.phonemes) for p in pieces]
    assert sizes[0] == len(planned[0].phonemes)
    for i in range(1, len(sizes)):
        assert sizes[i] <= 1.3 * 2 * max(sum(sizes[:i]), 18), sizes
    assert max(sizes) > 150  # and they reach the plan's own sizes
    assert pieces[-1].pause == chunk.PAUSE_PARAGRAPH


def test_a_word_longer_than_the_model_window_is_sliced_not_dropped(vocab):
    g2p = G2P("en-us", vocab)
    word = "abracadabra" * 60  # one "word" of hundreds of phonemes
    pieces = list(chunk.plan(f"Say {word} now.", g2p.phonemize))
    assert all(len(p.phonemes) <= chunk.MAX_PHONEMES for p in pieces)
    assert sum(len(p.phonemes) for p in pieces) >= len(g2p.phonemize(word))
    assert chunk.words_of(pieces) == ["Say", word, "now."]


def test_short_first_sentence_alone_in_its_paragraph_gets_the_paragraph_pause(vocab):
    g2p = G2P("en-us", vocab)
    pieces = list(chunk.plan("Hello.\n\nSecond paragraph here.", g2p.phonemize, fast_start=True))
    assert [p.text for p in pieces] == ["Hello.", "Second paragraph here."]
    assert pieces[0].pause == chunk.PAUSE_PARAGRAPH


def test_clips_pack_into_whisper_windows_and_words_find_their_clip():
    from voxclone.transcribe import _nearest_span, _windows

    assert _windows([5.0] * 9) == [[0, 1, 2, 3], [4, 5, 6, 7], [8]]  # 4 x (5 s + 1 s gap) = 24 s <= 28 s
    assert _windows([30.0, 2.0, 27.0]) == [[0], [1], [2]]  # a long clip goes alone
    assert _windows([]) == []
    spans = [(0.0, 2.0), (3.0, 5.0), (6.0, 9.0)]
    assert [_nearest_span(spans, t) for t in (1.0, 2.4, 2.6, 4.0, 5.4, 10.0)] == [0, 0, 1, 1, 1, 2]


def test_busy_server_pieces_are_short_balanced_and_keep_every_word(vocab):
    g2p = G2P("en-us", vocab)
    prepared = g2p.prepare(LONG_TEXT)
    pieces = list(chunk.plan(prepared.text, g2p.phonemize))
    parts = [q for p in pieces for q in chunk.split(p, g2p.phonemize, 48)]
    assert chunk.words_of(parts) == prepared.text.split()
    sizes = [len(q.phonemes) for q in parts]
    assert len(parts) > 3 * len(pieces) and max(sizes) <= 1.3 * 48
    assert sorted(sizes)[len(sizes) // 10] >= 12  # balanced: no crumbs of a word or two
    # pauses: a cut piece's last part keeps its pause; sentences grouped in one piece come apart again
    assert [q.pause for q in parts if q.pause == chunk.PAUSE_PARAGRAPH] == [chunk.PAUSE_PARAGRAPH] * 4
    assert sum(q.pause == chunk.PAUSE_SENTENCE for q in parts) > sum(p.pause == chunk.PAUSE_SENTENCE for p in pieces)
    short = chunk.Piece("Calm.", g2p.phonemize("Calm."), chunk.PAUSE_SENTENCE)
    assert list(chunk.split(short, g2p.phonemize, 48)) == [short]
