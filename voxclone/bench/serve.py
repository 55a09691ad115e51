"""`voxclone bench serve`: the HTTP server under 1, 4 and 16 concurrent clients on loopback.

The server runs as its own process (`voxclone serve`), as in use; clients are threads here, each
asking for one benchmark sentence after another (streamed, ``response_format`` pcm so the audio's
length is exact) for a bounded time. Reported per level: time to first byte and to the full
audio (p50/p95), throughput in audio seconds per wall second, and errors by type.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from ..engine import cpu as machine
from ..server.local import spawn, stop
from .sentences import SENTENCES

RATE = 24_000


def _client(url: str, key: str, texts: list[str], until: float, offset: int, out: list[dict]) -> None:
    import httpx

    i = offset
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as c:
        while time.monotonic() < until:
            text = texts[i % len(texts)]
            i += 1
            t0 = time.perf_counter()
            first = None
            size = 0
            try:
                with c.stream(
                    "POST",
                    "/v1/audio/speech",
                    json={"model": "tts-1", "input": text, "voice": "alloy", "response_format": "pcm"},
                ) as r:
                    if r.status_code != 200:
                        r.read()
                        out.append({"status": r.status_code, "error": f"http_{r.status_code}"})
                        continue
                    for chunk in r.iter_bytes():
                        if first is None and chunk:
                            first = time.perf_counter() - t0
                        size += len(chunk)
                out.append(
                    {
                        "status": 200,
                        "opening": i == offset + 1,  # the level's opening requests all arrive at once
                        "first_byte_s": first,
                        "total_s": time.perf_counter() - t0,
                        "audio_s": size / 2 / RATE,
                    }
                )
            except httpx.HTTPError as e:
                out.append({"status": 0, "error": type(e).__name__})


def _level(url: str, key: str, clients: int, seconds: float, texts: list[str]) -> dict:
    results: list[dict] = []
    until = time.monotonic() + seconds
    t0 = time.perf_counter()
    threads = [threading.Thread(target=_client, args=(url, key, texts, until, k * 7, results)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ok = [r for r in results if r["status"] == 200]
    fb = np.array([r["first_byte_s"] for r in ok if r["first_byte_s"] is not None])
    later = np.array([r["first_byte_s"] for r in ok if r["first_byte_s"] is not None and not r["opening"]])
    total = np.array([r["total_s"] for r in ok])
    errors: dict[str, int] = {}
    for r in results:
        if r["status"] != 200:
            errors[r["error"]] = errors.get(r["error"], 0) + 1

    def pct(a: np.ndarray, q: float) -> float | None:
        return round(float(np.percentile(a, q)), 3) if a.size else None

    return {
        "clients": clients,
        "requests": len(results),
        "ok": len(ok),
        "p50_first_byte_s": pct(fb, 50),
        "p95_first_byte_s": pct(fb, 95),
        "p95_first_byte_after_opening_s": pct(later, 95),
        "p50_total_s": pct(total, 50),
        "p95_total_s": pct(total, 95),
        "audio_s": round(sum(r["audio_s"] for r in ok), 1),
        "wall_s": round(wall, 1),
        "throughput": round(sum(r["audio_s"] for r in ok) / wall, 3),
        "errors": errors,
        "errors_5xx": sum(v for k, v in errors.items() if k.startswith("http_5")),
    }


def _preemptions(url: str, key: str) -> tuple[float, float]:
    """(stops, seconds thrown away) so far, from the server's /metrics."""
    import httpx

    text = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {key}"}, timeout=30).text
    values = dict(line.split(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return float(values.get("voxclone_preemptions", 0)), float(values.get("voxclone_preempted_seconds", 0))


def run(
    levels=(1, 4, 16),
    seconds: float = 60.0,
    threads: int | None = None,
    workers: int = 1,
    preempt: bool = True,
    progress=None,
) -> dict:
    import httpx

    say = progress or (lambda m: None)
    texts = [t for t, _ in SENTENCES]
    with tempfile.TemporaryDirectory(prefix="voxclone-bench-serve-") as tmp:
        root = Path(tmp)
        say("starting the server")
        t0 = time.perf_counter()
        env = {"VOXCLONE_THREADS": str(threads)} if threads else None
        flags = ["--rate", "0", "--workers", str(workers)] + ([] if preempt else ["--no-preempt"])
        proc, url = spawn(root, *flags, env=env)
        start_s = time.perf_counter() - t0
        key = (root / "admin.key").read_text().strip()
        try:
            httpx.post(  # warm-up: the first request loads lazily built parts
                f"{url}/v1/audio/speech",
                json={"input": "Warming up.", "response_format": "pcm"},
                headers={"Authorization": f"Bearer {key}"},
                timeout=120,
            )
            rows = []
            for n in levels:
                say(f"{n} client(s) for {seconds:.0f} s")
                before = _preemptions(url, key)
                row = _level(url, key, n, seconds, texts)
                after = _preemptions(url, key)
                row["preemptions"] = int(after[0] - before[0])
                row["preempted_s"] = round(after[1] - before[1], 2)
                rows.append(row)
        finally:
            stop(proc)
    base = rows[0]
    result: dict = {
        **machine.describe(),
        "server_start_s": round(start_s, 1),
        "seconds_per_level": seconds,
        "workers": workers,
        "preempt": preempt,
        "levels": rows,
    }
    for r in rows:
        n = r["clients"]
        result[f"p50_first_byte_s_{n}"] = r["p50_first_byte_s"]
        result[f"p95_first_byte_s_{n}"] = r["p95_first_byte_s"]
        result[f"p95_first_byte_after_opening_s_{n}"] = r["p95_first_byte_after_opening_s"]
        result[f"throughput_{n}"] = r["throughput"]
    result["errors_5xx"] = sum(r["errors_5xx"] for r in rows)
    result["errors"] = {k: sum(r["errors"].get(k, 0) for r in rows) for r in rows for k in r["errors"]}
    table = [
        [
            "clients",
            "requests",
            "ok",
            "first byte p50/p95 s",
            "p95 after opening",
            "full audio p50/p95 s",
            "audio s / wall s",
            "vs 1 client",
            "stopped pieces (s lost)",
            "errors",
        ]
    ]
    for r in rows:
        ratio = r["throughput"] / base["throughput"] if base["throughput"] else 0
        table.append(
            [
                r["clients"],
                r["requests"],
                r["ok"],
                f"{r['p50_first_byte_s']} / {r['p95_first_byte_s']}",
                f"{r['p95_first_byte_after_opening_s']}",
                f"{r['p50_total_s']} / {r['p95_total_s']}",
                f"{r['throughput']:.2f}",
                f"{ratio:.2f}x",
                f"{r['preemptions']} ({r['preempted_s']})",
                ", ".join(f"{k} {v}" for k, v in r["errors"].items()) or "none",
            ]
        )
    notes = [
        f"server start (model + watermarker load) {start_s:.1f} s; {seconds:.0f} s per level; streamed pcm of "
        "the benchmark sentences, voice alloy (af_heart); throughput is audio seconds delivered per wall second "
        "(1/RTF across all clients)",
        "p95 after opening: without each client's first request (all clients start at once, so those "
        "queue behind each other's first pieces)",
        "stopped pieces: later pieces the server stopped so that a new request's first piece could start "
        "(rerun afterwards; s lost is the synthesis time thrown away)"
        if preempt
        else "preemption off (--no-preempt): a new request's first piece waits for the piece in progress",
    ]
    return {
        "title": f"HTTP server under load (loopback; {machine.label(result)})",
        "table": table,
        "notes": notes,
        "json": result,
    }
