"""Safeguards with the real watermarker, Whisper, speaker encoder and SQLite."""

import json
import random
import sqlite3
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from voxclone import Voxclone
from voxclone.bench.sentences import SENTENCES
from voxclone.cloning.clone import clone
from voxclone.cloning.library import LibraryError, VoiceLibrary
from voxclone.errors import VoiceNotFoundError
from voxclone.safeguards.audit import AuditLog
from voxclone.safeguards.consent import ConsentError
from voxclone.safeguards.detect import detect_file
from voxclone.safeguards.protected import ProtectedVoiceError
from voxclone.safeguards.watermark import shared


def _vox(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "voxclone.cli", *args], capture_output=True, text=True, timeout=600, env=env
    )


# ------------------------------------------------------------------ watermark, labels, detect


@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg", "mp3"])
def test_every_saved_format_is_watermarked_and_labelled(tts, tmp_path, fmt):
    path = tmp_path / f"out.{fmt}"
    tts.save("Every file that leaves voxclone carries its mark.", path, voice="am_michael")
    found = detect_file(path)
    assert found["watermarked"] and found["confidence"] > 0.9
    assert found["labels_say_synthetic"]
    assert "voice=am_michael" in found["labels"]["comment"]
    if fmt == "ogg":  # C2PA has no Ogg binding
        assert found["c2pa"] is None
    else:
        c2pa = found["c2pa"]
        assert c2pa["state"] == "Valid" and c2pa["generator"] == "voxclone"
        assert c2pa["digital_source_type"].endswith("trainedAlgorithmicMedia")
        assert c2pa["parameters"]["voice"] == "am_michael"
        assert sf.read(path)[0].size > 24_000  # the signed file is still ordinary audio


def test_a_tampered_file_fails_its_c2pa_check(tts, tmp_path):
    path = tmp_path / "signed.wav"
    tts.save("Change one sample and the manifest no longer matches.", path)
    data = bytearray(path.read_bytes())
    data[data.find(b"data") + 8 + 2000] ^= 0x55  # one audio sample
    path.write_bytes(bytes(data))
    assert detect_file(path)["c2pa"]["state"] == "Invalid"


def test_speak_and_stream_are_marked_but_real_speech_is_not(tts):
    wm = shared()
    audio = tts.speak("The stream and the whole answer are both marked.")
    assert wm.detect(audio.samples, audio.sample_rate).marked
    piece = next(iter(tts.stream("A first phrase, then more words follow here.", sample_rate=16_000)))
    assert piece.sample_rate == 16_000 and piece.tags["artist"].startswith("voxclone")
    plain = tts._render("The same words, never leaving the process unmarked.")
    assert not wm.detect(plain.samples, plain.sample_rate).marked
    assert wm.detect(plain.samples, plain.sample_rate, search_speed=False).confidence < 0.1


def test_detect_finds_the_mark_after_a_speed_change(tts):
    from voxclone.audio import resample

    wm = shared()
    audio = tts.speak("Played back ten percent faster, the mark must still be found.")
    faster = resample(audio.samples, int(24_000 * 1.1), 24_000)  # tape-style: pitch moves too
    assert not wm.detect(faster, 24_000, search_speed=False).marked  # why the search exists
    found = wm.detect(faster, 24_000)
    assert found.marked and found.speed != 1.0


def test_watermark_off_needs_the_flag_and_is_logged(tmp_path, caplog):
    lib = VoiceLibrary(tmp_path / "lib")
    plain = Voxclone(library=lib, watermark=False)
    assert "watermarking is OFF" in caplog.text
    audio = plain.speak("Research on the watermark itself.")
    assert not shared().detect(audio.samples, audio.sample_rate).marked
    events = [e.event for e in lib.audit.entries()]
    assert events == ["watermark_disabled", "speech_generated"]
    assert lib.audit.entries()[-1].details["watermarked"] is False


def test_detect_cli_exit_codes(tts, tmp_path):
    marked = tmp_path / "marked.wav"
    tts.save("Detect me.", marked)
    plain = tmp_path / "plain.wav"
    sf.write(plain, tts._render("Nobody marked me.").samples, 24_000)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00garbage")
    r = _vox("detect", str(marked), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["watermarked"] is True
    r = _vox("detect", str(marked), str(plain))
    assert r.returncode == 1 and "no voxclone watermark found" in r.stdout
    r = _vox("detect", str(corrupt))
    assert r.returncode == 2 and "corrupt.wav" in r.stdout


# ------------------------------------------------------------------ audit log


def test_audit_chain_detects_edits_and_cut_tails(tmp_path):
    log = AuditLog(tmp_path / "audit.sqlite")
    for i in range(5):
        log.append("speech_generated", None, seconds=i)
    assert log.verify().ok and log.verify().entries == 5
    con = sqlite3.connect(log.path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("UPDATE entries SET details = '{}' WHERE seq = 2")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("DELETE FROM entries WHERE seq = 5")
    # someone with the file drops the guard and edits a row
    con.execute("DROP TRIGGER entries_no_update")
    con.execute("""UPDATE entries SET details = '{"seconds":99}' WHERE seq = 3""")
    con.commit()
    v = log.verify()
    assert not v.ok and v.first_bad_seq == 3 and "altered" in v.problem


def test_audit_reports_removed_triggers(tmp_path):
    log = AuditLog(tmp_path / "audit.sqlite")
    log.append("speech_generated", None, seconds=1)
    con = sqlite3.connect(log.path)
    con.execute("DROP TRIGGER entries_no_delete")
    con.commit()
    v = log.verify()  # reading must not quietly put the guard back
    assert not v.ok and "triggers were removed" in v.problem


def test_audit_detects_a_removed_tail_and_the_cli_says_so(tmp_path):
    lib = VoiceLibrary(tmp_path / "lib")
    for i in range(3):
        lib.audit.append("speech_generated", None, seconds=i)
    env = {**__import__("os").environ, "VOXCLONE_LIBRARY": str(lib.root)}
    r = _vox("audit", "--verify", env=env)
    assert r.returncode == 0 and "3 entries" in r.stdout
    con = sqlite3.connect(lib.audit.path)
    con.execute("DROP TRIGGER entries_no_delete")
    con.execute("DELETE FROM entries WHERE seq = 3")
    con.commit()
    r = _vox("audit", "--verify", env=env)
    assert r.returncode == 1 and "entries 3..3 were removed" in r.stderr


# ------------------------------------------------------------------ consent, deletion, protection


def _texts(start, n):
    return [" ".join(t for t, _ in SENTENCES[i : i + 2]) for i in range(start, start + 2 * n, 2)]


@pytest.fixture(scope="module")
def person(tmp_path_factory):
    """A stand-in "person": unmarked bf_emma speech (real people are not watermarked)."""
    d = tmp_path_factory.mktemp("person")
    lib = VoiceLibrary(tmp_path_factory.mktemp("lib"))
    voice = Voxclone(library=lib, watermark=False)
    for i, text in enumerate(_texts(20, 3)):
        sf.write(d / f"take{i}.wav", voice._render(text, voice="bf_emma").samples, 24_000)
    return d, lib, voice


def _reading(voxy, lib, name, voice, tmp_path, words=None, marked=False):
    st = lib.consents.issue(name, "Emma Example", "voice banking", rng=random.Random(7))
    text = st.text if words is None else words
    path = tmp_path / f"consent-{voice}.wav"
    audio = voxy.speak(text, voice=voice) if marked else voxy._render(text, voice=voice)
    sf.write(path, audio.samples, audio.sample_rate)
    return st, path


@pytest.mark.slow
def test_consent_read_by_the_speaker_is_verified_and_the_code_is_used_up(person, tmp_path):
    d, lib, voxy = person
    st, path = _reading(voxy, lib, "emma", "bf_emma", tmp_path)
    record = clone("emma", [d], consent=path, tts=voxy, library=lib)
    c = record["consent"]
    assert c["kind"] == "recording" and c["verified"] is True and c["code_heard"]
    assert c["speaker_similarity"] > 0.8 and c["statement_id"] == st.id
    assert (lib.path("emma") / "consent.wav").is_file()
    assert voxy.speak("I gave my consent.", voice="emma").duration > 1
    with pytest.raises(ConsentError, match="no consent statement"):  # one code, one voice
        clone("emma2", [d], consent=path, tts=voxy, library=lib)
    events = [e.event for e in lib.audit.entries()]
    assert "consent_verified" in events and "voice_built" in events


@pytest.mark.slow
def test_wrong_words_other_person_and_synthetic_consent_are_refused(person, tmp_path):
    d, lib, voxy = person
    _, path = _reading(voxy, lib, "x1", "bf_emma", tmp_path, words="I agree to everything you say, whatever it is.")
    with pytest.raises(ConsentError, match="code words"):
        clone("x1", [d], consent=path, tts=voxy, library=lib)
    _, path = _reading(voxy, lib, "x2", "am_michael", tmp_path)
    with pytest.raises(ConsentError, match="does not match"):
        clone("x2", [d], consent=path, tts=voxy, library=lib)
    marker = Voxclone(library=lib)
    _, path = _reading(marker, lib, "x3", "bf_emma", tmp_path, marked=True)
    with pytest.raises(ConsentError, match="watermark"):
        clone("x3", [d], consent=path, tts=voxy, library=lib)
    assert [n for n in lib.names() if n.startswith("x")] == []
    failed = [e for e in lib.audit.entries() if e.event == "consent_failed"]
    assert len(failed) == 3
    assert all("Emma" not in json.dumps(e.details) for e in failed)  # no personal data in the log


def test_unverified_voice_cannot_be_used(tmp_path):
    lib = VoiceLibrary(tmp_path / "lib")
    record = {"name": "nobody", "language": "en-us", "consent": {"kind": "recording", "verified": False}}
    lib.create("nobody", record, np.zeros((510, 1, 256), np.float32), np.zeros(256), {})
    with pytest.raises(LibraryError, match="no verified consent"):
        Voxclone(library=lib).speak("Hello.", voice="nobody")


@pytest.mark.slow
def test_delete_leaves_only_a_tombstone_even_while_in_use(person, tmp_path):
    d, _, _ = person
    lib = VoiceLibrary(tmp_path / "lib")
    voxy = Voxclone(library=lib)
    record = clone("gone", [d], waiver="estate of a tester", tts=voxy, library=lib)
    stream = voxy.stream("First sentence here. Second sentence there. Third one too.", voice="gone")
    first = next(stream)  # in use
    removed = lib.delete("gone")
    assert "style.npy" in removed and any(r.startswith("clips/") for r in removed)
    rest = list(stream)  # the running stream finishes with what it loaded
    assert first.duration > 0.5 and rest
    with pytest.raises(VoiceNotFoundError):
        voxy.speak("Again?", voice="gone")
    left = sorted(p.name for p in lib.root.rglob("*"))
    assert left == ["audit.head", "audit.key", "audit.sqlite"]
    dump = b"".join(p.read_bytes() for p in lib.root.iterdir())
    assert b"gone" not in dump and b"estate" not in dump  # no name, no waiver text
    (tomb,) = [e for e in lib.audit.entries() if e.event == "voice_deleted"]
    assert tomb.voice_id == record["id"] and tomb.details == {"files_removed": len(removed)}
    assert lib.audit.verify().ok


@pytest.mark.slow
def test_protected_voice_cannot_be_cloned(person, tmp_path):
    d, _, _ = person
    lib = VoiceLibrary(tmp_path / "lib")
    voxy = Voxclone(library=lib)
    from voxclone.cloning.collect import collect

    lib.protected.add("Emma Example", collect([d]).embedding, {})
    with pytest.raises(ProtectedVoiceError, match="protected voice 'Emma Example'"):
        clone("sneaky", [d], waiver="pretend estate", tts=voxy, library=lib)
    assert lib.names() == [] and lib.audit.entries()[-1].event == "clone_refused"


def test_the_mark_leaves_the_low_band_and_survives_noise(tts):
    """The residual is moved from under 500 Hz (what DNSMOS hears) to 1-2 kHz, and still decodes."""
    from scipy.signal import welch

    from voxclone.audio import resample
    from voxclone.safeguards import watermark

    wm = shared()
    plain = tts._render("A mark nobody hears must still be found after the audio has been through a noisy line.")
    y = resample(plain.samples, 24_000, watermark.PERTH_RATE)
    raw = watermark._fit(np.asarray(wm._model().apply_watermark(y, sample_rate=watermark.PERTH_RATE)), len(y))
    shaped = watermark.shape(y, raw)

    def band(x, lo, hi):
        f, p = welch(x, watermark.PERTH_RATE, nperseg=4096)
        return p[(f >= lo) & (f < hi)].sum()

    assert band(shaped - y, 50, 450) < 0.25 * band(raw - y, 50, 450)
    assert band(shaped - y, 1100, 1900) > 2.0 * band(raw - y, 1100, 1900)
    marked = wm.embed(plain.samples, 24_000)
    noise = np.random.default_rng(3).standard_normal(len(marked)).astype(np.float32)
    noisy = marked + noise * np.sqrt(np.mean(marked**2) / 100)  # 20 dB SNR
    assert wm.detect(noisy, 24_000, search_speed=False).confidence > 0.7  # 0.86 measured
    assert wm.detect(plain.samples + noise * np.sqrt(np.mean(marked**2) / 100), 24_000).confidence < 0.3


def test_bench_consent_clones_only_speakers_it_also_verifies():
    """Clones tried against a threshold fitted without their speaker would be judged by a different verifier."""
    from voxclone.bench import consent as bench

    with pytest.raises(ValueError, match=r"\['ru-voice'\] are not among the speakers tested"):
        bench.run(["fr-june", "it-carlo"], clone_speakers=["ru-voice"])
