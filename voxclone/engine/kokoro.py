"""Kokoro-82M on onnxruntime: phoneme tokens + a style vector -> 24 kHz audio."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import AssetError
from .cpu import usable_cpus
from .optimize import (
    DECODER_BIAS_INPUT,
    DECODER_LORA_INPUT,
    DURATIONS_OUTPUT,
    F0_SCALE_INPUT,
    MAX_DURATIONS_INPUT,
)

log = logging.getLogger(__name__)

SAMPLE_RATE = 24_000
MAX_PHONEMES = 510  # the model's 512 positions minus the two boundary tokens


class Turn(Protocol):
    """A scheduler's hold on the engine for one step, which it may take back mid-run (see
    :mod:`voxclone.server.limits`): the engine then waits for its turn again and reruns."""

    def wait(self, tokens: int) -> None:
        """Block until this step may use the model for a run of ``tokens`` tokens (called before each
        run, outside the engine's lock)."""

    def begin(self, run_options, tokens: int, contended: Callable[[], bool]) -> None:
        """A model run of ``tokens`` tokens starts; setting ``run_options.terminate`` stops it.
        ``contended()`` says whether another thread waits for the model (stopping the run would hand
        it to that thread, not to whoever the scheduler stopped it for)."""

    def finished(self, seconds: float) -> None:
        """The run completed in ``seconds``."""

    def interrupted(self) -> bool:
        """The run failed: if the scheduler stopped it, wait for the next turn and return True."""


_turns = threading.local()


@contextmanager
def holding(turn: Turn) -> Iterator[None]:
    """Model runs on this thread belong to ``turn`` while inside the block."""
    previous = getattr(_turns, "current", None)
    _turns.current = turn
    try:
        yield
    finally:
        _turns.current = previous


def default_threads() -> int:
    env = os.environ.get("VOXCLONE_THREADS")
    if env:
        return max(1, int(env))
    return usable_cpus()


class KokoroEngine:
    """Kokoro ONNX graph (any precision, either input naming) on ``sessions`` onnxruntime sessions.

    Each session uses ``threads`` threads (default: every usable CPU). Several sessions let
    concurrent callers (a server's requests) run side by side; their idle threads then sleep instead
    of spinning, so two runs share the cores. On 2 cores a short piece gains little from its second
    thread, so two side by side beat two in turn: 18 phonemes take 0.45 s alone (0.50 s without
    spinning) and 0.68-0.70 s each as a pair, not 0.45 s + 0.45 s; a lone 1-thread session takes 0.78 s.
    """

    def __init__(
        self, model_path: str | os.PathLike, threads: int | None = None, optimize: bool = True, sessions: int = 1
    ):
        import onnxruntime as ort

        from . import assets

        path = Path(model_path)
        if optimize:
            try:
                path = assets.optimized_model(path)
            except Exception as e:  # a user's unusual graph still runs unoptimised
                log.warning("could not optimise %s (%s); running it as it is", path, e)
        self.threads = threads or default_threads()  # per session
        self.sessions = max(1, int(sessions))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3  # initializer-cleanup chatter is not news
        if self.sessions > 1:  # a session's idle threads spinning would steal the others' cores
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        t0 = time.perf_counter()
        try:
            pool = [
                ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
                for _ in range(self.sessions)
            ]
        except Exception as e:
            raise AssetError(f"onnxruntime cannot load {path}: {e}") from e
        self.session = pool[0]
        self.load_seconds = time.perf_counter() - t0
        self.path = path
        names = {i.name for i in self.session.get_inputs()}
        self._tokens = "tokens" if "tokens" in names else "input_ids"
        self.has_pitch = F0_SCALE_INPUT in names
        self.has_duration_cap = MAX_DURATIONS_INPUT in names
        sizes = {
            i.name: int(i.shape[0])
            for i in self.session.get_inputs()
            if i.name in (DECODER_BIAS_INPUT, DECODER_LORA_INPUT)
        }
        self.decoder_bias_size = sizes.get(DECODER_BIAS_INPUT, 0)
        lora = sizes.get(DECODER_LORA_INPUT, 0) if self.decoder_bias_size else 0
        # a trained voice's decoder adapter: the projection offsets, then the low-rank weights (optional)
        self.decoder_adapter_size = self.decoder_bias_size + lora
        self._zero_adapter = np.zeros(self.decoder_adapter_size, np.float32)
        if self._tokens not in names or "style" not in names or "speed" not in names:
            raise AssetError(f"{path} is not a Kokoro graph (inputs: {sorted(names)})")
        outputs = [o.name for o in self.session.get_outputs()]
        self._outputs = outputs[:1] + ([DURATIONS_OUTPUT] if DURATIONS_OUTPUT in outputs[1:] else [])
        speed_type = next(i.type for i in self.session.get_inputs() if i.name == "speed")
        self._speed_dtype = np.int32 if "int" in speed_type else np.float32
        self._free = pool  # sessions not running
        self._cond = threading.Condition()
        self._queued = 0  # threads waiting for a free session

    def infer(
        self,
        tokens: list[int],
        style: np.ndarray,
        speed: float = 1.0,
        f0_scale: float = 1.0,
        decoder_bias: np.ndarray | None = None,
        max_durations: np.ndarray | None = None,
    ) -> np.ndarray:
        """Audio (float32, mono, 24 kHz) for at most :data:`MAX_PHONEMES` token ids; `decoder_bias` is a
        trained voice's decoder adapter (:attr:`decoder_adapter_size` values, or only the first
        :attr:`decoder_bias_size` for an adapter without low-rank weights), `max_durations` caps the frames
        of each token including the two boundary tokens (see :mod:`voxclone.engine.optimize`; ignored by
        graphs without the input)."""
        return self.infer_timed(tokens, style, speed, f0_scale, decoder_bias, max_durations)[0]

    def infer_timed(
        self,
        tokens: list[int],
        style: np.ndarray,
        speed: float = 1.0,
        f0_scale: float = 1.0,
        decoder_bias: np.ndarray | None = None,
        max_durations: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """(audio, frames per token including the two boundary tokens); the durations are None when the
        graph does not expose them (an unoptimised graph)."""
        if not tokens:
            return np.zeros(0, np.float32), (np.zeros(0, np.int64) if self._outputs[1:] else None)
        if len(tokens) > MAX_PHONEMES:
            raise ValueError(f"{len(tokens)} phonemes in one call; the model takes at most {MAX_PHONEMES}")
        feed = {
            self._tokens: np.array([[0, *tokens, 0]], dtype=np.int64),
            "style": np.asarray(style, np.float32).reshape(1, 256),
            "speed": np.array([speed], dtype=self._speed_dtype),
        }
        if self.has_pitch:
            feed[F0_SCALE_INPUT] = np.array([f0_scale], np.float32)
        elif f0_scale != 1.0:
            raise AssetError(f"{self.path} has no F0 input, so pitch cannot be shifted with this model")
        adapter = self._zero_adapter
        if decoder_bias is not None:
            decoder_bias = np.asarray(decoder_bias, np.float32).reshape(-1)
            if len(decoder_bias) == self.decoder_bias_size:  # trained before the low-rank weights existed
                adapter = np.concatenate([decoder_bias, self._zero_adapter[self.decoder_bias_size :]])
            elif len(decoder_bias) == self.decoder_adapter_size:
                adapter = decoder_bias
            else:
                takes = ", ".join(str(n) for n in sorted({self.decoder_bias_size, self.decoder_adapter_size}))
                raise AssetError(
                    f"this voice's decoder adapter has {len(decoder_bias)} values but {self.path} takes "
                    f"{takes}: it was trained for another model"
                )
        if self.has_duration_cap:
            if max_durations is None:
                max_durations = np.full(len(tokens) + 2, np.iinfo(np.int64).max, np.int64)
            elif len(max_durations) != len(tokens) + 2:
                raise ValueError(f"max_durations has {len(max_durations)} values for {len(tokens) + 2} tokens")
            feed[MAX_DURATIONS_INPUT] = np.asarray(max_durations, np.int64)
        if self.decoder_bias_size:
            feed[DECODER_BIAS_INPUT] = adapter[: self.decoder_bias_size]
        if self.decoder_adapter_size > self.decoder_bias_size:
            feed[DECODER_LORA_INPUT] = adapter[self.decoder_bias_size :]
        out = self._run(feed, len(tokens))
        durations = np.asarray(out[1], np.int64).reshape(-1) if len(out) > 1 else None
        return np.asarray(out[0], np.float32).reshape(-1), durations

    def contended(self) -> bool:
        """Whether a thread is waiting for the model."""
        return self._queued > 0

    @contextmanager
    def _session(self) -> Iterator:
        """A session of its own for the block: one run per session, each already using its threads."""
        with self._cond:
            self._queued += 1
            try:
                while not self._free:
                    self._cond.wait()
            finally:
                self._queued -= 1
            session = self._free.pop()
        try:
            yield session
        finally:
            with self._cond:
                self._free.append(session)
                self._cond.notify()

    def _run(self, feed: dict, tokens: int) -> list:
        turn: Turn | None = getattr(_turns, "current", None)
        if turn is None:
            with self._session() as session:
                return session.run(self._outputs, feed)
        import onnxruntime as ort

        while True:
            options = ort.RunOptions()
            turn.wait(tokens)
            try:
                with self._session() as session:
                    turn.begin(options, tokens, self.contended)
                    t0 = time.perf_counter()
                    out = session.run(self._outputs, feed, options)
            except Exception:
                if turn.interrupted():
                    continue
                raise
            turn.finished(time.perf_counter() - t0)
            return out
