"""The `voxclone` command as a user runs it (real subprocesses)."""

import json
import subprocess
import sys

import soundfile as sf


def vox(*args, stdin=None, env=None):
    return subprocess.run(
        [sys.executable, "-m", "voxclone.cli", *args], input=stdin, capture_output=True, text=True, timeout=300, env=env
    )


def test_version():
    r = vox("--version")
    assert r.returncode == 0 and r.stdout.startswith("voxclone ")


def test_say_text_file_and_stdin(tmp_path):
    out = tmp_path / "hello.mp3"
    r = vox("say", "Hello from the command line.", "-v", "bf_emma", "-o", str(out), "--speed", "1.1", "--pitch", "1")
    assert r.returncode == 0, r.stderr
    data, rate = sf.read(out)
    assert rate == 24_000 and len(data) / rate > 1.0
    text_file = tmp_path / "in.txt"
    text_file.write_text("Read from a file.\n\nTwo paragraphs.", encoding="utf-8")
    r = vox("say", "-f", str(text_file), "-o", str(tmp_path / "file.flac"), "--sample-rate", "16000")
    assert r.returncode == 0, r.stderr
    assert sf.info(tmp_path / "file.flac").samplerate == 16_000
    r = vox("say", "-", "-o", str(tmp_path / "stdin.ogg"), stdin="Piped in on standard input.")
    assert r.returncode == 0, r.stderr
    assert sf.info(tmp_path / "stdin.ogg").duration > 1.0


def test_play_without_a_sound_device_does_not_fail(tmp_path):
    r = vox("say", "Can you hear me?", "-o", str(tmp_path / "p.wav"), "--play")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "p.wav").is_file()


def test_voices_lists_language_and_gender():
    r = vox("voices", "--json")
    assert r.returncode == 0, r.stderr
    voices = {v["name"]: v for v in json.loads(r.stdout)}
    assert len(voices) == 54
    assert voices["af_heart"]["language"] == "en-us" and voices["af_heart"]["gender"] == "female"
    assert voices["bm_george"]["language"] == "en-gb" and voices["bm_george"]["gender"] == "male"
    assert {v["language"] for v in voices.values()} == {"en-us", "en-gb", "es", "fr", "hi", "it", "ja", "pt-br", "zh"}
    table = vox("voices")
    assert table.returncode == 0 and "af_heart" in table.stdout and "en-us" in table.stdout


def test_errors_exit_2_with_a_message_and_no_file(tmp_path):
    cases = [
        (["say", "", "-o", str(tmp_path / "a.wav")], "empty"),
        (["say", "Hi.", "-v", "nobody", "-o", str(tmp_path / "b.wav")], "unknown voice"),
        (["say", "Hi.", "-o", str(tmp_path / "c.xyz")], "unknown audio extension"),
        (["say", "Hi.", "-o", str(tmp_path / "missing" / "d.wav")], "does not exist"),
        (["say", "Hi.", "--speed", "9", "-o", str(tmp_path / "e.wav")], "speed"),
        (["say", "Hi.", "--lang", "zh", "-o", str(tmp_path / "f.wav")], "not supported"),
        (["say", "-f", str(tmp_path / "nofile.txt"), "-o", str(tmp_path / "g.wav")], "cannot read"),
        (["say", "Hi."], "--output"),
    ]
    for args, message in cases:
        r = vox(*args, stdin="")
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert message in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr
    assert not list(tmp_path.rglob("*.*"))


def test_huge_file_is_refused(tmp_path):
    big = tmp_path / "big.txt"
    big.write_text("word " * 400_000, encoding="utf-8")  # 2 MB
    r = vox("say", "-f", str(big), "-o", str(tmp_path / "big.wav"))
    assert r.returncode == 2 and "limit" in r.stderr
    assert not (tmp_path / "big.wav").exists()
