"""Whisper-base in PyTorch, rebuilt from the CTranslate2 model faster-whisper runs, as a training loss.

The loss is how surprised Whisper is by a sentence's words when it hears the voice say them: the
cross-entropy of the transcript's tokens, teacher-forced. An accent raises it: on 8 of the check
sentences Kokoro's af_heart speaking English costs 0.15 nats a token, the French ff_siwis 0.61, the
Italian if_sara 1.29 (whole-window greedy decoding of this port misses 0, 10 and 47 words where
faster-whisper misses 0, 11 and 43). The encoder hears the sentence at its own length instead of a
padded 30 s window: 0.36 s forward and backward for 3 s of speech on 2 cores against 3.2 s, and the
three voices rank the same (0.11 / 0.56 / 1.26 padded).

`model.bin` is CTranslate2's own format (a version, the spec's name and revision, then each variable:
name, shape, type, bytes); Whisper-base ships it in float16.
"""

from __future__ import annotations

import struct
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

_TYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")  # CTranslate2's DataType order


def read_ctranslate2(path: Path) -> dict[str, np.ndarray]:
    """Every variable of a CTranslate2 ``model.bin`` (aliases left out)."""
    out: dict[str, np.ndarray] = {}
    with open(path, "rb") as f:

        def num(fmt: str) -> int:
            return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]

        def text() -> str:
            return f.read(num("H"))[:-1].decode()

        num("I"), text(), num("I")  # binary version, spec name, spec revision
        for _ in range(num("I")):
            name = text()
            shape = [num("I") for _ in range(num("B"))]
            kind = _TYPES[num("B")]
            out[name] = np.frombuffer(f.read(num("I")), dtype=kind).reshape(shape)
    return out


class Whisper:
    """The encoder and decoder of a CTranslate2 Whisper model as plain tensor functions (no grad on weights)."""

    def __init__(self, folder: Path):
        raw = read_ctranslate2(Path(folder) / "model.bin")
        self.w = {k: torch.from_numpy(v.astype(np.float32)) for k, v in raw.items() if v.dtype == np.float16}
        self.heads = int(raw["encoder/num_heads"])
        self.layers = {
            part: sum(1 for k in self.w if k.startswith(f"{part}/layer_") and k.endswith("/ffn/linear_0/weight"))
            for part in ("encoder", "decoder")
        }

    def _norm(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:], self.w[f"{name}/gamma"], self.w[f"{name}/beta"], 1e-5)

    def _linear(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.linear(x, self.w[f"{name}/weight"], self.w[f"{name}/bias"])

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False) -> torch.Tensor:
        b, t, d = q.shape

        def heads(x: torch.Tensor) -> torch.Tensor:
            return x.view(b, x.shape[1], self.heads, d // self.heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(heads(q), heads(k), heads(v), is_causal=causal)
        return out.transpose(1, 2).reshape(b, t, d)

    def _block(self, x: torch.Tensor, name: str, memory: torch.Tensor | None = None) -> torch.Tensor:
        q, k, v = self._linear(
            self._norm(x, f"{name}/self_attention/layer_norm"), f"{name}/self_attention/linear_0"
        ).chunk(3, -1)
        x = x + self._linear(self._attend(q, k, v, causal=memory is not None), f"{name}/self_attention/linear_1")
        if memory is not None:
            q = self._linear(self._norm(x, f"{name}/attention/layer_norm"), f"{name}/attention/linear_0")
            k, v = self._linear(memory, f"{name}/attention/linear_1").chunk(2, -1)
            x = x + self._linear(self._attend(q, k, v), f"{name}/attention/linear_2")
        y = F.gelu(self._linear(self._norm(x, f"{name}/ffn/layer_norm"), f"{name}/ffn/linear_0"))
        return x + self._linear(y, f"{name}/ffn/linear_1")

    def encode(self, mel: torch.Tensor) -> torch.Tensor:
        """[1, 80, frames] log-mel -> [1, frames / 2, 512] (at most 3,000 frames: 30 s)."""
        w = self.w
        x = F.gelu(F.conv1d(mel, w["encoder/conv1/weight"], w["encoder/conv1/bias"], padding=1))
        x = F.gelu(F.conv1d(x, w["encoder/conv2/weight"], w["encoder/conv2/bias"], stride=2, padding=1))
        x = x.transpose(1, 2) + w["encoder/position_encodings/encodings"][: x.shape[-1]]
        for i in range(self.layers["encoder"]):
            x = self._block(x, f"encoder/layer_{i}")
        return self._norm(x, "encoder/layer_norm")

    def logits(self, tokens: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """[1, L] token ids -> [1, L, vocabulary] next-token logits, attending to the encoder's `memory`."""
        embed = self.w["decoder/embeddings/weight"]
        x = F.embedding(tokens, embed) + self.w["decoder/position_encodings/encodings"][: tokens.shape[1]]
        for i in range(self.layers["decoder"]):
            x = self._block(x, f"decoder/layer_{i}", memory)
        return self._norm(x, "decoder/layer_norm") @ embed.T


class LogMel:
    """Whisper's log-mel front end (25 ms / 10 ms, 80 bands, 8 decades below the peak) in torch, on 16 kHz."""

    def __init__(self):
        from faster_whisper.feature_extractor import FeatureExtractor

        self.bank = torch.from_numpy(np.asarray(FeatureExtractor().mel_filters, np.float32))
        self.window = torch.hann_window(400)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(F.pad(x, (0, 160)), 400, 160, 400, self.window, center=True, return_complex=True)
        mel = torch.log10(torch.clamp(self.bank @ spec[..., :-1].abs() ** 2, min=1e-10))
        mel = torch.maximum(mel, mel.max().detach() - 8.0)
        return ((mel + 4.0) / 4.0)[None]


class Transcripts:
    """Whisper's token sequences for a transcript: start, language, transcribe, no timestamps, text, end."""

    def __init__(self, folder: Path, language: str = "en"):
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))
        tid = self.tokenizer.token_to_id
        self.prefix = [
            tid("<|startoftranscript|>"),
            tid(f"<|{language}|>"),
            tid("<|transcribe|>"),
            tid("<|notimestamps|>"),
        ]
        if None in self.prefix:
            raise ValueError(f"Whisper has no language token for {language!r}")
        self.end = tid("<|endoftext|>")

    def __call__(self, text: str) -> list[int]:
        return [*self.prefix, *self.tokenizer.encode(" " + text.strip(), add_special_tokens=False).ids, self.end]


class WhisperLoss:
    """Per-token cross-entropy of a transcript given 16 kHz audio (a torch tensor, gradients flow to it)."""

    def __init__(self, language: str = "en", folder: Path | None = None):
        from ..engine.assets import whisper_model_dir

        folder = folder or whisper_model_dir()
        self.model, self.mel, self.transcripts = _model(str(folder)), LogMel(), Transcripts(folder, language)

    def __call__(self, audio16: torch.Tensor, text: str) -> torch.Tensor:
        ids = torch.tensor([self.transcripts(text)])
        memory = self.model.encode(self.mel(audio16.reshape(-1))[..., :3000])
        logits = self.model.logits(ids[:, :-1], memory)[0]
        first = len(self.transcripts.prefix) - 1  # the prefix is given, not predicted
        return F.cross_entropy(logits[first:], ids[0, first + 1 :])


@lru_cache(maxsize=1)
def _model(folder: str) -> Whisper:
    return Whisper(Path(folder))
