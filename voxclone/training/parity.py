"""Does the PyTorch rebuild speak like the int8 ONNX graph? Durations, log-mel distance, WER, similarity.

Audio is compared with both models decoding the ONNX graph's durations, so frames line up; durations are
compared separately. The log-mel distance is put beside a floor: the same torch model with every
quantised layer's input passed through the int8 dynamic quantiser the graph uses (DynamicQuantizeLinear:
per-tensor uint8 over the tensor's range), which is the difference int8 activations alone make.
"""

from __future__ import annotations

import copy
import time

import numpy as np
import onnx
import onnx.utils
import onnxruntime as ort
import torch

from ..engine import assets
from ..engine.voices import style_for
from ..text.g2p import G2P
from .model import Kokoro

DURATIONS = "/encoder/Clip_output_0"  # frames per token, before the cast to int64
VOICES = ("af_heart", "am_michael", "bf_emma", "bm_george", "ef_dora")
# layers the graph runs in float: the upsampling and depthwise transposed convolutions, the output conv,
# and the harmonic source's merge
FLOAT_LAYERS = ("ups.", "conv_post", "m_source", ".pool")


class Reference:
    """The ONNX graph with its durations exposed, and a cut of it that stops at the durations."""

    def __init__(self, path: str | None = None, threads: int = 2):
        model = onnx.load(str(path or assets.resolve_model(None)))
        model.graph.output.append(onnx.helper.make_tensor_value_info(DURATIONS, onnx.TensorProto.FLOAT, None))
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        self.session = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        front = onnx.utils.Extractor(model).extract_model(["tokens", "style", "speed"], [DURATIONS])
        self.front = ort.InferenceSession(front.SerializeToString(), so, providers=["CPUExecutionProvider"])

    @staticmethod
    def _feed(tokens: list[int], style: np.ndarray, speed: float) -> dict:
        return {
            "tokens": np.array([[0, *tokens, 0]], np.int64),
            "style": style.reshape(1, 256).astype(np.float32),
            "speed": np.array([speed], np.float32),
        }

    def __call__(self, tokens: list[int], style: np.ndarray, speed: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        audio, dur = self.session.run(None, self._feed(tokens, style, speed))
        return audio.reshape(-1), dur.reshape(-1).astype(np.int64)

    def durations(self, tokens: list[int], style: np.ndarray, speed: float = 1.0) -> np.ndarray:
        return self.front.run(None, self._feed(tokens, style, speed))[0].reshape(-1).astype(np.int64)


def int8_activations(model: Kokoro) -> Kokoro:
    """A copy whose quantised layers see their input through uint8 dynamic quantisation, as in the graph."""

    def quantise(_module, args):
        x = args[0]
        lo, hi = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
        scale = (hi - lo) / 255 or 1.0
        zero = round(-lo / scale)
        return ((torch.clamp(torch.round(x / scale) + zero, 0, 255) - zero) * scale, *args[1:])

    copy_ = copy.deepcopy(model)
    for name, module in copy_.named_modules():
        if isinstance(module, (torch.nn.Conv1d, torch.nn.Linear)) and not any(f in name for f in FLOAT_LAYERS):
            module.register_forward_pre_hook(quantise)
    return copy_


def log_mel(audio: np.ndarray, rate: int = 24_000) -> np.ndarray:
    import librosa

    mel = librosa.feature.melspectrogram(
        y=np.asarray(audio, np.float32), sr=rate, n_fft=1024, hop_length=256, n_mels=80
    )
    return np.log(np.maximum(mel, 1e-5))


def mel_l1(a: np.ndarray, b: np.ndarray) -> float:
    ma, mb = log_mel(a), log_mel(b)
    n = min(ma.shape[1], mb.shape[1])
    return float(np.abs(ma[:, :n] - mb[:, :n]).mean())


def run(
    model: Kokoro,
    sentences: list[str],
    voices: tuple[str, ...] = VOICES,
    floor_every: int = 4,
    audio_every: int = 1,
    reference: Reference | None = None,
    progress=None,
) -> dict:
    """Compare `model` with the ONNX graph on every sentence in every voice (English G2P for all).

    Durations are compared on every sentence; audio on every `audio_every`-th, the int8 floor on every
    `floor_every`-th of those."""
    from ..cloning.speaker import centroid, shared_encoder
    from ..transcribe import Transcriber, word_errors

    reference = reference or Reference()
    quantised = int8_activations(model)
    packs, _ = assets.load_voice_packs(None)
    vocab = assets.vocab()
    g2p = G2P("en-us", vocab)
    asr, enc = Transcriber(), shared_encoder()
    dur_diff, dur_tokens, exact = 0.0, 0, 0
    l1, floor = [], []
    errors = {"onnx": [0, 0], "torch": [0, 0]}
    per_voice = {}
    t_onnx = t_torch = audio_s = 0.0
    for voice in voices:
        clips: dict[str, list[np.ndarray]] = {"onnx": [], "torch": []}
        for i, text in enumerate(sentences):
            tokens = [vocab[c] for c in g2p(text) if c in vocab]
            style = style_for(packs[voice], len(tokens)).reshape(1, 256).astype(np.float32)
            tk, st = torch.tensor([[0, *tokens, 0]]), torch.from_numpy(style)
            with torch.no_grad():
                own = model.predict(tk, st).durations.numpy()
            if i % audio_every:
                ref_dur = reference.durations(tokens, style)
            else:
                t0 = time.perf_counter()
                ref_audio, ref_dur = reference(tokens, style)
                t_onnx += time.perf_counter() - t0
                with torch.no_grad():
                    t0 = time.perf_counter()
                    plan = model.prosody_for(tk, st, torch.from_numpy(ref_dur))
                    audio = model.decode(tk, st, plan)[0].numpy()
                    t_torch += time.perf_counter() - t0
                    if floor_every and (i // audio_every) % floor_every == 0:
                        q_audio = quantised.decode(tk, st, quantised.prosody_for(tk, st, torch.from_numpy(ref_dur)))
                        floor.append(mel_l1(audio, q_audio[0].numpy()))
                audio_s += len(ref_audio) / 24_000
                l1.append(mel_l1(ref_audio, audio))
                for name, clip in (("onnx", ref_audio), ("torch", audio)):
                    e, n = word_errors(text, asr.transcribe(clip, language="en", sample_rate=24_000))
                    errors[name][0] += e
                    errors[name][1] += n
                    clips[name].append(clip)
            dur_diff += float(np.abs(own - ref_dur).sum())
            dur_tokens += len(ref_dur)
            exact += int(np.array_equal(own, ref_dur))
            if progress:
                progress(voice, i)
        emb = {k: enc.embed_many(v, 24_000) for k, v in clips.items()}
        ref_c = centroid(emb["onnx"])
        per_voice[voice] = {
            "similarity_onnx_to_onnx_centroid": round(float((emb["onnx"] @ ref_c).mean()), 4),
            "similarity_torch_to_onnx_centroid": round(float((emb["torch"] @ ref_c).mean()), 4),
            "centroid_cosine": round(float(centroid(emb["torch"]) @ ref_c), 4),
        }
    sims = np.array(
        [[v["similarity_onnx_to_onnx_centroid"], v["similarity_torch_to_onnx_centroid"]] for v in per_voice.values()]
    )
    return {
        "sentences": len(sentences),
        "audio_compared": len(l1),
        "voices": list(voices),
        "duration_mean_abs_diff_frames": round(dur_diff / max(dur_tokens, 1), 4),
        "duration_identical_fraction": round(exact / (len(sentences) * len(voices)), 4),
        "log_mel_l1": round(float(np.mean(l1)), 4),
        "log_mel_l1_int8_floor": round(float(np.mean(floor)), 4) if floor else None,
        "wer_onnx": round(errors["onnx"][0] / max(errors["onnx"][1], 1), 4),
        "wer_torch": round(errors["torch"][0] / max(errors["torch"][1], 1), 4),
        "similarity_onnx": round(float(sims[:, 0].mean()), 4),
        "similarity_torch": round(float(sims[:, 1].mean()), 4),
        "per_voice": per_voice,
        "rtf_onnx": round(t_onnx / max(audio_s, 1e-9), 4),
        "rtf_torch": round(t_torch / max(audio_s, 1e-9), 4),
    }
