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
from .errors import VoxcloneError

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Consent-first voice cloning and TTS, offline on a CPU."
)
voices_app = typer.Typer(help="List and manage voices.", invoke_without_command=True)
bench_app = typer.Typer(help="Benchmarks: each prints a table and can write --json PATH.", no_args_is_help=True)
app.add_typer(voices_app, name="voices")
app.add_typer(bench_app, name="bench")
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

    _report(run(voices=[v.strip() for v in voices.split(",") if v.strip()], limit=limit), json_path)


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
