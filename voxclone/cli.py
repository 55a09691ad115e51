"""The ``voxclone`` command line: a thin layer over :class:`voxclone.Voxclone`."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from . import __version__
from .cloning.clone import SEARCH_BUDGET_S, TRAIN_BUDGET_S, default_budget
from .errors import VoxcloneError

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Consent-first voice cloning and TTS, offline on a CPU."
)
voices_app = typer.Typer(help="List and manage voices.", invoke_without_command=True)
protect_app = typer.Typer(help="Voices that must never be cloned (operators).", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks: each prints a table and can write --json PATH.", no_args_is_help=True)
app.add_typer(voices_app, name="voices")
app.add_typer(bench_app, name="bench")
app.add_typer(protect_app, name="protect")
err = Console(stderr=True)
out = Console()


def _version(value: bool) -> None:
    if value:
        print(f"voxclone {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
    verbose: bool = typer.Option(False, "--verbose", help="Log details to stderr."),
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


def _fail(e: Exception) -> None:
    # plain, unwrapped text: scripts grep for it
    typer.echo(f"error: {e}", err=True)
    raise typer.Exit(2)


@app.command()
def say(
    text: str | None = typer.Argument(None, help="Text to speak; '-' reads standard input."),
    voice: str = typer.Option(
        "af_heart", "-v", "--voice", help="Voice name, or a mix like 'af_heart:0.7,af_bella:0.3'."
    ),
    output: Path | None = typer.Option(None, "-o", "--output", help="Output file (.wav .flac .mp3 .ogg)."),
    file: Path | None = typer.Option(None, "-f", "--file", help="Read the text from a UTF-8 file ('-' for stdin)."),
    speed: float = typer.Option(1.0, "--speed", help="Speaking rate, 0.5-2.0."),
    pitch: float = typer.Option(0.0, "--pitch", help="Pitch shift in semitones, -12..12."),
    lang: str | None = typer.Option(
        None, "--lang", help="Language (en-us en-gb es fr hi it pt-br ja); default: the voice's."
    ),
    sample_rate: int = typer.Option(24000, "--sample-rate", help="Output sample rate in Hz."),
    fmt: str | None = typer.Option(None, "--format", help="Output format; default from the extension."),
    lexicon: Path | None = typer.Option(None, "--lexicon", help="Pronunciations: WORD<TAB>PHONEMES lines or JSON."),
    play: bool = typer.Option(False, "--play", help="Play the result if a sound device exists."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress bar."),
) -> None:
    """Speak text with a voice, into a file and/or the speakers."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from .api import SpeechSettings, Voxclone, read_text_file

    try:
        if file is not None and text is not None:
            raise VoxcloneError("give the text or --file, not both")
        if file is not None:
            content = sys.stdin.read() if str(file) == "-" else read_text_file(file)
        elif text == "-" or (text is None and not sys.stdin.isatty()):
            content = sys.stdin.read()
        elif text is None:
            raise VoxcloneError("nothing to say: give TEXT, --file FILE or pipe text on stdin")
        else:
            content = text
        if output is None and not play:
            raise VoxcloneError("give --output FILE and/or --play")
        settings = SpeechSettings(voice=voice, speed=speed, pitch=pitch, lang=lang, sample_rate=sample_rate)
        settings.validated()
        if output is not None:
            from .audio import format_for

            fmt = format_for(output, fmt)
        tts = Voxclone(settings, lexicon=lexicon)
        if output is not None:
            show = not quiet and err.is_terminal or (not quiet and len(content) > 2000)
            with Progress(
                TextColumn("speaking"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                TimeRemainingColumn(),
                console=err,
                disable=not show,
                transient=True,
            ) as bar:
                task = bar.add_task("say", total=len(content))
                duration = tts.save(
                    content, output, format=fmt, progress=lambda d, t: bar.update(task, completed=d, total=t)
                )
            if not quiet:
                err.print(f"wrote {output} ({duration:.1f} s of speech)")
        if play:
            from .audio import Audio

            audio = Audio.from_file(output) if output is not None else tts.speak(content)
            if not audio.play():
                err.print("no sound device found; nothing played" + ("" if output else " (use -o FILE to keep it)"))
    except (VoxcloneError, ValueError, OSError) as e:
        _fail(e)


@voices_app.callback()
def voices(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Machine-readable list.")) -> None:
    """List stock and user voices with language and gender."""
    if ctx.invoked_subcommand is not None:
        return
    from dataclasses import asdict

    from .api import Voxclone

    try:
        tts = Voxclone()
        infos = tts.voices()
    except VoxcloneError as e:
        _fail(e)
    if as_json:
        print(json.dumps([asdict(v) for v in infos], indent=1))
        return
    table = Table(title=f"{len(infos)} voices ({tts.voices_source})")
    for col in ("name", "language", "gender", "kind", "grade"):
        table.add_column(col)
    for v in infos:
        table.add_row(v.name, v.language, v.gender, v.kind, v.grade)
    out.print(table)


@app.command()
def clone(
    name: str = typer.Argument(..., help="Name of the new voice (lowercase letters, digits, - and _)."),
    recordings: list[Path] = typer.Argument(..., help="Audio files or folders of the speaker."),
    consent: Path | None = typer.Option(None, "--consent", help="The speaker reading the consent statement."),
    waiver: str | None = typer.Option(
        None, "--consent-waiver", help="Build without a consent recording; the reason is recorded."
    ),
    quality: str = typer.Option(
        "instant",
        "--quality",
        help="instant (seconds), best (gradient fit through the PyTorch model, minutes; also called train) "
        "or search (the older black-box fit of the style vector).",
    ),
    lang: str | None = typer.Option(
        None, "--lang", help="The voice's default language (default: what the recordings speak)."
    ),
    seed: int = typer.Option(0, "--seed", help="Makes fitting repeatable."),
    budget: float | None = typer.Option(
        None,
        "--budget",
        help="Seconds for the whole build with --quality best, train or search (collecting, aligning, fitting, "
        f"scoring); the fit gets what is left. Default: {TRAIN_BUDGET_S:.0f} for best/train, "
        f"{SEARCH_BUDGET_S:.0f} for search.",
    ),
) -> None:
    """Build a voice from a speaker's recordings and add it to the library."""
    from rich.progress import BarColumn, Progress, TextColumn

    from .cloning.clone import clone as run_clone

    budget = budget or default_budget(quality)
    try:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[info]}"),
            console=err,
            transient=True,
        ) as bar:
            task = bar.add_task("collecting", total=budget if quality != "instant" else None, info="")

            def fit(entry: dict) -> None:
                if "best" in entry:  # search
                    score = f"similarity {entry['best']:.3f}"
                else:
                    score = f"held-out loss {entry['heldout']:.3f}"
                    if "similarity" in entry:
                        score += f"  held-out similarity {entry['similarity']:.3f}"
                bar.update(
                    task,
                    description="fitting",
                    completed=min(budget, entry["elapsed"]),
                    info=f"step {entry['step']}  {score}",
                )

            record = run_clone(
                name,
                recordings,
                consent=consent,
                waiver=waiver,
                quality=quality,
                lang=lang,
                seed=seed,
                budget_s=budget,
                progress=lambda m: bar.update(task, description=m),
                fit_progress=fit,
            )
    except (VoxcloneError, ValueError, OSError) as e:
        _fail(e)
    sim = record["similarity"]
    typer.echo(
        f"voice {name!r} ({record['quality']}, {record['language']}): similarity {sim['final']:.3f} "
        f"(instant {sim['instant']:.3f}), base {', '.join(f'{k} {v:.2f}' for k, v in record['base'].items() if v >= 0.01)}, "
        f"built in {record['build']['total_seconds']:.0f} s"
    )
    typer.echo(f'try it: voxclone say -v {name} "Hello, this is my voice." -o {name}.wav')


@app.command()
def collect(
    recordings: list[Path] = typer.Argument(..., help="Audio files or folders."),
    as_json: bool = typer.Option(False, "--json", help="Print the full report as JSON."),
    lang: str | None = typer.Option(None, "--lang", help="Language of the recordings (default: detected)."),
) -> None:
    """Check recordings before cloning: clean speech, clipping, noise, echo, other speakers."""
    from .cloning.collect import collect as run_collect

    try:
        col = run_collect(recordings, language=lang, progress=lambda m: err.print(m, end="\r"))
    except (VoxcloneError, ValueError, OSError) as e:
        _fail(e)
    if as_json:
        print(json.dumps(col.report, indent=1, ensure_ascii=False))
        return
    table = Table(
        title=f"{len(col.clips)} clips, {col.report['clean_speech_s']:.1f} s usable, language {col.language or '?'}"
    )
    for c in ("clip", "source", "seconds", "SNR dB", "same speaker", "flags", "use", "text"):
        table.add_column(c)
    for c in col.clips:
        table.add_row(
            c.id,
            c.source,
            f"{c.duration:.1f}",
            f"{c.snr_db:.0f}",
            f"{c.similarity:.2f}",
            " ".join(c.flags),
            c.use,
            c.text[:40],
        )
    out.print(table)
    for line in col.report["advice"]:
        typer.echo(f"- {line}")


@app.command()
def prompts(
    lang: str = typer.Option("en", "--lang", help="en es fr it pt-br hi"),
    count: int = typer.Option(0, "--count", help="How many (0: all)."),
    shuffle: bool = typer.Option(False, "--shuffle", help="Random order (see --seed)."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Sentences to read aloud when recording a voice (voice banking)."""
    import random

    from .cloning.texts import prompts as load_prompts

    try:
        lines = load_prompts(lang)
    except ValueError as e:
        _fail(e)
    if shuffle:
        random.Random(seed).shuffle(lines)
    for i, line in enumerate(lines[: count or None], 1):
        typer.echo(f"{i:3d}. {line}")


@app.command()
def record(
    name: str = typer.Argument(..., help="Folder name for the recordings (under --out)."),
    lang: str = typer.Option("en", "--lang"),
    count: int = typer.Option(20, "--count", help="How many prompts to record."),
    out_dir: Path = typer.Option(Path("recordings"), "--out", help="Where recordings go."),
    seconds: float = typer.Option(12.0, "--seconds", help="Longest take per prompt."),
) -> None:
    """Record prompt by prompt from the microphone, with a level meter."""
    from .cloning.record import RecordingError, record_prompts
    from .cloning.texts import prompts as load_prompts

    try:
        folder = record_prompts(load_prompts(lang)[:count], out_dir / name, max_seconds=seconds, console=err)
    except (RecordingError, ValueError) as e:
        _fail(e)
    typer.echo(f"recordings in {folder}; next: voxclone collect {folder}")


@app.command("eval")
def evaluate(
    name: str = typer.Argument(..., help="A cloned voice."),
    as_json: bool = typer.Option(False, "--json"),
    no_wer: bool = typer.Option(False, "--no-wer", help="Skip the Whisper intelligibility check."),
) -> None:
    """Score a cloned voice on sentences and real clips it never saw, beside the best stock voice."""
    from .cloning.evaluate import evaluate as run_eval

    try:
        result = run_eval(name, with_wer=not no_wer)
    except (VoxcloneError, ValueError, OSError) as e:
        _fail(e)
    if as_json:
        print(json.dumps(result, indent=1))
        return
    table = Table(title=f"{name}: similarity to {result['heldout_clips']} held-out real clips (Resemblyzer)")
    for c in ("", "similarity", "WER"):
        table.add_column(c)
    table.add_row("real speech (ceiling)", f"{result['ceiling']:.3f}", "")
    table.add_row(
        name, f"{result['similarity_resemblyzer']:.3f}", f"{100 * result['wer']:.1f}%" if "wer" in result else ""
    )
    table.add_row(
        f"best stock ({result['best_stock']})",
        f"{result['stock_similarity_resemblyzer']:.3f}",
        f"{100 * result['stock_wer']:.1f}%" if "stock_wer" in result else "",
    )
    out.print(table)
    if result.get("note"):
        typer.echo(result["note"])


@voices_app.command("show")
def voices_show(name: str) -> None:
    """Everything recorded about a cloned voice."""
    from .cloning.library import VoiceLibrary

    try:
        print(json.dumps(VoiceLibrary().record(name), indent=1, ensure_ascii=False))
    except VoxcloneError as e:
        _fail(e)


@voices_app.command("delete")
def voices_delete(name: str, yes: bool = typer.Option(False, "--yes", help="Do not ask.")) -> None:
    """Delete a cloned voice and every file of it (recordings, vectors, consent)."""
    from .cloning.library import VoiceLibrary

    lib = VoiceLibrary()
    try:
        lib.record(name)
        if not yes and not typer.confirm(f"delete voice {name!r} and all its recordings?"):
            raise typer.Exit(1)
        removed = lib.delete(name)
    except VoxcloneError as e:
        _fail(e)
    typer.echo(f"deleted {name!r} ({len(removed)} files)")


@voices_app.command("export")
def voices_export(
    name: str,
    output: Path = typer.Option(None, "-o", "--output", help="Default: NAME.voxclone"),
    no_audio: bool = typer.Option(False, "--no-audio", help="Leave the recordings out."),
) -> None:
    """Write a voice to one portable .voxclone file (with an integrity hash)."""
    from .cloning.library import VoiceLibrary

    try:
        path = VoiceLibrary().export(name, output or Path(f"{name}.voxclone"), include_audio=not no_audio)
    except (VoxcloneError, OSError) as e:
        _fail(e)
    typer.echo(f"wrote {path}")


@voices_app.command("import")
def voices_import(
    file: Path, name: str | None = typer.Option(None, "--name", help="Import under another name.")
) -> None:
    """Add a voice from a .voxclone file after checking every file's hash."""
    from .api import Voxclone
    from .cloning.library import VoiceLibrary

    try:
        imported = VoiceLibrary().import_file(file, name, stock=frozenset(Voxclone()._stock()))
    except (VoxcloneError, OSError) as e:
        _fail(e)
    typer.echo(f"imported voice {imported!r}")


@app.command()
def consent(
    name: str = typer.Argument(..., help="The voice name the speaker agrees to."),
    speaker: str | None = typer.Option(None, "--speaker", help="The speaker's full name (default: NAME)."),
    purpose: str = typer.Option("my own use", "--purpose", help="What the voice is for, e.g. 'voice banking'."),
    as_json: bool = typer.Option(False, "--json", help="Print the statement as JSON."),
) -> None:
    """Issue the consent statement (with a one-time code) the speaker must read aloud and record."""
    from .cloning.library import VoiceLibrary, check_name
    from .safeguards.consent import VALID_DAYS

    lib = VoiceLibrary()
    try:
        check_name(name)
        st = lib.consents.issue(name, speaker, purpose)
    except (VoxcloneError, ValueError, OSError) as e:
        _fail(e)
    lib.audit.append("consent_statement", None, statement_id=st.id)
    if as_json:
        print(json.dumps(st.as_dict(), indent=1, ensure_ascii=False))
        return
    typer.echo(st.text)
    err.print(
        f"\nRecord the speaker reading this aloud, then: voxclone clone {name} RECORDINGS... --consent FILE\n"
        f"(the code is good for one voice and {VALID_DAYS} days)"
    )


@app.command()
def detect(
    files: list[Path] = typer.Argument(..., help="Audio files to check."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable results."),
) -> None:
    """Is this voxclone speech? Exit 0: every file is watermarked; 1: some are not; 2: error."""
    from .safeguards.detect import detect_file

    results = []
    for f in files:
        try:
            results.append(detect_file(f))
        except (VoxcloneError, OSError) as e:
            results.append({"file": str(f), "error": str(e)})
    if as_json:
        print(json.dumps(results if len(results) > 1 else results[0], indent=1, ensure_ascii=False))
    else:
        for r in results:
            if "error" in r:
                typer.echo(f"{r['file']}: error: {r['error']}")
                continue
            label = "synthetic (voxclone watermark)" if r["watermarked"] else "no voxclone watermark found"
            extra = "; labels say synthetic" if r["labels_say_synthetic"] else ""
            if r.get("c2pa"):
                extra += f"; C2PA manifest ({r['c2pa']['state']}) by {r['c2pa']['generator']}"
            typer.echo(f"{r['file']}: {label}, confidence {r['confidence']:.2f}{extra}")
    if any("error" in r for r in results):
        raise typer.Exit(2)
    raise typer.Exit(0 if all(r["watermarked"] for r in results) else 1)


@app.command()
def audit(
    verify: bool = typer.Option(False, "--verify", help="Check the hash chain; exit 1 if tampered."),
    limit: int = typer.Option(50, "--limit", help="Show the newest N entries (0: all)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable entries."),
) -> None:
    """Show the audit log (consent, builds, speech, exports, deletions); --verify detects tampering."""
    from .cloning.library import VoiceLibrary

    log_ = VoiceLibrary().audit
    try:
        if verify:
            v = log_.verify()
            if v.ok:
                typer.echo(f"audit log intact: {v.entries} entries, chain verified")
                return
            typer.echo(f"audit log TAMPERED: {v.problem}", err=True)
            raise typer.Exit(1)
        entries = log_.entries(limit=limit or None)
    except VoxcloneError as e:
        _fail(e)
    if as_json:
        print(json.dumps([e.as_dict() for e in entries], indent=1, ensure_ascii=False))
        return
    table = Table(title=f"audit log ({log_.path})")
    for col in ("#", "time (UTC)", "event", "voice id", "details"):
        table.add_column(col)
    for e in entries:
        details = ", ".join(f"{k}={v}" for k, v in e.details.items() if v is not None)
        table.add_row(str(e.seq), e.time[:19].replace("T", " "), e.event, e.voice_id or "", details[:80])
    out.print(table)


@protect_app.command("add")
def protect_add(
    label: str = typer.Argument(..., help="Who this is (kept only on this machine)."),
    recordings: list[Path] = typer.Argument(..., help="Reference clips of the protected voice."),
) -> None:
    """Refuse any future enrolment that sounds like these recordings."""
    from .cloning.collect import collect as run_collect
    from .cloning.library import VoiceLibrary

    lib = VoiceLibrary()
    try:
        col = run_collect(recordings, language=None)
        lib.protected.add(label, col.embedding, {"clips": len(col.clips), "seconds": col.report.get("clean_speech_s")})
    except (VoxcloneError, ValueError, OSError) as e:
        _fail(e)
    lib.audit.append("protected_added", None, clips=len(col.clips))
    typer.echo(f"protected {label!r}: enrolments that sound like it will be refused")


@protect_app.command("list")
def protect_list() -> None:
    """The protected voices' labels."""
    from .cloning.library import VoiceLibrary

    for label in VoiceLibrary().protected.labels():
        typer.echo(label)


@protect_app.command("remove")
def protect_remove(label: str) -> None:
    """Stop protecting a voice."""
    from .cloning.library import VoiceLibrary

    lib = VoiceLibrary()
    try:
        lib.protected.remove(label)
    except KeyError as e:
        _fail(e)
    lib.audit.append("protected_removed", None)
    typer.echo(f"removed {label!r}")


@app.command()
def demo(
    speaker: str = typer.Option("it-carlo", "--speaker", help="A development speaker (see `voxclone bench clone`)."),
    output: Path = typer.Option(Path("demo.wav"), "-o", "--output"),
    text: str = typer.Option(
        "Hello! This voice was cloned offline, on this computer, from twenty seconds of recordings.", "--text"
    ),
) -> None:
    """Clone a demo voice from a public recording (Debian's Asterisk prompts) and speak with it."""
    import soundfile as sf

    from .api import Voxclone
    from .bench import devdata
    from .cloning.clone import clone as run_clone

    name = f"demo-{speaker}"
    try:
        tts = Voxclone()
        if not tts.library.exists(name):
            typer.echo(
                f"fetching the {speaker} recordings (Debian package {devdata.SPEAKERS[speaker].package}) ...", err=True
            )
            enroll, _ = devdata.split(speaker, enroll_seconds=20.0)
            folder = devdata.cache_dir() / "demo-input" / speaker
            folder.mkdir(parents=True, exist_ok=True)
            for c in enroll:
                sf.write(folder / f"{c.path.stem}.wav", devdata.load(c, 16000), 16000)
            record = run_clone(
                name,
                [folder],
                waiver=f"demo: public Asterisk prompt recordings ({devdata.SPEAKERS[speaker].package})",
                lang="en-us",
                tts=tts,
                progress=lambda m: typer.echo(m, err=True),
            )
            typer.echo(
                f"cloned {name!r} from {record['clean_speech_s']:.0f} s in {record['build']['seconds']:.1f} s", err=True
            )
        duration = tts.save(text, output, voice=name)
    except (VoxcloneError, ValueError, OSError, KeyError) as e:
        _fail(e)
    typer.echo(
        f"wrote {output} ({duration:.1f} s) in the voice {name!r}; `voxclone voices show {name}` tells how it was made"
    )


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0 for every interface)."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    root: Path | None = typer.Option(
        None, "--root", help="Where accounts, jobs and voices live (default VOXCLONE_HOME/server)."
    ),
    workers: int = typer.Option(
        1,
        "--workers",
        help="Synthesis slots, each its own model session, side by side (2: more throughput, later first bytes).",
    ),
    max_streams: int = typer.Option(16, "--max-streams", help="Requests in progress before answering 503."),
    rate: float = typer.Option(5.0, "--rate", help="Requests per second per API key (0: no limit)."),
    preempt: bool = typer.Option(
        True, "--preempt/--no-preempt", help="Let a new request's first audio stop another's later piece."
    ),
) -> None:
    """Serve the HTTP API (OpenAI-compatible /v1/audio/speech), the voices API and the web UI."""
    import uvicorn

    from .server.app import ServerConfig, create_app

    config = ServerConfig(root=root, workers=workers, max_streams=max_streams, rate=rate, preempt=preempt)
    app_ = create_app(config)
    srv = app_.state.server
    key = srv.ensure_admin()
    err.print("loading the model and the watermarker ...")
    srv.tts.load()
    if key:
        err.print(f"first start: made the admin account. Its API key (also in {srv.root / 'admin.key'}):\n  {key}")
    else:
        err.print(f"admin key: {srv.root / 'admin.key'}")
    err.print(f"web UI: http://{host}:{port}/   API docs: http://{host}:{port}/docs")
    uvicorn.run(app_, host=host, port=port, log_level="info", timeout_graceful_shutdown=10)


@app.command()
def setup(verify: bool = typer.Option(False, "--verify", help="Re-hash every asset even if already built.")) -> None:
    """Assemble and verify the model files (runs automatically on first use)."""
    from .engine import assets

    try:
        model = assets.assemble_model(force=verify)
        if verify:
            assets.verify_model(model)
        typer.echo(f"model    {model}", err=True)
        typer.echo(f"fast     {assets.optimized_model(model)}", err=True)
        packs, note = assets.load_voice_packs()
        typer.echo(f"voices   {len(packs)}: {note}", err=True)
        typer.echo(f"whisper  {assets.whisper_model_dir()}", err=True)
        from .training import convert  # the float model `clone --quality train` fits through

        convert.load(model)
        typer.echo(f"training {convert.cached_weights_path(model)}", err=True)
    except VoxcloneError as e:
        _fail(e)


@bench_app.command("speed")
def bench_speed(
    json_path: Path | None = typer.Option(None, "--json", help="Write results as JSON here."),
    voice: str = typer.Option("af_heart", "-v", "--voice"),
    repeats: int = typer.Option(3, "--repeats", help="Timed runs per case (the best is reported)."),
    baseline: bool = typer.Option(True, "--baseline/--no-baseline", help="Also time the unmodified graph."),
) -> None:
    """Real-time factor, first-chunk latency, load time and memory."""
    from .bench.speed import run

    _report(run(voice=voice, repeats=repeats, baseline=baseline), json_path)


@bench_app.command("intelligibility")
def bench_intelligibility(
    json_path: Path | None = typer.Option(None, "--json", help="Write results as JSON here."),
    voices: str = typer.Option("af_heart,af_bella,am_michael,bf_emma,bm_george", "--voices", help="Comma-separated."),
    limit: int = typer.Option(0, "--limit", help="Use only the first N sentences (0: all)."),
) -> None:
    """Whisper-base word error rate on the benchmark sentences, with espeak-ng as a floor."""
    from .bench.intelligibility import run

    _report(run(voices=_names(voices), limit=limit), json_path)


@bench_app.command("longform")
def bench_longform(
    json_path: Path | None = typer.Option(None, "--json", help="Write results as JSON here."),
    words: int = typer.Option(10_000, "--words", help="Length of the generated text."),
    output: Path | None = typer.Option(None, "-o", "--output", help="Keep the audio here (default: discarded)."),
) -> None:
    """Stream a long text to a file with a progress bar; report speed and memory over time."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from .bench.longform import run

    with Progress(
        TextColumn("speaking"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"), TimeRemainingColumn(), console=err
    ) as bar:
        task = bar.add_task("longform", total=1)
        result = run(words=words, output=output, progress=lambda d, t: bar.update(task, completed=d, total=t))
    _report(result, json_path)


@bench_app.command("clone")
def bench_clone(
    json_path: Path | None = typer.Option(None, "--json", help="Write results as JSON here."),
    speakers: str = typer.Option("", "--speakers", help="Comma-separated devdata speakers (default: all)."),
    levels: str = typer.Option("instant,best", "--levels"),
    budget: float | None = typer.Option(
        None, "--budget", help="Seconds per best/search build, all of it (default: as `voxclone clone`)."
    ),
    seed: int = typer.Option(0, "--seed"),
    enroll_seconds: float = typer.Option(
        20.0, "--enroll-seconds", help="Speech per speaker to build from (180: the 3-minute case)."
    ),
    keep: Path | None = typer.Option(
        None, "--keep", help="Keep the built voices in this voice library folder (default: thrown away)."
    ),
    cache: bool = typer.Option(
        True, "--cache/--no-cache", help="Reuse stock voices' scores computed before for the same inputs."
    ),
) -> None:
    """Similarity of cloned voices to real speakers (Resemblyzer and an independent d-vector)."""
    from .bench.clone import run

    chosen = _names(speakers) or None
    lv = tuple(_names(levels))
    result = run(
        chosen,
        lv,
        budget_s=budget,
        seed=seed,
        enroll_seconds=enroll_seconds,
        progress=err.print,
        keep=keep,
        cache=cache,
    )
    _report(result, json_path)


@bench_app.command("consent")
def bench_consent(
    json_path: Path | None = typer.Option(None, "--json", help="Write results as JSON here."),
    speakers: str = typer.Option("", "--speakers", help="Comma-separated devdata speakers (default: all)."),
    no_clones: bool = typer.Option(False, "--no-clones", help="Skip the cloned-voice acceptance test."),
    levels: str = typer.Option("instant,best", "--levels", help="Clone qualities to test (best: ~14 min a speaker)."),
    clone_speakers: str = typer.Option(
        "", "--clone-speakers", help="Clone only these of the speakers (default: all); the threshold uses all."
    ),
) -> None:
    """Consent voice check on real speakers: EER, false accepts/rejects, clone acceptance."""
    from .bench.consent import clone_set, run

    chosen = _names(speakers) or None
    cloned = _names(clone_speakers) or None
    qualities = tuple(_names(levels))
    try:  # before the run: a ValueError from deep inside it is not this option's fault
        clone_set(chosen, cloned)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--clone-speakers") from None
    result = run(
        chosen, clones=not no_clones, qualities=qualities, progress=lambda m: err.print(m), clone_speakers=cloned
    )
    _report(result, json_path)


@bench_app.command("watermark")
def bench_watermark(
    json_path: Path | None = typer.Option(None, "--json", help="Write results as JSON here."),
    clips: int = typer.Option(200, "--clips", help="Generated clips to mark and attack."),
    real: int = typer.Option(300, "--real", help="Real recordings for the false-positive rate."),
    mos_clips: int = typer.Option(60, "--mos-clips", help="Clips scored with DNSMOS, marked and not."),
) -> None:
    """Watermark detection under attacks, false positives, and quality cost."""
    from .bench.watermark import run

    _report(run(clips, real, mos_clips, progress=lambda m: err.print(m)), json_path)


@bench_app.command("serve")
def bench_serve(
    json_path: Path | None = typer.Option(None, "--json", help="Write results as JSON here."),
    clients: str = typer.Option("1,4,16", "--clients", help="Concurrency levels, comma-separated."),
    seconds: float = typer.Option(
        60.0,
        "--seconds",
        help="How long each level runs (60 s: 40-50 requests at 4 clients, so p95 is not the maximum).",
    ),
    workers: int = typer.Option(1, "--workers", help="The server's synthesis slots (model sessions)."),
    threads: int | None = typer.Option(None, "--threads", help="Model threads per session (default: every CPU)."),
    preempt: bool = typer.Option(True, "--preempt/--no-preempt", help="The server's --preempt setting."),
) -> None:
    """The HTTP server under concurrent clients: first byte, full audio, throughput, errors."""
    from .bench.serve import run

    levels = tuple(int(c) for c in _names(clients))
    _report(run(levels, seconds, threads, workers, preempt, progress=lambda m: err.print(m)), json_path)


@bench_app.command("parity")
def bench_parity(
    json_path: Path | None = typer.Option(None, "--json", help="Write results as JSON here."),
    sentences: int = typer.Option(20, "--sentences", help="Benchmark sentences per voice."),
    voices: str = typer.Option("af_heart,am_michael,bf_emma,bm_george,ef_dora", "--voices", help="Comma-separated."),
) -> None:
    """The PyTorch rebuild of Kokoro against the ONNX graph: durations, log-mel distance, WER, similarity."""
    from .bench.parity import run

    chosen = tuple(_names(voices))
    _report(
        run(
            sentences,
            chosen,
            progress=lambda v, i: err.print(f"{v} {i + 1}/{sentences}") if i == sentences - 1 else None,
        ),
        json_path,
    )


def _names(value: str) -> list[str]:
    """A comma-separated option's items, blanks dropped."""
    return [v.strip() for v in value.split(",") if v.strip()]


def _report(result: dict, json_path: Path | None) -> None:
    table = Table(title=result.get("title", "benchmark"))
    rows = result.get("table", [])
    if rows:
        for col in rows[0]:
            table.add_column(str(col))
        for row in rows[1:]:
            table.add_row(*[str(c) for c in row])
    out.print(table)
    for line in result.get("notes", []):
        out.print(line)
    if json_path:
        json_path.write_text(json.dumps(result["json"], indent=2) + "\n")
        err.print(f"wrote {json_path}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
