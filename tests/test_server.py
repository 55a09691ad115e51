"""The HTTP server on a real loopback port: OpenAI's own client, accounts, limits, voices, jobs."""

from __future__ import annotations

import io
import sqlite3
import threading
import time

import httpx
import numpy as np
import pytest
import soundfile as sf

from voxclone.server.app import ServerConfig, create_app
from voxclone.server.jobs import INTERRUPTED, Jobs
from voxclone.server.local import LocalServer

LONG = " ".join(
    [
        "The first sentence is here to start the stream.",
        "A second one follows it, a little longer than the first.",
        "Then a third sentence arrives, and a fourth after that.",
        "The fifth closes the paragraph with a full stop.",
    ]
    * 3
)


def _decode(data: bytes) -> tuple[np.ndarray, int]:
    import av

    with av.open(io.BytesIO(data)) as c:
        rate = c.streams.audio[0].rate
        parts = [f.to_ndarray().reshape(-1) for f in c.decode(audio=0)]
    return np.concatenate(parts).astype(np.float32), rate


@pytest.fixture(scope="module")
def served(tts, tmp_path_factory):
    app = create_app(ServerConfig(root=tmp_path_factory.mktemp("server"), rate=50, burst=100), tts=tts)
    key = app.state.server.ensure_admin()
    with LocalServer(app) as url:
        yield url, key, app.state.server


def _client(url, key):
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120)


@pytest.fixture(scope="module")
def users(served):
    url, admin_key, _ = served
    with _client(url, admin_key) as admin:
        alice = admin.post("/v1/accounts", json={"name": "alice"}).json()["api_key"]
        bob = admin.post("/v1/accounts", json={"name": "bob"}).json()["api_key"]
    return alice, bob


def test_health_metrics_and_keys_are_required(served):
    url, key, _ = served
    assert httpx.get(f"{url}/healthz").json()["status"] == "ok"
    r = httpx.post(f"{url}/v1/audio/speech", json={"model": "tts-1", "input": "Hi.", "voice": "alloy"})
    assert r.status_code == 401 and "API key" in r.json()["error"]["message"]
    r = httpx.get(f"{url}/v1/voices", headers={"Authorization": "Bearer vx-not-a-real-key"})
    assert r.status_code == 401
    with _client(url, key) as c:
        assert c.get("/v1/me").json()["admin"] is True
    text = httpx.get(f"{url}/metrics").text
    assert "voxclone_requests_total" in text and 'status="401"' in text
    assert "voxclone_preemptions " in text and "voxclone_preempted_seconds " in text


def test_the_official_openai_client_works_unchanged(served):
    from openai import OpenAI

    from voxclone.safeguards.watermark import shared

    url, key, _ = served
    client = OpenAI(base_url=f"{url}/v1", api_key=key)
    audio = client.audio.speech.create(
        model="tts-1", voice="alloy", input="Hello from a compatible server.", response_format="wav"
    )
    x, rate = _decode(audio.content)
    assert rate == 24_000 and 1.0 < len(x) / rate < 6.0
    assert shared().detect(x, rate).marked  # the watermark is on what leaves the server
    chunks = []
    with client.audio.speech.with_streaming_response.create(
        model="gpt-4o-mini-tts", voice="bf_emma", input=LONG, response_format="mp3"
    ) as response:
        assert response.headers["content-type"] == "audio/mpeg"
        assert response.headers["x-voxclone-watermark"] == "perth"
        for chunk in response.iter_bytes():
            chunks.append(chunk)
    x, rate = _decode(b"".join(chunks))
    assert len(chunks) > 3 and len(x) / rate > 20  # it streamed, piece by piece


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac", "wav", "pcm"])
def test_every_response_format_decodes(served, fmt):
    url, key, _ = served
    with _client(url, key) as c:
        r = c.post(
            "/v1/audio/speech",
            json={"model": "tts-1", "input": "One two three four.", "voice": "am_michael", "response_format": fmt},
        )
    assert r.status_code == 200, r.text
    if fmt == "pcm":
        seconds = len(r.content) / 2 / 24_000
    else:
        x, rate = _decode(r.content)
        seconds = len(x) / rate
    assert 1.0 < seconds < 5.0


def test_whole_file_carries_labels_and_content_credentials(served, tmp_path):
    from voxclone.safeguards import metadata, provenance

    url, key, _ = served
    with _client(url, key) as c:
        r = c.post(
            "/v1/audio/speech",
            json={"input": "A signed file.", "voice": "af_heart", "response_format": "wav", "stream": False},
        )
    assert r.status_code == 200 and int(r.headers["content-length"]) == len(r.content)
    path = tmp_path / "signed.wav"
    path.write_bytes(r.content)
    assert metadata.says_synthetic(metadata.read(path))
    manifest = provenance.read(path)
    assert manifest and manifest["state"] == "Valid"


def test_a_long_whole_file_does_not_hold_the_model_from_a_stream(served):
    url, key, _ = served
    done = {}

    def whole_file():
        with _client(url, key) as c:
            r = c.post("/v1/audio/speech", json={"input": LONG, "response_format": "wav", "stream": False})
        done["file"] = (time.monotonic(), r.status_code, len(r.content))

    t = threading.Thread(target=whole_file)
    t.start()
    time.sleep(1.0)  # the file's first pieces are under way
    with (
        _client(url, key) as c,
        c.stream("POST", "/v1/audio/speech", json={"input": "Me first.", "response_format": "pcm"}) as r,
    ):
        assert next(r.iter_bytes())
        first_at = time.monotonic()
    t.join()
    assert first_at < done["file"][0]  # the stream did not wait for the whole file
    assert done["file"][1] == 200 and done["file"][2] > 24_000 * 2 * 20  # over 20 s of speech


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"model": "tts-1", "input": "", "voice": "alloy"}, 400, "empty"),
        ({"model": "tts-1", "input": "?!", "voice": "alloy"}, 400, "nothing to say"),
        ({"model": "tts-1", "input": "Hi.", "voice": "nobody_here"}, 404, "unknown voice"),
        ({"model": "tts-1", "input": "Hi.", "voice": "alloy", "speed": 4.0}, 400, "speed"),
        ({"model": "dall-e", "input": "Hi.", "voice": "alloy"}, 400, "model"),
        ({"model": "tts-1", "input": "Hi.", "voice": "alloy", "response_format": "mp4"}, 400, "response_format"),
        ({"model": "tts-1", "input": "Hi.", "voice": "alloy", "colour": "blue"}, 400, "colour"),
        ({"model": "tts-1", "input": "word " * 5000, "voice": "alloy"}, 400, "limit"),
    ],
)
def test_bad_speech_requests_get_clear_4xx(served, body, status, words):
    url, key, _ = served
    with _client(url, key) as c:
        r = c.post("/v1/audio/speech", json=body)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]["message"].lower()


def test_the_openai_client_raises_with_our_message(served):
    import openai

    url, key, _ = served
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
    with pytest.raises(openai.NotFoundError, match="unknown voice"):
        client.audio.speech.create(model="tts-1", voice="nobody_here", input="Hello.")
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{url}/v1", api_key="vx-wrong", max_retries=0).audio.speech.create(
            model="tts-1", voice="alloy", input="Hello."
        )


def test_the_event_loop_stays_free_while_speaking(served):
    url, key, _ = served
    with (
        _client(url, key) as c,
        c.stream(
            "POST", "/v1/audio/speech", json={"input": LONG * 2, "voice": "af_heart", "response_format": "pcm"}
        ) as r,
    ):
        it = r.iter_bytes()
        next(it)
        health = httpx.get(f"{url}/healthz", timeout=10).json()  # answered mid-stream
        assert health["streams"] >= 1
        r.close()  # a client that hangs up frees its slot


def test_accounts_are_isolated_per_endpoint(served, users):
    url, admin_key, _ = served
    alice, bob = users
    with _client(url, alice) as a, _client(url, bob) as b:
        assert a.post("/v1/voices", json={"name": "alices-voice"}).status_code == 201
        assert [v["name"] for v in b.get("/v1/voices").json()["voices"]] == []
        assert "alices-voice" in [v["name"] for v in a.get("/v1/voices").json()["voices"]]
        wav = io.BytesIO()
        sf.write(wav, np.zeros(24_000, np.float32), 24_000, format="WAV")
        for method, path, kwargs in [
            ("GET", "/v1/voices/alices-voice", {}),
            ("GET", "/v1/voices/alices-voice/report", {}),
            ("POST", "/v1/voices/alices-voice/samples", {"files": {"files": ("a.wav", wav.getvalue(), "audio/wav")}}),
            ("POST", "/v1/voices/alices-voice/consent", {"json": {"purpose": "x"}}),
            ("GET", "/v1/voices/alices-voice/consent", {}),
            (
                "PUT",
                "/v1/voices/alices-voice/consent/recording",
                {"files": {"file": ("c.wav", wav.getvalue(), "audio/wav")}},
            ),
            ("POST", "/v1/voices/alices-voice/build", {"json": {}}),
            ("GET", "/v1/voices/alices-voice/export", {}),
            ("DELETE", "/v1/voices/alices-voice", {}),
        ]:
            r = b.request(method, path, **kwargs)
            assert r.status_code == 404, (method, path, r.status_code, r.text)
        r = b.post("/v1/audio/speech", json={"input": "Hello.", "voice": "alices-voice"})
        assert r.status_code == 404
        # bob may use his own name space, even the same name
        assert b.post("/v1/voices", json={"name": "alices-voice"}).status_code == 201
        assert a.get("/v1/voices/alices-voice").status_code == 200
        # accounts are admin business
        assert a.post("/v1/accounts", json={"name": "mallory"}).status_code == 403
        assert a.get("/v1/accounts").status_code == 403
        r = a.post("/v1/voices/alices-voice/build", json={"waiver": "research"})
        assert r.status_code in (400, 403)


def test_uploads_are_checked_and_nothing_is_kept_on_failure(served, users):
    url, _, srv = served
    alice, _ = users
    with _client(url, alice) as a:
        a.post("/v1/voices", json={"name": "uploads"})
        r = a.post("/v1/voices/uploads/samples", files={"files": ("x.wav", b"RIFF....not audio at all", "audio/wav")})
        assert r.status_code == 400 and "x.wav" in r.json()["error"]["message"]
        r = a.post("/v1/voices/uploads/samples", files={"files": ("x.exe", b"MZ", "application/octet-stream")})
        assert r.status_code == 400 and "unsupported" in r.json()["error"]["message"]
        assert a.get("/v1/voices/uploads").json()["samples"] == []
        r = a.post("/v1/voices/uploads/build", json={})
        assert r.status_code == 400 and "no samples" in r.json()["error"]["message"]
        assert a.post("/v1/voices", json={"name": "Bad Name!"}).status_code == 400
        assert a.post("/v1/voices", json={"name": "uploads"}).status_code == 409


def test_limits_answer_429_413_and_503_with_retry_after(tts, tmp_path):
    app = create_app(ServerConfig(root=tmp_path, rate=1, burst=2, max_streams=1, max_upload_bytes=200_000), tts=tts)
    key = app.state.server.ensure_admin()
    with LocalServer(app) as url, _client(url, key) as c:
        codes = [c.get("/v1/me").status_code for _ in range(4)]
        assert codes[:2] == [200, 200] and 429 in codes[2:]
        r = c.get("/v1/me")
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    app = create_app(ServerConfig(root=tmp_path / "b", rate=0, max_streams=1, max_upload_bytes=200_000), tts=tts)
    key = app.state.server.ensure_admin()
    with LocalServer(app) as url, _client(url, key) as c:
        r = c.post("/v1/detect", files={"file": ("big.wav", b"0" * 300_000, "audio/wav")})
        assert r.status_code == 413
        with c.stream("POST", "/v1/audio/speech", json={"input": LONG, "response_format": "pcm"}) as held:
            next(held.iter_bytes())
            r = c.post("/v1/audio/speech", json={"input": "Me too.", "response_format": "pcm"})
            assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1
            held.close()
        # the slot comes back once the first client hangs up, which the server sees when the piece it is
        # synthesising is done (seconds on a CPU without VNNI)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            r = c.post("/v1/audio/speech", json={"input": "Me too.", "response_format": "pcm"})
            if r.status_code == 200:
                break
            threading.Event().wait(0.2)
        assert r.status_code == 200


@pytest.mark.parametrize("case", ["preempt", "no-preempt", "model-awaited"])
def test_a_first_piece_may_stop_a_later_piece_which_reruns_unchanged(tts, case):
    """Stopped only when preemption is on and no other thread (a build's render) waits for the model:
    that thread would get the model instead of the newcomer."""
    from voxclone.api import style_for
    from voxclone.server.limits import Scheduler

    engine, voice, g2p = tts.engine, tts._voice("af_heart"), tts._g2p_for("en-us")

    def tokens(text):
        return [g2p.vocab[c] for c in g2p.phonemize(text, []) if c in g2p.vocab]

    long = tokens(LONG[:200])
    short = tokens("Hello there.")
    alone = engine.infer(long, style_for(voice.pack, len(long)))
    sched = Scheduler(1, preempt=case != "no-preempt")
    sched.run(1, lambda: engine.infer(short, style_for(voice.pack, len(short))))  # learns the speed
    finished, out = [], {}

    def later_piece():
        out["long"] = sched.run(3, lambda: engine.infer(long, style_for(voice.pack, len(long))))
        finished.append("long")

    threads = [threading.Thread(target=later_piece)]
    threads[0].start()
    deadline = time.monotonic() + 60
    while not any(turn.options is not None for turn in sched._running) and time.monotonic() < deadline:
        time.sleep(0.005)  # until the later piece is inside the model
    if case == "model-awaited":  # a build renders without the scheduler, waiting for the model's lock
        threads.append(threading.Thread(target=engine.infer, args=(short, style_for(voice.pack, len(short)))))
        threads[1].start()
        while not engine.contended() and time.monotonic() < deadline:
            time.sleep(0.005)
    sched.run(0, lambda: engine.infer(short, style_for(voice.pack, len(short))))
    finished.append("first")
    for t in threads:
        t.join()
    stopped = case == "preempt"
    assert finished == (["first", "long"] if stopped else ["long", "first"])
    assert sched.preemptions == int(stopped) and (sched.preempted_seconds > 0) == stopped
    np.testing.assert_allclose(out["long"], alone, atol=1e-4)  # the rerun is the same audio
    assert not engine.contended()


def test_first_pieces_go_shortest_first_and_may_stop_a_longer_first_piece(tts):
    """Requests that arrive together at an idle server: the first got the idle server's longer first
    piece before the others were in; their short first pieces stop it (it reruns, the same audio,
    after them) and queue shortest first, so the burst's first bytes come in the order of their cost."""
    from voxclone.api import style_for
    from voxclone.server.limits import Scheduler

    engine, voice, g2p = tts.engine, tts._voice("af_heart"), tts._g2p_for("en-us")

    def tokens(text):
        return [g2p.vocab[c] for c in g2p.phonemize(text, []) if c in g2p.vocab]

    def speak(toks):
        return engine.infer(toks, style_for(voice.pack, len(toks)))

    sizes = {"long": tokens(LONG[:150]), "short": tokens("Hi."), "medium": tokens("Hello there, friend.")}
    alone = speak(sizes["long"])
    sched = Scheduler(1)
    sched.run(1, lambda: speak(sizes["short"]))  # learns the speed
    finished, out = [], {}

    def stream(name):  # a stream's first step, as the server schedules it
        out[name] = list(sched.iterate((speak(sizes[name]) for _ in [0]), lambda: None))[0]
        finished.append(name)

    def until(condition):
        deadline = time.monotonic() + 60
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.002)

    threads = {name: threading.Thread(target=stream, args=(name,)) for name in sizes}
    threads["long"].start()
    until(lambda: any(t.options is not None and t.tokens == len(sizes["long"]) for t in sched._running))
    threads["short"].start()
    until(lambda: sched.preemptions or any(t.taken for t in sched._running))  # it stops the long piece
    threads["medium"].start()  # while the short piece runs: longer than it, shorter than the long one
    for t in threads.values():
        t.join()
    assert finished == ["short", "medium", "long"]
    assert sched.preemptions == 1  # the medium piece did not stop the short one
    np.testing.assert_allclose(out["long"], alone, atol=1e-4)  # the rerun is the same audio


def _first_chunk_bytes(url: str, key: str, text: str) -> int:
    """Bytes of a pcm stream's first HTTP chunk: the server sends each piece as one chunk."""
    import json
    import socket
    from urllib.parse import urlparse

    u = urlparse(url)
    body = json.dumps({"input": text, "response_format": "pcm"}).encode()
    head = (
        f"POST /v1/audio/speech HTTP/1.1\r\nHost: {u.netloc}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection((u.hostname, u.port), timeout=60) as sock, sock.makefile("rb") as f:
        sock.sendall(head.encode() + body)
        assert b" 200 " in f.readline()
        headers = []
        while (line := f.readline()) not in (b"\r\n", b""):
            headers.append(line.lower())
        assert b"transfer-encoding: chunked\r\n" in headers
        return int(f.readline().split(b";")[0], 16)


def test_a_busy_server_cuts_a_newcomers_first_piece_shorter(served):
    url, key, _ = served
    text = "Please call Stella and ask her to bring these things with her from the store."
    idle = _first_chunk_bytes(url, key, text)  # "Please call Stella"
    with (
        _client(url, key) as c,
        c.stream("POST", "/v1/audio/speech", json={"input": LONG * 2, "response_format": "pcm"}) as r,
    ):
        next(r.iter_bytes())  # another stream is under way
        busy = _first_chunk_bytes(url, key, text)  # "Please call"
        r.close()
    assert 0 < busy < 0.8 * idle


def test_stream_steps_that_run_no_model_do_not_queue_for_a_slot():
    from voxclone.server.limits import Scheduler

    sched = Scheduler(1)
    held, go = threading.Event(), threading.Event()
    t = threading.Thread(target=sched.run, args=(0, lambda: (held.set(), go.wait(30))))
    t.start()
    held.wait(30)
    out, released = [], []
    try:  # the only slot is taken, yet a stream's closing step (no model run) does not wait for it
        reader = threading.Thread(target=lambda: out.extend(sched.iterate(iter("ab"), lambda: released.append(1))))
        reader.start()
        reader.join(10)
        assert out == ["a", "b"] and released == [1]
    finally:
        go.set()
        t.join()


def test_detect_endpoint(served, tts):
    url, key, _ = served
    marked = tts.speak("This one is marked.", voice="af_heart")
    plain = tts._render("This one is not marked.", voice="af_heart")
    with _client(url, key) as c:
        for audio, expected in ((marked, True), (plain, False)):
            buf = io.BytesIO()
            sf.write(buf, audio.samples, audio.sample_rate, format="WAV")
            r = c.post("/v1/detect", files={"file": ("clip.wav", buf.getvalue(), "audio/wav")})
            assert r.status_code == 200 and r.json()["watermarked"] is expected


def test_a_job_cut_by_a_restart_is_failed_cleanly(tmp_path):
    jobs = Jobs(tmp_path / "jobs.sqlite")
    with sqlite3.connect(tmp_path / "jobs.sqlite") as db:
        db.execute(
            "INSERT INTO jobs (id, account, voice, kind, state, created, updated) VALUES ('j1','a','v','build','running','t','t')"
        )
    del jobs
    again = Jobs(tmp_path / "jobs.sqlite")
    job = again.get("j1")
    assert job.state == "failed" and job.error == INTERRUPTED


def test_voxclone_serve_makes_one_admin_and_answers(tmp_path):
    from voxclone.server.local import spawn, stop

    proc, url = spawn(tmp_path)
    key = (tmp_path / "admin.key").read_text().strip()
    assert oct((tmp_path / "admin.key").stat().st_mode & 0o777) == "0o600"
    with _client(url, key) as c:
        assert c.get("/v1/me").json()["name"] == "admin"
        assert "voxclone" in c.get("/").text  # the web UI
    stop(proc)
    assert key in (tmp_path / "serve.log").read_text()  # shown once, on first start
    proc, url = spawn(tmp_path)
    with _client(url, key) as c:
        assert len(c.get("/v1/accounts").json()["accounts"]) == 1  # no second admin
    stop(proc)
    assert (tmp_path / "serve.log").read_text().count(key) == 1


def test_bench_serve_reports_latency_throughput_and_errors(tmp_path):
    import json
    import subprocess
    import sys

    out = tmp_path / "serve.json"
    cmd = [sys.executable, "-m", "voxclone.cli", "bench", "serve", "--clients", "1,4", "--seconds", "4"]
    done = subprocess.run([*cmd, "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    r = json.loads(out.read_text())
    assert r["errors_5xx"] == 0 and r["preempt"] is True
    assert 0 < r["p50_first_byte_s_4"] <= r["p95_first_byte_s_4"] and r["throughput_4"] > 0
    four = r["levels"][1]
    assert four["clients"] == 4 and four["ok"] >= 4 and four["preemptions"] >= 0
    assert "p95 after opening" in done.stdout
