"""Fit a voice to a speaker's recordings by gradient descent through the PyTorch Kokoro.

For each clip (audio + transcript): phonemes from the transcript, durations from aligning the clip with
the model's own rendering (DTW on band-limited log-mels), and the clip's F0 (WORLD). The style offset
(both halves) is then fitted to minimise

* a multi-resolution log-mel loss between the clip and the decoder's output for the clip's own durations
  and F0 (gain-invariant, and limited to the recording's band, so telephone audio does not teach muffling),
* an F0 loss: the predictor's F0 for those durations against the clip's voiced F0 (log Hz),
* a duration loss: the predictor's soft durations against the aligned ones,
* a speaker loss: 1 - cosine between Resemblyzer's embedding of the decoded window (its front end
  rebuilt in torch, so gradients flow) and the speaker's enrolment centroid,
* a penalty on leaving the stock voices' spread (far outside it speech degrades).

The speaker loss also listens to speech as the voice will produce it: every second step on a clip
decodes it with the predictor's own F0 (speaker loss only), and ``TEXT_FRACTION`` of the steps
decode a sentence in the voice's speaking language that has no recording at all (predicted durations
and F0; Resemblyzer does not need the words). A clone fitted only on its speaker's Italian or French
clips otherwise sounds much less like them speaking English (it-carlo, 840 s: Resemblyzer 0.79 ->
0.84, the independent d-vector 0.74 -> 0.80). Held-out clips steer early stopping with the same
split: log-mel on the clip's own F0, speaker similarity on the predictor's.

The biases of the decoder's 58 AdaIN style projections are fitted too (``decoder=True``): per-channel
gain and shift offsets (37,396 values) that reach timbre the 128 style values cannot. With ``lora=True``
(opt-in: it cost English WER) so are low-rank weights for the decoder's ten frame-rate convolutions:
``B`` (73,728 values) of ``y += B (A * x)``, with ``A`` a fixed random projection (see
:mod:`voxclone.engine.optimize`), which can change what the layers compute rather than only how their
inputs are scaled. The result is a style pack (stock-shaped rows + the offset) and one decoder adapter
vector (offsets, then low-rank weights) that the optimised ONNX graph takes as inputs (``decoder_bias``,
``decoder_lora``), so the fast path speaks it at full speed.
"""

from __future__ import annotations

import operator
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..engine.optimize import LORA_MODULE, LORA_RANK, lora_projection
from .model import FRAME_SAMPLES, Kokoro

RATE = 24_000
F0_HOP = FRAME_SAMPLES // 2  # the predictor's F0 runs at two values per frame (12.5 ms)
RESOLUTIONS = ((1024, 300), (512, 150), (256, 75))
MAX_HELDOUT = 4  # held-out clips scored for early stopping (the rest stay for `voxclone eval`)
TEXT_FRACTION = 0.4  # of the fit's steps speak a sentence with no recording (speaker loss only)
# The decoder adapter's Adam step. At 0.01 it was still far from converged when an 840 s budget ran out;
# 0.03 brought the independent d-vector 0.02-0.04 closer for three full-band speakers. Telephone-band
# recordings teach the adapter only below 4 kHz, and there 0.03 bought Resemblyzer but not the d-vector
# (fr-armelle -0.04, it-menardi -0.002), so they keep the slower step (README, Training).
DECODER_LR = 0.03
DECODER_LR_NARROW_BAND = 0.01
# Where the voice kept is too accented for the intelligibility check, the fit offers the state it kept last
# at or before this fraction of the kept voice's steps: the adapter takes in the speaker's timbre first and
# their accent later (it-carlo from 20 s: whole at step 130 of 210, 9 words missed of 279 where the start
# voice missed 5 and step 210 14, Resemblyzer / d-vector 0.861 / 0.826 against 0.850 / 0.810 for step
# 210's generator part; at step 160 already 14. ru-voice: step 160 of 280, 10 against 9 and 17, 0.849 /
# 0.838 against 0.850 / 0.835; README, Training).
EARLIER = 0.6
# The fit keeps, scores and offers a running average of its states (Polyak averaging, this decay per step)
# rather than the last one: at a constant step, Adam's last state jitters (held-out similarity +-0.01-0.02
# between evaluations 10 steps apart), and the average sits nearer the middle of where it jitters. All six
# devdata speakers from 20 s (0.24, one run against 0.23's): Resemblyzer / d-vector 0.863 / 0.882 against
# 0.861 / 0.882, closer on Resemblyzer for five of the six (+0.001 to +0.012), English WER within its
# stock voice's + 2 points for every one (README, Training). 0: off.
AVERAGE = 0.9


def decoder_projections(model: Kokoro) -> list[tuple[str, torch.nn.Linear]]:
    """The decoder's AdaIN style projections in the order of the ``decoder_bias`` vector (sorted by name,
    the order :func:`voxclone.engine.optimize` uses on the graph's ``decoder.decoder.<name>.bias``)."""
    return sorted(
        ((n, m) for n, m in model.decoder.named_modules() if n.endswith(".fc") and isinstance(m, torch.nn.Linear)),
        key=lambda item: item[0],
    )


def lora_layers(model: Kokoro) -> list[tuple[str, torch.nn.Conv1d]]:
    """The decoder convolutions the low-rank adapter reaches, in the order of its weights in a decoder adapter
    vector (sorted by module name, the order :func:`voxclone.engine.optimize` uses on the graph)."""
    return sorted(
        ((n, m) for n, m in model.named_modules() if LORA_MODULE.match(n) and isinstance(m, torch.nn.Conv1d)),
        key=lambda item: item[0],
    )


def adapter_sizes(model: Kokoro) -> tuple[int, int]:
    """(projection offsets, low-rank weights): the two parts of a decoder adapter vector."""
    return (
        sum(fc.out_features for _, fc in decoder_projections(model)),
        sum(conv.out_channels * LORA_RANK for _, conv in lora_layers(model)),
    )


def generator_span(model: Kokoro) -> tuple[int, int]:
    """Where the generator's projection offsets lie in a decoder adapter vector (after the ``decode`` and
    ``encode`` blocks' in name order; low-rank weights, when present, follow all the offsets)."""
    at, span = 0, None
    for name, fc in decoder_projections(model):
        if name.startswith("generator."):
            span = (span[0] if span else at, at + fc.out_features)
        at += fc.out_features
    if span is None:
        raise ValueError("this model's decoder has no generator style projections")
    return span


@contextmanager
def decoder_offsets(model: Kokoro, offsets: torch.Tensor | np.ndarray | None) -> Iterator[None]:
    """Within the block the decoder speaks with a decoder adapter vector (the graph's ``decoder_bias`` values,
    optionally followed by its ``decoder_lora`` ones): its style projections output ``fc(s) + offset`` and
    the adapted convolutions add ``B (A * x)`` (:func:`voxclone.engine.optimize.lora_projection`)."""
    if offsets is None:
        yield
        return
    vec = torch.as_tensor(offsets, dtype=torch.float32).reshape(-1)
    n_bias, n_lora = adapter_sizes(model)
    if len(vec) not in (n_bias, n_bias + n_lora):
        raise ValueError(
            f"a decoder bias vector has {n_bias} values (or {n_bias + n_lora} with low-rank weights) for this "
            f"model, got {len(vec)}"
        )
    projections = [fc for _, fc in decoder_projections(model)]
    hooks = []
    for fc, part in zip(projections, vec[:n_bias].split([fc.out_features for fc in projections]), strict=True):
        hooks.append(fc.register_forward_hook(lambda _m, _i, out, part=part: out + part))
    if len(vec) > n_bias:
        layers = lora_layers(model)
        weights = vec[n_bias:].split([conv.out_channels * LORA_RANK for _, conv in layers])
        for (name, conv), b in zip(layers, weights, strict=True):
            a = torch.from_numpy(lora_projection(name, conv.in_channels, conv.kernel_size[0]))
            b = b.reshape(conv.out_channels, LORA_RANK, 1)

            def low_rank(m, inputs, out, a=a, b=b):
                h = F.conv1d(inputs[0], a.to(inputs[0].dtype), padding=m.padding, dilation=m.dilation)
                return out + F.conv1d(h, b.to(h.dtype))

            hooks.append(conv.register_forward_hook(low_rank))
    try:
        yield
    finally:
        for h in hooks:
            h.remove()


def lora_scale(model: Kokoro) -> np.ndarray:
    """Per low-rank weight, the value at which a layer's ``B (A * x)`` is about as large as its convolution's
    output: the unit the fit measures the low-rank weights in."""
    parts = []
    for _, conv in lora_layers(model):
        w = conv.weight.detach()
        fan_in = w.shape[1] * w.shape[2]
        unit = float(w.pow(2).mean().sqrt()) * np.sqrt(fan_in / LORA_RANK)
        parts.append(np.full(conv.out_channels * LORA_RANK, unit, np.float32))
    return np.concatenate(parts)


def decoder_spread(model: Kokoro, packs: dict[str, np.ndarray]) -> np.ndarray:
    """Per-output std of the decoder projections over the stock voices: the decoder offsets' unit."""
    timbre = torch.from_numpy(_stock_means(packs)[:, :128])
    with torch.no_grad():
        return torch.cat([fc(timbre).std(0) for _, fc in decoder_projections(model)]).numpy()


def bf16_supported() -> bool:
    """Whether this CPU has bfloat16 instructions (AVX-512 BF16 or AMX); elsewhere bfloat16 is emulated, slower."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # an older torch without the probes
        return False


class MelLoss:
    """Log-mel spectra at several resolutions with the mel bank cut at the recording's band limit."""

    def __init__(self, fmax: float = 11_000.0, n_mels: int = 64):
        import librosa

        self.banks = []
        for n_fft, hop in RESOLUTIONS:
            with warnings.catch_warnings():  # a telephone band leaves the coarsest STFT's lowest bands empty
                warnings.simplefilter("ignore", UserWarning)
                bank = librosa.filters.mel(sr=RATE, n_fft=n_fft, n_mels=n_mels, fmin=50.0, fmax=fmax)
            bank = bank[bank.max(axis=1) > 0]  # an empty band is a constant, not a loss term
            self.banks.append((n_fft, hop, torch.from_numpy(bank), torch.hann_window(n_fft)))

    def spectra(self, audio: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for n_fft, hop, bank, window in self.banks:
            spec = torch.stft(audio, n_fft, hop, n_fft, window, center=True, return_complex=True).abs() ** 2
            out.append(torch.log(torch.clamp(bank @ spec, min=1e-7)))
        return out

    def __call__(self, audio: torch.Tensor, target: list[torch.Tensor]) -> torch.Tensor:
        loss = audio.new_zeros(())
        for got, want in zip(self.spectra(audio), target, strict=True):
            n = min(got.shape[-1], want.shape[-1])
            diff = got[..., :n] - want[..., :n]
            loss = loss + (diff - diff.mean()).abs().mean()  # a level difference is not a voice difference
        return loss / len(self.banks)


class SpeakerLoss:
    """1 - cosine between Resemblyzer's embedding of decoded audio and the speaker's, with gradients: the
    encoder's own front end (16 kHz, 25 ms / 10 ms power mel, -30 dBFS) rebuilt in torch, the 24 kHz audio
    brought to 16 kHz by a polyphase low-pass (up 2, down 3), the recording's band limit applied."""

    PARTIAL = 160  # frames per partial utterance (1.6 s), as Resemblyzer embeds

    def __init__(self, target: np.ndarray, band_hz: int = 0, encoder=None):
        import librosa

        from ..cloning.speaker import shared_encoder

        self.net = encoder or shared_encoder()._load()
        for q in self.net.parameters():
            q.requires_grad_(False)
        self.target = torch.as_tensor(np.asarray(target, np.float32)).reshape(256)
        bank = librosa.filters.mel(sr=16_000, n_fft=400, n_mels=40)
        if band_hz and band_hz < 8_000:  # heard through the speaker's channel, as the benchmark compares
            bank[:, np.fft.rfftfreq(400, 1 / 16_000) > band_hz] = 0.0
        self.bank = torch.from_numpy(bank)
        self.window = torch.hann_window(400)
        taps = np.arange(-60, 61)  # low-pass at 8 kHz for the 48 kHz intermediate rate, Kaiser-windowed
        h = np.sinc(taps / 3.0) * np.kaiser(len(taps), 8.0)
        self.kernel = torch.from_numpy((h / h.sum() * 2).astype(np.float32)).reshape(1, 1, -1)

    def to_16k(self, audio: torch.Tensor) -> torch.Tensor:  # [1, n] at 24 kHz
        up = torch.zeros(1, 1, 2 * audio.shape[-1], dtype=audio.dtype)
        up[..., ::2] = audio.reshape(1, 1, -1)
        return F.conv1d(up, self.kernel, padding=self.kernel.shape[-1] // 2)[0, 0, ::3]

    def embed(self, audio: torch.Tensor) -> torch.Tensor:
        x = self.to_16k(audio)
        x = x * (10 ** (-30 / 20) / _rms(x))
        spec = torch.stft(x, 400, 160, 400, self.window, center=True, pad_mode="constant", return_complex=True)
        mel = (self.bank @ spec.abs() ** 2).T  # [frames, 40]
        n = self.PARTIAL
        if mel.shape[0] < n:
            mel = F.pad(mel, (0, 0, 0, n - mel.shape[0]))
        starts = sorted({0, mel.shape[0] - n})
        e = self.net(torch.stack([mel[a : a + n] for a in starts])).mean(0)
        return e / e.norm()

    def __call__(self, audio: torch.Tensor) -> torch.Tensor:
        return 1.0 - self.embed(audio) @ self.target


class IntelligibilityLoss:
    """How much more Whisper is surprised by a sentence's words in the voice being fitted than in the voice it
    started from (per-token cross-entropy, see :mod:`.whisper`; 0 when no more): it pulls the fit away from
    the speaker's accent in the language the voice will speak, and no further than the start voice's
    clarity, so it has no reason to learn sounds that only Whisper finds clearer."""

    def __init__(self, language: str, resample: Callable[[torch.Tensor], torch.Tensor]):
        from .whisper import WhisperLoss

        self.whisper, self.resample = WhisperLoss(language), resample
        self.start: dict[str, float] = {}

    def __call__(self, audio: torch.Tensor, text: str, start_audio: Callable[[], torch.Tensor]) -> torch.Tensor:
        if text not in self.start:
            with torch.no_grad():
                self.start[text] = float(self.whisper(self.resample(start_audio()), text))
        return F.relu(self.whisper(self.resample(audio), text) - self.start[text])


@dataclass
class Utterance:
    """One clip prepared for fitting."""

    tokens: torch.Tensor  # [1, T] with the boundary tokens
    row: int  # style-pack row for this length
    durations: torch.Tensor  # [T] frames, summing to the clip's frames
    f0: torch.Tensor  # [2F] Hz, 0 where unvoiced
    target: list[torch.Tensor] | None  # log-mels of the clip; None for a sentence with no recording
    d_en: torch.Tensor  # ALBERT features (style-independent, computed once)
    asr: torch.Tensor  # text features on the clip's frames (style-independent)
    seconds: float
    text: str = ""  # the words of a sentence with no recording (for the intelligibility loss)


def clip_f0(audio: np.ndarray, frames: int) -> np.ndarray:
    """WORLD F0 at the predictor's rate (2 values per frame), 0 where unvoiced."""
    from ..cloning.quality import f0_track

    f0 = f0_track(audio, RATE, 1000 * F0_HOP / RATE)
    out = np.zeros(2 * frames, np.float32)
    n = min(len(out), len(f0))
    out[:n] = f0[:n]
    return out


def _align(model_mel: np.ndarray, clip_mel: np.ndarray, model_durations: np.ndarray) -> np.ndarray:
    """Frames per token for the clip, from a DTW path between the model's rendering and the clip."""
    import librosa

    def norm(m: np.ndarray) -> np.ndarray:
        m = m - m.mean(axis=1, keepdims=True)
        return m / (np.linalg.norm(m, axis=0, keepdims=True) + 1e-6)

    _, path = librosa.sequence.dtw(X=norm(model_mel), Y=norm(clip_mel), metric="euclidean")
    token_of_frame = np.repeat(np.arange(len(model_durations)), model_durations)
    token_for_clip = np.zeros(clip_mel.shape[1], np.int64)
    for i, j in path[::-1]:  # path runs backwards; keep the first model frame matched to each clip frame
        token_for_clip[j] = token_of_frame[min(i, len(token_of_frame) - 1)]
    token_for_clip = np.maximum.accumulate(token_for_clip)  # monotonic
    return np.bincount(token_for_clip, minlength=len(model_durations)).astype(np.int64)


class Clips(Sequence[Utterance]):
    """A speaker's clips, each aligned (:meth:`Adapter.prepare`, or ``prepare``) when first used."""

    def __init__(self, adapter: Adapter, items: list[tuple], prepare: Callable[..., Utterance] | None = None):
        self._prepare, self._items = prepare or adapter.prepare, items
        self._aligned: dict[int, Utterance] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, i: int) -> Utterance:  # no slices: each clip is aligned on its own
        i = range(len(self._items))[operator.index(i)]  # negative indices normalised, IndexError past the end
        if i not in self._aligned:
            self._aligned[i] = self._prepare(*self._items[i])
        return self._aligned[i]

    def aligned(self) -> list[Utterance]:
        return list(self._aligned.values())


@dataclass
class Snapshot:
    """An earlier state of a fit (see `EARLIER`), with the rate and pitch residuals of its own predictor."""

    step: int
    pack: np.ndarray  # (rows, 1, 256)
    delta: np.ndarray  # (256,)
    decoder: np.ndarray | None
    heldout_loss: float
    speed: float = 1.0
    pitch: float = 0.0


@dataclass
class Fitted:
    pack: np.ndarray  # (rows, 1, 256)
    delta: np.ndarray  # (256,)
    decoder: np.ndarray | None  # decoder_bias offsets, or None when only the style was fitted
    heldout_loss: float
    start_heldout_loss: float
    steps: int
    seconds: float
    log: list[dict] = field(default_factory=list)
    stopped: str = ""
    earlier: Snapshot | None = None  # the state kept at about `EARLIER` of the steps to this one


def _rms(x: torch.Tensor) -> torch.Tensor:
    return (x.pow(2).mean() + 1e-12).sqrt()  # the epsilon keeps the gradient finite at zero


def stock_spread(packs: dict[str, np.ndarray]) -> np.ndarray:
    """Per-dimension std of the stock voices' mean style rows: the unit the offset is measured in."""
    return _stock_means(packs).std(axis=0)


def _stock_means(packs: dict[str, np.ndarray]) -> np.ndarray:
    """Each stock voice's mean style row over the usual sentence lengths, (voices, 256)."""
    return np.stack([p[10:150].reshape(-1, 256).mean(axis=0) for p in packs.values()])


class Adapter:
    """Prepares a speaker's clips and fits a style offset to them."""

    def __init__(
        self,
        model: Kokoro,
        pack: np.ndarray,
        band_hz: int = 0,
        render: Callable[[list[int], np.ndarray], tuple[np.ndarray, np.ndarray | None]] | None = None,
    ):
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.pack = np.asarray(pack, np.float32)
        self.loss = MelLoss(fmax=min(11_000.0, 0.95 * band_hz) if band_hz else 11_000.0)
        self.speaker: SpeakerLoss | None = None  # set to add the speaker-embedding term
        self.intelligibility: IntelligibilityLoss | None = None  # set to add the intelligibility term
        # (tokens, style) -> (audio, durations) for aligning: the ONNX engine renders ~2x faster than torch
        self.render = render
        # the decoder's convolutions are most of a step; in bfloat16 where the CPU has it natively, ~1.4x faster
        self.bf16 = bf16_supported()

    def style(self, row: int, delta: torch.Tensor | None = None) -> torch.Tensor:
        s = torch.from_numpy(np.array(self.pack[min(max(row, 1), len(self.pack)) - 1].reshape(1, 256)))
        return s if delta is None else s + delta

    @torch.no_grad()
    def prepare(self, audio: np.ndarray, tokens: list[int]) -> Utterance:
        """Align one clip (24 kHz) with its phoneme tokens."""
        tk = torch.tensor([[0, *tokens, 0]])
        style = self.style(len(tokens))
        rendered, spans = self.render(tokens, style.numpy()) if self.render else (None, None)
        if spans is None:  # the rendering's own durations: those of another model would misplace tokens
            plan = self.model.predict(tk, style)
            rendered, spans = self.model.decode(tk, style, plan)[0].numpy(), plan.durations.numpy()
        frames = max(len(audio) // FRAME_SAMPLES, 1)
        audio = np.asarray(audio[: frames * FRAME_SAMPLES], np.float32)
        mel = self._frame_mel
        durations = _align(mel(rendered), mel(audio)[:, :frames], spans)
        durations[-1] += frames - int(durations.sum())  # the last token takes any rounding remainder
        dur = torch.from_numpy(durations)
        d_en = self.model.bert_encoder(self.model.bert(tk)).transpose(1, 2)
        asr = self.model.text_encoder(tk) @ self.model.alignment(dur)
        target = self.loss.spectra(torch.from_numpy(audio)[None])
        f0 = torch.from_numpy(clip_f0(audio, frames))[None]
        return Utterance(tk, len(tokens), dur, f0, target, d_en, asr, len(audio) / RATE)

    @torch.no_grad()
    def prepare_text(self, tokens: list[int], text: str = "") -> Utterance:
        """A sentence with no recording, on the durations the starting voice gives it (speaker loss, and the
        intelligibility loss when `text` gives its words)."""
        tk = torch.tensor([[0, *tokens, 0]])
        dur = self.model.predict(tk, self.style(len(tokens))).durations
        frames = int(dur.sum())
        d_en = self.model.bert_encoder(self.model.bert(tk)).transpose(1, 2)
        asr = self.model.text_encoder(tk) @ self.model.alignment(dur)
        f0 = torch.zeros(1, 2 * frames)  # nothing voiced: the decoder gets the predictor's F0
        return Utterance(tk, len(tokens), dur, f0, None, d_en, asr, frames * FRAME_SAMPLES / RATE, text)

    @torch.no_grad()
    def copy(self, audio: np.ndarray, tokens: list[int], decoder: np.ndarray | None = None) -> np.ndarray:
        """The voice (this adapter's pack, with a trained voice's `decoder` adapter) re-speaking a real clip
        (24 kHz) on the clip's own aligned durations and, where voiced, its F0: what still separates the
        result from the clip is timbre, not rhythm, intonation or language."""
        u = self.prepare(audio, tokens)
        s_timbre, _, _, f0, energy = self.predict_on(u)
        with decoder_offsets(self.model, decoder):
            out = self.model.decoder(u.asr, torch.where(u.f0 > 0, u.f0, f0), energy, s_timbre)
        return out.reshape(-1).numpy()

    def predict_on(self, u: Utterance, delta: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """(timbre style, prosody style, the predictor's text encoding, F0, energy) for `u`'s own durations,
        with the style offset `delta`."""
        m = self.model
        s_timbre, s_prosody = m.split_style(self.style(u.row, delta))
        d = m.predictor.text_encoder(u.d_en, s_prosody)
        f0, energy = m.predictor.f0n(d.transpose(1, 2) @ m.alignment(u.durations), s_prosody)
        return s_timbre, s_prosody, d, f0, energy

    def _frame_mel(self, audio: np.ndarray) -> np.ndarray:
        import librosa

        # alignment only needs the low band that every channel, telephone included, carries
        mel = librosa.feature.melspectrogram(
            y=audio, sr=RATE, n_fft=2048, hop_length=FRAME_SAMPLES, n_mels=40, fmax=4000.0, center=True
        )
        return np.log(mel + 1e-6)

    def losses(
        self,
        u: Utterance,
        delta: torch.Tensor,
        start: int = 0,
        frames: int = 0,
        bias: torch.Tensor | None = None,
        free: bool = False,
        free_speaker: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Losses for one clip; the decoder (the costly part) runs on `frames` frames from `start` (0: all),
        with its style projections shifted by `bias` (a decoder_bias vector) when given.

        The decoder gets the clip's own F0 where it is voiced, except with `free` (and for a sentence with
        no recording): then the predictor's F0, and the speaker loss stands in for the log-mel loss. With
        `free_speaker` the log-mel loss is taken on the clip's F0 and the speaker loss on a second decoding
        with the predictor's (held-out scoring)."""
        m = self.model
        free = free or u.target is None
        s_timbre, _, d, f0, energy = self.predict_on(u, delta)
        soft = torch.sigmoid(m.duration_logits(d)).sum(-1)[0]
        inner = slice(1, len(u.durations) - 1)  # boundary tokens hold the clip's edge silence
        l_dur = (soft[inner] - u.durations[inner].float()).abs().mean()
        if u.target is None:  # its durations are the model's own: nothing to learn from them
            l_dur = l_dur.detach() * 0
        voiced = (u.f0 > 0) & (f0.detach() > 30)
        l_f0 = (
            (torch.log(f0.clamp(min=30))[voiced] - torch.log(u.f0[voiced])).abs().mean()
            if voiced.any()
            else f0.new_zeros(())
        )
        total = u.asr.shape[-1]
        frames = min(frames or total, total)
        a, b = start, start + frames

        def decode(f0_dec: torch.Tensor) -> torch.Tensor:
            with decoder_offsets(m, bias), torch.autocast("cpu", torch.bfloat16, enabled=self.bf16):
                out = m.decoder(u.asr[..., a:b], f0_dec[:, 2 * a : 2 * b], energy[:, 2 * a : 2 * b], s_timbre)
            return out.float()

        if free:
            audio = decode(f0.detach())
            parts = {"mel": audio.new_zeros(()), "f0": l_f0, "duration": l_dur}
        else:
            audio = decode(torch.where(u.f0 > 0, u.f0, f0.detach()))
            target = [
                t[..., a * FRAME_SAMPLES // hop : b * FRAME_SAMPLES // hop]
                for t, (_, hop, _, _) in zip(u.target, self.loss.banks, strict=True)
            ]
            parts = {"mel": self.loss(audio, target), "f0": l_f0, "duration": l_dur}
        if self.speaker is not None:
            parts["speaker"] = self.speaker(decode(f0.detach()) if free_speaker and not free else audio)
        if self.intelligibility is not None and u.text and u.target is None and (a, b) == (0, total):

            def start_audio() -> torch.Tensor:
                s0, _, _, f0_start, energy0 = self.predict_on(u)
                return m.decoder(u.asr, f0_start, energy0, s0)

            parts["intelligibility"] = self.intelligibility(audio, u.text, start_audio)
        return parts

    def fit(
        self,
        train: Sequence[Utterance],
        heldout: list[Utterance],
        spread: np.ndarray,
        steps: int = 200,
        budget_s: float = 600.0,
        lr: float = 0.02,
        weights: tuple[float, float, float] = (1.0, 1.0, 0.05),
        spread_limit: float = 1.5,
        eval_every: int = 10,
        crop_frames: int = 100,
        heldout_frames: int = 160,
        seed: int = 0,
        progress: Callable[[dict], None] | None = None,
        decoder_spread: np.ndarray | None = None,
        decoder_lr: float = 0.01,
        decoder_limit: float = 1.0,
        lora_scale: np.ndarray | None = None,
        lora_lr: float = 0.005,
        lora_limit: float = 0.2,
        speaker_weight: float = 0.0,
        texts: Sequence[Utterance] = (),
        text_fraction: float = TEXT_FRACTION,
        intelligibility_weight: float = 0.0,
        average: float = AVERAGE,
    ) -> Fitted:
        """Adam on a 256-d style offset; `spread` is the stock voices' per-dimension std (the offset's unit).
        With `decoder_spread` (see :func:`decoder_spread`) the decoder's projection biases are fitted as well,
        in that unit, penalised beyond an rms of `decoder_limit`; with `lora_scale` too (see :func:`lora_scale`)
        the low-rank weights of its convolutions, penalised beyond an rms of `lora_limit` in that unit.
        Each step decodes a random `crop_frames` window (2.5 s) of one clip; held-out clips are scored on their
        middle `heldout_frames` (4 s), so evaluating costs the same however long the clips are. With a speaker
        loss, every second clip step decodes on the predictor's F0, and `text_fraction` of the steps decode one
        of `texts` (sentences without recordings, :meth:`prepare_text`) instead of a clip. With `average` (a
        decay per step, see `AVERAGE`) the states scored, kept and returned are a running average of the
        fitted values; the steps themselves move the values as without it."""
        t0 = time.perf_counter()
        rng = np.random.default_rng(seed)
        scale = torch.from_numpy(np.maximum(np.asarray(spread, np.float32), 1e-4)).reshape(1, 256)
        z = torch.zeros(1, 256, requires_grad=True)  # offset in units of the stock spread
        groups = [{"params": [z], "lr": lr}]
        if decoder_spread is not None:
            b_scale = torch.from_numpy(np.maximum(np.asarray(decoder_spread, np.float32), 1e-4))
            zb = torch.zeros(len(b_scale), requires_grad=True)
            groups.append({"params": [zb], "lr": decoder_lr})
        else:
            b_scale = zb = None
        if zb is not None and lora_scale is not None:
            l_scale = torch.from_numpy(np.asarray(lora_scale, np.float32))
            zl = torch.zeros(len(l_scale), requires_grad=True)
            groups.append({"params": [zl], "lr": lora_lr})
        else:
            l_scale = zl = None
        opt = torch.optim.Adam(groups)
        w_mel, w_f0, w_dur = weights

        def bias(b: torch.Tensor | None = None, lo: torch.Tensor | None = None) -> torch.Tensor | None:
            """The decoder adapter vector (the live parameters unless given others)."""
            b = zb if b is None else b
            if b is None:
                return None
            lo = zl if lo is None else lo
            return b * b_scale if lo is None else torch.cat([b * b_scale, lo * l_scale])

        live = (z, zb, zl)
        averaged = tuple(None if v is None else v.detach().clone() for v in live) if average > 0 else None

        def current() -> tuple:
            """The state scored and kept: the running average, or the live values."""
            return averaged if averaged is not None else tuple(None if v is None else v.detach() for v in live)

        def snapshot() -> tuple:
            return tuple(None if v is None else v.clone() for v in current())

        def total(parts: dict[str, torch.Tensor]) -> torch.Tensor:
            out = w_mel * parts["mel"] + w_f0 * parts["f0"] + w_dur * parts["duration"]
            out = out + speaker_weight * parts["speaker"] if "speaker" in parts else out
            return out + intelligibility_weight * parts.get("intelligibility", 0.0)

        similarity: list[float] = []  # held-out speaker similarity of the last evaluation, when scored

        listening = self.speaker is not None and speaker_weight > 0
        texts = texts if listening else ()

        def heldout_loss() -> float:
            v = current()
            with torch.no_grad():
                parts = [
                    self.losses(
                        u,
                        v[0] * scale,
                        max(0, (u.asr.shape[-1] - heldout_frames) // 2),
                        heldout_frames,
                        bias(v[1], v[2]),
                        free_speaker=listening,
                    )
                    for u in heldout
                ]
            similarity[:] = [1.0 - float(np.mean([float(p["speaker"]) for p in parts]))] if self.speaker else []
            return float(np.mean([float(total(p)) for p in parts]))

        start = best_loss = heldout_loss()
        eval_s = time.perf_counter() - t0  # what the closing evaluation will cost
        best = snapshot()
        kept: list[tuple[int, tuple, float]] = []  # (step, state, held-out loss) of every state kept
        log = [{"step": 0, "heldout": round(start, 4)}]
        stopped = "steps"
        step = clip_steps = 0
        step_s = 0.0  # a step's cost, a moving average
        try:
            for step in range(1, steps + 1):
                step_t0 = time.perf_counter()
                if texts and rng.random() < text_fraction:
                    u, free = texts[int(rng.integers(len(texts)))], True
                else:
                    u = train[int(rng.integers(len(train)))]
                    clip_steps += 1
                    free = listening and clip_steps % 2 == 0
                total_frames = u.asr.shape[-1]
                begin = int(rng.integers(0, max(total_frames - crop_frames, 0) + 1))
                # Whisper hears every word of a sentence it scores (see losses)
                whole = intelligibility_weight > 0 and u.target is None and bool(u.text)
                parts = self.losses(u, z * scale, 0 if whole else begin, 0 if whole else crop_frames, bias(), free)
                reg = 10 * sum(F.relu(_rms(h) - spread_limit) ** 2 for h in (z[:, :128], z[:, 128:]))
                if zb is not None:
                    reg = reg + 10 * F.relu(_rms(zb) - decoder_limit) ** 2
                if zl is not None:
                    reg = reg + 10 * F.relu(_rms(zl) - lora_limit) ** 2
                loss = total(parts) + reg
                opt.zero_grad()
                loss.backward()
                opt.step()
                if averaged is not None:
                    with torch.no_grad():
                        for a, v in zip(averaged, live, strict=True):
                            if a is not None:
                                a.mul_(average).add_(v.detach(), alpha=1.0 - average)
                now = time.perf_counter()
                step_s = now - step_t0 if step == 1 else 0.8 * step_s + 0.2 * (now - step_t0)
                # stop while another step, the evaluation due now and the closing one still fit: the
                # budget is a bound, not a point after which one more step and evaluation run
                due = step % eval_every == 0 and step != steps
                out_of_time = now - t0 + step_s + eval_s * (2 if due else 1) > budget_s
                if due or step == steps or out_of_time:
                    h = heldout_loss()
                    v = current()
                    spread_now = [_rms(part).item() for part in (v[0][:, :128], v[0][:, 128:])]
                    spread_now += [_rms(part).item() for part in v[1:] if part is not None]
                    entry = {
                        "step": step,
                        "heldout": round(h, 4),
                        "train": round(loss.item(), 4),
                        **{k: round(v.item(), 4) for k, v in parts.items()},
                        "spread": [round(v, 3) for v in spread_now],
                        "seconds": round(time.perf_counter() - t0, 1),
                    }
                    if similarity:
                        entry["similarity"] = round(similarity[0], 4)
                    if h < best_loss:
                        best_loss = h
                        best = snapshot()
                        kept.append((step, best, h))
                        entry["kept"] = True
                    log.append(entry)
                    if progress:
                        progress(entry)
                if out_of_time:
                    stopped = "budget"
                    break
        except KeyboardInterrupt:
            stopped = "interrupted (kept the best so far)"

        def state(v: tuple) -> tuple[np.ndarray, np.ndarray | None]:
            d = None if v[1] is None else bias(v[1], v[2]).numpy().astype(np.float32)
            return (v[0] * scale).numpy().reshape(256), d

        delta, dec = state(best)
        earlier = None
        if kept:
            before = [k for k in kept[:-1] if k[0] <= EARLIER * kept[-1][0]]
            if before:
                e_step, e_state, e_loss = before[-1]
                e_delta, e_dec = state(e_state)
                earlier = Snapshot(e_step, self.pack + e_delta.reshape(1, 1, 256), e_delta, e_dec, e_loss)
        return Fitted(
            self.pack + delta.reshape(1, 1, 256),
            delta,
            dec,
            best_loss,
            start,
            step,
            time.perf_counter() - t0,
            log,
            stopped,
            earlier,
        )


def train_voice(
    tts,
    collection,
    pack: np.ndarray,
    budget_s: float = 600.0,
    steps: int = 2000,
    seed: int = 0,
    progress: Callable[[dict], None] | None = None,
    model: Kokoro | None = None,
    decoder: bool = True,
    speaker_weight: float = 3.0,
    lang: str | None = None,
    lora: bool = False,
    intelligibility_weight: float = 0.0,
) -> tuple[Fitted, float, float]:
    """Fit `pack` to a collection's enrolment clips within `budget_s` seconds (aligning included); returns the
    fit, a speed and a pitch (semitones) correcting what the fitted predictor still gets wrong about the
    speaker's rate and median F0.

    Enrolment clips are aligned when the fit first draws them (:class:`Clips`), so minutes of audio cost
    only the clips the budget reaches; at most `MAX_HELDOUT` held-out clips steer early stopping. The
    fitting sentences of `lang`, the language the voice will speak (default: the one it was recorded in,
    where Kokoro speaks it), are spoken without recordings for the speaker loss (see :meth:`Adapter.fit`).
    `lora` fits the decoder's low-rank weights too; off by default: at 840 s it raised fr-june's English
    WER from 0.0% to 3.4% for +0.01 similarity (README, Training). `intelligibility_weight` adds
    :class:`IntelligibilityLoss` on the sentences without recordings; off by default: at 3 it let it-carlo's
    whole adapter pass the check but closed no more of the gap than the generator's part alone, and his
    English WER on the 48 sentences rose to 3.3% (README, Training)."""
    from ..cloning.build import texts_for
    from ..cloning.clone import speaking_language
    from . import convert

    t0 = time.perf_counter()
    torch.manual_seed(seed)
    model = model or convert.load()
    # aligning renders through the shared engine: in a server, speech waits for each render (its lock)
    adapter = Adapter(model, pack, collection.channel_hz, render=tts.engine.infer_timed)
    if speaker_weight > 0:
        adapter.speaker = SpeakerLoss(collection.embedding, collection.channel_hz)
    native = speaking_language(None, collection.language)  # Kokoro's code for the recorded language
    g2p = transcript_g2p(tts, collection.language, native)

    def usable(clips) -> list[tuple[np.ndarray, list[int]]]:
        out = []
        for clip in clips:
            tokens = transcript_tokens(g2p, clip.text) if clip.text.strip() else []
            if len(tokens) >= 4 and clip.duration >= 1.0:
                out.append((clip.samples, tokens))
        return out

    enroll, heldout = usable(collection.enroll), usable(collection.heldout)
    if len(heldout) > MAX_HELDOUT:  # spread over the recordings, not the first few of the first file
        heldout = [heldout[int(i)] for i in np.linspace(0, len(heldout) - 1, MAX_HELDOUT).round()]
    if not heldout and len(enroll) >= 2:  # a short collection: hold out one enrolment clip for early stopping
        heldout = [enroll.pop(int(np.argmin([len(x) for x, _ in enroll])))]
    if not enroll or not heldout:
        raise ValueError("too few transcribed clips to train on (need 2 of 1 s or more: 1 to fit, 1 to check)")
    held = [adapter.prepare(*item) for item in heldout]
    train = Clips(adapter, enroll)
    speak = tts._g2p_for(lang or native)
    if intelligibility_weight > 0 and adapter.speaker is not None:
        adapter.intelligibility = IntelligibilityLoss(speak.language.code.split("-")[0], adapter.speaker.to_16k)
    sentences = [(transcript_tokens(speak, t), t) for t in texts_for(speak.language.code)[0]]
    texts = Clips(adapter, [item for item in sentences if len(item[0]) >= 4], adapter.prepare_text)
    stock = tts._stock()
    spread, b_spread = stock_spread(stock), decoder_spread(model, stock) if decoder else None
    residual_s = 1.0 + 0.05 * len(train)  # the predictor once per aligned clip, after the fit
    fitted = adapter.fit(
        train,
        held,
        spread,
        steps=steps,
        budget_s=budget_s - (time.perf_counter() - t0) - residual_s,
        seed=seed,
        progress=progress,
        decoder_spread=b_spread,
        decoder_lr=DECODER_LR_NARROW_BAND if collection.channel_hz else DECODER_LR,
        lora_scale=lora_scale(model) if decoder and lora else None,
        speaker_weight=speaker_weight,
        texts=texts,
        intelligibility_weight=intelligibility_weight if adapter.intelligibility else 0.0,
    )
    # from the clips the fit drew (all of them for a short collection; a fair sample of a long one)
    clips = train.aligned() or [train[0]]
    speed, pitch = _residual(adapter, clips, torch.from_numpy(fitted.delta).reshape(1, 256))
    if fitted.earlier is not None:  # after the fit's budget, from the checks' (the fit stays as it was before 0.23)
        e = fitted.earlier
        e.speed, e.pitch = _residual(adapter, clips, torch.from_numpy(e.delta).reshape(1, 256))
    return fitted, speed, pitch


def transcript_tokens(g2p, text: str) -> list[int]:
    """Kokoro token ids for `text` (at most 500, the longest clip or sentence the fit takes)."""
    return [g2p.vocab[c] for c in g2p(text) if c in g2p.vocab][:500]


def transcript_g2p(tts, heard: str, kokoro_code: str):
    """Phonemes for what the clips say: Kokoro's G2P when it speaks the language, else espeak-ng's own voice
    for it (Russian, German, ...) mapped into Kokoro's symbols, which is close enough to align and fit."""
    from ..text.g2p import G2P, Language

    if kokoro_code[:2] == (heard or "en")[:2]:
        return tts._g2p_for(kokoro_code)
    g2p = G2P(Language(heard, heard, heard), tts._g2p_for(kokoro_code).vocab)
    try:
        g2p("a")
    except Exception:  # espeak-ng has no voice for it: the speaking language's rules are the best left
        return tts._g2p_for(kokoro_code)
    return g2p


@torch.no_grad()
def _residual(adapter: Adapter, clips: list[Utterance], delta: torch.Tensor) -> tuple[float, float]:
    m = adapter.model
    predicted = real = 0.0
    f0_pred, f0_real = [], []
    for u in clips:
        _, _, d, f0, _ = adapter.predict_on(u, delta)
        dur = m.durations(m.duration_logits(d))
        predicted += float(dur[1:-1].sum())
        real += float(u.durations[1:-1].sum())
        voiced = u.f0 > 0
        f0_pred.append(f0[voiced & (f0 > 30)].numpy())
        f0_real.append(u.f0[voiced].numpy())
    speed = float(np.clip(predicted / max(real, 1.0), 0.8, 1.25))
    fp, fr = np.concatenate(f0_pred), np.concatenate(f0_real)
    pitch = float(np.clip(12 * np.log2(np.median(fr) / np.median(fp)), -4, 4)) if len(fp) > 20 and len(fr) > 20 else 0.0
    return speed, pitch
