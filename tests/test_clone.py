"""Cloning from speech made for the test (stock voices stand in for people)."""

import json
import zipfile

import numpy as np
import pytest
import soundfile as sf

from voxclone import Voxclone
from voxclone.bench.sentences import SENTENCES
from voxclone.cloning.build import SELECT, texts_for
from voxclone.cloning.clone import ConsentError, clone
from voxclone.cloning.collect import collect
from voxclone.cloning.library import LibraryError, VoiceLibrary
from voxclone.cloning.texts import EVAL, FIT, prompts
from voxclone.errors import AudioInputError, VoiceExistsError

pytestmark = pytest.mark.slow


def _texts(start, n):
    return [" ".join(t for t, _ in SENTENCES[i : i + 2]) for i in range(start, start + 2 * n, 2)]


@pytest.fixture(scope="module")
def speaker_dir(tts, tmp_path_factory):
    """About 30 s of one "person" (bf_emma) in four files."""
    d = tmp_path_factory.mktemp("speaker")
    for i, text in enumerate(_texts(0, 4)):
        tts.save(text, d / f"take{i}.wav", voice="bf_emma")
    return d


@pytest.fixture(scope="module")
def planted(tts, speaker_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("planted")
    for f in speaker_dir.iterdir():
        (d / f.name).write_bytes(f.read_bytes())
    loud = tts.speak(_texts(10, 1)[0], voice="bf_emma").samples * 6
    sf.write(d / "clipped.wav", np.clip(loud, -1, 1), 24_000)
    sf.write(d / "silence.wav", np.zeros(3 * 24_000, np.float32), 24_000)
    rng = np.random.default_rng(0)
    sf.write(d / "noise.wav", (rng.standard_normal(4 * 24_000) * 0.05).astype(np.float32), 24_000)
    tts.save(_texts(12, 1)[0], d / "someone_else.wav", voice="am_michael")
    return d


def test_report_flags_planted_problems(planted):
    col = collect([planted])
    by_source = {}
    for c in col.clips:
        by_source.setdefault(c.source, []).append(c)
    assert all("clipping" in c.flags and c.use == "excluded" for c in by_source["clipped.wav"])
    assert all("other-speaker" in c.flags and c.use == "excluded" for c in by_source["someone_else.wav"])
    assert all(c.use == "excluded" for c in by_source.get("noise.wav", []))
    assert "silence.wav" not in by_source
    advice = " | ".join(col.report["advice"])
    assert "silence.wav: silent" in advice
    assert "clip(s) clip" in advice and "sound like someone else" in advice
    good = [c for c in col.clips if c.source.startswith("take")]
    assert good and all(c.use in ("enroll", "heldout") and not c.flags for c in good)
    assert col.language == "en"
    assert any("umbrella" in c.text.lower() for c in good)  # transcribed
    assert 25 < col.report["clean_speech_s"] < 45
    assert {s["file"] for s in col.report["sources"]} >= {"clipped.wav", "take0.wav"}
    assert all(len(s["sha256"]) == 64 for s in col.report["sources"])


@pytest.fixture(scope="module")
def instant_voice(tts, speaker_dir, tmp_path_factory):
    lib = VoiceLibrary(tmp_path_factory.mktemp("lib"))
    voxy = Voxclone(library=lib)
    record = clone("emma-like", [speaker_dir], waiver="test stand-in", tts=voxy, library=lib)
    return lib, voxy, record


def test_instant_clone_is_stored_and_speaks(instant_voice):
    lib, voxy, record = instant_voice
    assert max(record["base"], key=record["base"].get) == "bf_emma"
    assert record["consent"]["kind"] == "waiver" and record["consent"]["reason"] == "test stand-in"
    assert record["build"]["seconds"] > 0  # the <= 10 s target is measured by `bench clone`, not here
    folder = lib.path("emma-like")
    assert {"voice.json", "style.npy", "embedding.npy", "report.json", "fit_log.json", "clips"} <= {
        p.name for p in folder.iterdir()
    }
    assert np.load(folder / "style.npy").shape == (510, 1, 256)
    audio = voxy.speak("Hello, this is my cloned voice.", voice="emma-like")
    assert audio.duration > 1
    assert ("emma-like", "cloned") in {(v.name, v.kind) for v in voxy.voices()}
    assert not [p for p in lib.root.iterdir() if p.name.startswith(".")]  # no temp folders left


def test_eval_scores_against_real_clips_beside_stock(instant_voice):
    from voxclone.cloning.evaluate import evaluate

    lib, voxy, _ = instant_voice
    result = evaluate("emma-like", tts=voxy, library=lib, with_wer=False)
    assert result["best_stock"] == "bf_emma"  # the stand-in speaker is that stock voice
    assert 0.8 < result["similarity_resemblyzer"] <= 1.0
    assert abs(result["similarity_resemblyzer"] - result["stock_similarity_resemblyzer"]) < 0.05
    assert "note" in result  # four files are too few to hold clips out: said, not hidden
    assert -35 < result["level_lufs"] < -10  # the clips' loudness, at which every clip was heard


def test_best_fit_ends_closer_than_its_start(tts, tmp_path, slowdown):
    """An off-manifold "person" (a stock style moved 1.2 spreads): fitting must move toward them."""
    from voxclone.cloning.build import Target, VoiceBuilder
    from voxclone.cloning.speaker import centroid, shared_encoder

    builder = VoiceBuilder(tts, "en-us")
    dirs, _ = builder._basis()
    person = tts._stock()["af_sarah"] + (1.2 * dirs[1] - 0.8 * dirs[3]).reshape(1, 1, 256)
    enc = shared_encoder()
    recordings = builder.listen(person, _texts(20, 4))
    target = Target(centroid(np.stack(recordings)))
    start = builder.instant(target)
    # two generations of six candidates; the budget only bounds
    fitted = builder.best(target, start, seed=1, budget_s=400 * slowdown, max_evals=15, popsize=6)
    assert fitted.log[-1]["step"] >= 2
    eval_ref = centroid(np.stack(builder.listen(person, EVAL)))
    before = np.mean([e @ eval_ref for e in builder.listen(start.pack, EVAL, start.speed, start.pitch)])
    after = np.mean([e @ eval_ref for e in builder.listen(fitted.pack, EVAL, fitted.speed, fitted.pitch)])
    assert after > before, (before, after, fitted.log)
    assert enc is builder.encoder


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda d, tts: sf.write(d / "quiet.wav", np.zeros(48_000, np.float32), 24_000), "no usable speech"),
        (
            lambda d, tts: tts.save("Hi.", d / "short.wav", voice="bf_emma"),
            r"only 0\.\d s of speech in the input; a voice needs at least 3 s",
        ),
        (lambda d, tts: (d / "broken.wav").write_bytes(b"RIFF\x00\x00junk" * 50), "broken.wav is not audio"),
        (lambda d, tts: (d / "notes.xyz").write_text("not audio"), "notes.xyz is not audio"),
    ],
)
def test_bad_recordings_store_nothing(tts, tmp_path, make, match):
    d = tmp_path / "in"
    d.mkdir()
    make(d, tts)
    lib = VoiceLibrary(tmp_path / "lib")
    with pytest.raises(AudioInputError, match=match):
        clone("nobody", sorted(d.iterdir()), waiver="test", tts=Voxclone(library=lib), library=lib)
    assert not lib.root.exists() or not list(lib.root.iterdir())


def test_name_and_consent_are_checked_first(tts, speaker_dir, tmp_path):
    lib = VoiceLibrary(tmp_path / "lib")
    voxy = Voxclone(library=lib)
    with pytest.raises(ConsentError, match="consent"):
        clone("anyone", [speaker_dir], tts=voxy, library=lib)
    with pytest.raises(ValueError, match="stock voice"):
        clone("af_heart", [speaker_dir], waiver="x", tts=voxy, library=lib)
    with pytest.raises(ValueError, match="lowercase"):
        clone("Bad Name!", [speaker_dir], waiver="x", tts=voxy, library=lib)
    lib.create("taken", {"name": "taken"}, np.zeros((510, 1, 256), np.float32), np.zeros(256), {})
    with pytest.raises(VoiceExistsError, match="already exists"):
        clone("taken", [speaker_dir], waiver="x", tts=voxy, library=lib)
    assert lib.names() == ["taken"]


def test_export_import_tamper_delete(tmp_path):
    lib = VoiceLibrary(tmp_path / "lib")
    pack = np.random.default_rng(0).standard_normal((510, 1, 256)).astype(np.float32)
    clip = np.zeros(24_000, np.float32)
    lib.create(
        "alice",
        {"name": "alice", "language": "en-us"},
        pack,
        np.ones(256),
        {"advice": []},
        clips=[("c001", clip, 24_000, {"text": "hi", "use": "enroll"})],
        decoder=np.arange(5, dtype=np.float32),
    )
    exported = lib.export("alice", tmp_path / "alice.voxclone")
    other = VoiceLibrary(tmp_path / "other")
    assert other.import_file(exported) == "alice"
    assert np.array_equal(other.load("alice")[1], pack)
    assert np.array_equal(other.decoder("alice"), np.arange(5))
    assert other.import_file(exported, name="alice2") == "alice2"
    with pytest.raises(VoiceExistsError):
        other.import_file(exported)
    # flip one byte of the style inside the archive: the import must refuse it
    tampered = tmp_path / "tampered.voxclone"
    with zipfile.ZipFile(exported) as z, zipfile.ZipFile(tampered, "w") as out:
        for item in z.infolist():
            data = z.read(item)
            if item.filename == "voice/style.npy":
                data = data[:-1] + bytes([data[-1] ^ 1])
            out.writestr(item, data)
    with pytest.raises(LibraryError, match="altered"):
        other.import_file(tampered, name="evil")
    assert "evil" not in other.names()
    removed = lib.delete("alice")
    assert {"style.npy", "decoder.npy", "clips/c001.wav"} <= set(removed)
    assert not (tmp_path / "lib" / "alice").exists()
    assert not list((tmp_path / "lib").rglob("*.npy"))  # nothing of the voice remains anywhere


def test_prompts_for_voice_banking():
    en = prompts("en")
    assert len(en) >= 150 and len(set(en)) == len(en)
    for lang in ("es", "fr", "it", "pt-br", "hi"):
        assert len(prompts(lang)) >= 40
    with pytest.raises(ValueError, match="available"):
        prompts("xx")


def test_bench_clone_reports_the_gap_in_the_speakers_own_language_too():
    """A clone speaking English is also scored speaking its speaker's language, against a stock voice
    speaking it; speakers whose language Kokoro lacks show '-' and the own-language mean leaves them out."""
    from voxclone.bench import clone as bench

    own = bench.own_sentences("it")
    assert len(own) == bench.OWN_SENTENCES and set(own) <= set(prompts("it"))
    assert not set(own) & {t for pool in texts_for("it") for t in pool}  # never what a voice is fitted on
    assert bench.own_sentences("ru") == [] and bench.own_sentences("en-us") == []
    wer = bench.wer_sentences()  # English WER: EVAL and prompts, so one word is not a whole point
    assert len(wer) == len(set(wer)) == bench.WER_SENTENCES and wer[: len(EVAL)] == EVAL
    assert sum(len(t.split()) for t in wer) > 500 and not set(wer) & (set(FIT) | set(SELECT))

    def row(stock, best, stock_own=None, best_own=None):
        r = {"channel_hz": 0, "stock_wer": 0.0, "best_wer": 0.0, "best_build_s": 800.0, "best_fit_s": 780.0}
        for e in bench.ENCODERS:
            r |= {f"ceiling_{e}": 0.9, f"stock_{e}": stock, f"best_{e}": best}
            if stock_own is not None:
                r |= {f"stock_own_{e}": stock_own, f"best_own_{e}": best_own}
        return r

    results = {
        "speakers": {
            "it-x": row(0.6, 0.75, 0.7, 0.87)
            | {"best_decoder_adapter": "generator", "best_check_missed": {"start": 5, "whole": 13, "generator": 6}}
            | {"best_check_words": 279},
            "ru-x": row(0.5, 0.7)
            | {"best_decoder_adapter": "generator", "best_check_missed": {"start": 9, "whole": 17, "earlier": 15}}
            | {"best_check_words": 279, "best_earlier_step": 120},
        },
        "enroll_seconds": 20.0,
    }
    bench._summarise(results, ("best",))
    out = bench._table(results, ("best",))
    it, ru, mean = results["speakers"]["it-x"], results["speakers"]["ru-x"], results["mean"]
    assert it["best_gap_closed_resemblyzer"] == 0.5 and it["best_gap_closed_own_resemblyzer"] == 0.85
    assert "best_gap_closed_own_dvector" not in ru and mean["own_speakers"] == 1
    assert mean["best_gap_closed_own_dvector"] == 0.85  # over it-x alone, with it-x's ceiling
    assert mean["best_gap_closed_resemblyzer"] == pytest.approx((0.725 - 0.55) / (0.9 - 0.55), abs=1e-3)
    rows = {(r[0], r[2]): r for r in out["table"][1:]}
    assert rows[("it-x", "dvector")][-1] == "85%" and rows[("ru-x", "dvector")][-3:] == ["-", "-", "-"]
    assert rows[("MEAN*", "resemblyzer")][-1] == "85%"
    assert (
        "intelligibility check: it-x best generator (words missed of 279: start voice 5, whole 13, generator 6), "
        "ru-x best generator (words missed of 279: start voice 9, whole 17, earlier (step 120) 15, generator not "
        "checked)" in " ".join(out["notes"])
    )


def test_bench_clone_caches_stock_scores_by_their_inputs(tmp_path, monkeypatch):
    """The stock baseline (~6 min a speaker) is computed once per set of inputs and read back after; other
    held-out references, voices or loudness are other inputs, and --no-cache recomputes."""
    from types import SimpleNamespace

    from voxclone.bench import clone as bench

    monkeypatch.setenv("VOXCLONE_HOME", str(tmp_path))
    computed = []

    def compute(self, say=lambda m: None):
        computed.append(self.names)
        return {"stock_resemblyzer": 0.7, "stock_voice_resemblyzer": self.names[0]}

    monkeypatch.setattr(bench.StockScores, "compute", compute)
    tts = SimpleNamespace(engine=SimpleNamespace(path="kokoro.onnx"))
    encoders = {"resemblyzer": (None, np.array([0.6, 0.8])), "dvector": (None, np.array([1.0, 0.0]))}

    def scores(names=("af_heart", "af_bella"), refs=encoders, level=-20.0):
        return bench.StockScores(tts, None, list(names), refs, 0, "it", ["Ciao."], level)

    first = scores()
    row = first.row()
    assert not first.cached and row["stock_voice_resemblyzer"] == "af_heart" and len(computed) == 1
    again = scores()
    assert again.cached and again.row() == row and len(computed) == 1 and again.path == first.path
    other_refs = {**encoders, "dvector": (None, np.array([0.0, 1.0]))}
    for other in (scores(names=("af_bella", "af_heart")), scores(refs=other_refs), scores(level=-23.0)):
        assert not other.cached and other.path != first.path
    assert list(tmp_path.glob("bench-cache/*.tmp")) == []  # written whole, then renamed
    fresh = bench.StockScores(tts, None, ["af_heart", "af_bella"], encoders, 0, "it", ["Ciao."], -20.0, False)
    assert not fresh.cached and fresh.row() == row and len(computed) == 2


def test_scoring_hears_every_clip_at_one_loudness(tts):
    """The d-vector hears level (a log-mel of the raw samples): the same speech 12 dB quieter is another
    embedding. `bench clone` and `voxclone eval` bring every clip to one loudness first, so only the voice
    is compared."""
    from voxclone.bench.dvector import DVectorEncoder
    from voxclone.cloning.evaluate import at_loudness

    d = DVectorEncoder()
    x = tts.speak(SENTENCES[0][0], voice="af_heart").samples
    quiet = x * 10 ** (-12 / 20)
    assert float(d.embed(x, 24_000) @ d.embed(quiet, 24_000)) < 0.95
    heard = at_loudness(d.embed, -20.0)
    assert float(heard(x, 24_000) @ heard(quiet, 24_000)) > 0.999
    assert heard(np.zeros(24_000, np.float32), 24_000).shape == (256,)  # silence: no gain, no error


def test_cli_clone_show_say_delete(speaker_dir, tmp_path):
    import subprocess
    import sys

    def vox(*args):
        return subprocess.run(
            [sys.executable, "-m", "voxclone.cli", *args], capture_output=True, text=True, timeout=600
        )

    r = vox("clone", "cli-voice", str(speaker_dir), "--consent-waiver", "test")
    assert r.returncode == 0, r.stderr
    assert "cli-voice" in r.stdout
    shown = json.loads(vox("voices", "show", "cli-voice").stdout)
    assert shown["consent"]["kind"] == "waiver"
    assert vox("say", "Testing my voice.", "-v", "cli-voice", "-o", str(tmp_path / "me.wav")).returncode == 0
    listed = json.loads(vox("voices", "--json").stdout)
    assert any(v["name"] == "cli-voice" and v["kind"] == "cloned" for v in listed)
    r = vox("voices", "delete", "cli-voice", "--yes")
    assert r.returncode == 0 and "deleted" in r.stdout
    r = vox("say", "Gone.", "-v", "cli-voice", "-o", str(tmp_path / "gone.wav"))
    assert r.returncode == 2 and "unknown voice" in r.stderr


def test_demo_clones_a_public_recording_and_speaks(tmp_path):
    """The README's main job, end to end: Debian's Asterisk prompts -> instant voice -> English."""
    import os
    import subprocess
    import sys

    out = tmp_path / "demo.wav"
    env = {**os.environ, "VOXCLONE_LIBRARY": str(tmp_path / "library")}
    r = subprocess.run(
        [sys.executable, "-m", "voxclone.cli", "demo", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    data, rate = sf.read(out)
    assert rate == 24_000 and len(data) / rate > 3
    assert "demo-it-carlo" in r.stdout
    assert (tmp_path / "library" / "demo-it-carlo" / "voice.json").is_file()
