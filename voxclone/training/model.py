"""Kokoro-82M (StyleTTS2 + iSTFTNet) as PyTorch modules, split into the stages synthesis goes through.

Module and parameter names follow the official `kokoro` package's state dict, so its `kokoro-v1_0.pth` loads
as well as the weights `convert.py` recovers from the int8 ONNX. The decoder's harmonic source is the
deterministic one the ONNX export runs (no random initial phase, no additive noise), which makes the torch
model comparable with the ONNX one sample for sample and its gradients repeatable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

CONFIG = {
    "n_token": 178,
    "hidden_dim": 512,
    "style_dim": 128,
    "n_layer": 3,
    "max_dur": 50,
    "text_kernel": 5,
    "bert": {
        "vocab": 178,
        "embedding": 128,
        "hidden": 768,
        "heads": 12,
        "intermediate": 2048,
        "positions": 512,
        "layers": 12,
    },
    "upsample_rates": (10, 6),
    "upsample_kernels": (20, 12),
    "upsample_initial_channel": 512,
    "resblock_kernels": (3, 7, 11),
    "resblock_dilations": ((1, 3, 5), (1, 3, 5), (1, 3, 5)),
    "n_fft": 20,
    "hop": 5,
    "sample_rate": 24000,
}
# The exported graph divides by the window overlap (1.5 for a periodic Hann at hop n_fft/4) only over its
# first 20 samples, a length fixed when it was traced, so the audio voxclone ships is 1.5x (3.5 dB) louder
# than a normalised inverse STFT. The torch model matches the graph the fast path runs.
ONNX_GAIN = 1.5
FRAME_SAMPLES = 600  # audio samples per duration frame (2 x 10 x 6 x 5)


# ---------------------------------------------------------------- text side: ALBERT, text encoder, prosody


class _AlbertEmbeddings(nn.Module):
    def __init__(self, c: dict):
        super().__init__()
        self.word_embeddings = nn.Embedding(c["vocab"], c["embedding"])
        self.position_embeddings = nn.Embedding(c["positions"], c["embedding"])
        self.token_type_embeddings = nn.Embedding(2, c["embedding"])
        self.LayerNorm = nn.LayerNorm(c["embedding"], eps=1e-12)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.word_embeddings(tokens) + self.position_embeddings(pos)[None] + self.token_type_embeddings.weight[0]
        return self.LayerNorm(x)


class _AlbertAttention(nn.Module):
    def __init__(self, c: dict):
        super().__init__()
        h = c["hidden"]
        self.heads = c["heads"]
        self.query, self.key, self.value, self.dense = (nn.Linear(h, h) for _ in range(4))
        self.LayerNorm = nn.LayerNorm(h, eps=1e-12)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        b, t, h = x.shape

        def heads(y: torch.Tensor) -> torch.Tensor:
            return y.view(b, t, self.heads, h // self.heads).transpose(1, 2)

        scores = heads(self.query(x)) @ heads(self.key(x)).transpose(-1, -2) / math.sqrt(h // self.heads)
        if bias is not None:
            scores = scores + bias
        ctx = (scores.softmax(-1) @ heads(self.value(x))).transpose(1, 2).reshape(b, t, h)
        return self.LayerNorm(x + self.dense(ctx))


class _AlbertLayer(nn.Module):
    def __init__(self, c: dict):
        super().__init__()
        self.attention = _AlbertAttention(c)
        self.ffn = nn.Linear(c["hidden"], c["intermediate"])
        self.ffn_output = nn.Linear(c["intermediate"], c["hidden"])
        self.full_layer_layer_norm = nn.LayerNorm(c["hidden"], eps=1e-12)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        a = self.attention(x, bias)
        return self.full_layer_layer_norm(a + self.ffn_output(F.gelu(self.ffn(a), approximate="tanh")))


class _AlbertGroup(nn.Module):
    def __init__(self, c: dict):
        super().__init__()
        self.albert_layers = nn.ModuleList([_AlbertLayer(c)])


class _AlbertEncoder(nn.Module):
    def __init__(self, c: dict):
        super().__init__()
        self.embedding_hidden_mapping_in = nn.Linear(c["embedding"], c["hidden"])
        self.albert_layer_groups = nn.ModuleList([_AlbertGroup(c)])
        self.layers = c["layers"]

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        x = self.embedding_hidden_mapping_in(x)
        layer = self.albert_layer_groups[0].albert_layers[0]  # ALBERT shares one layer across all 12
        for _ in range(self.layers):
            x = layer(x, bias)
        return x


class Albert(nn.Module):
    """The phoneme-level ALBERT (PL-BERT) that feeds the duration and prosody predictor."""

    def __init__(self, c: dict):
        super().__init__()
        self.embeddings = _AlbertEmbeddings(c)
        self.encoder = _AlbertEncoder(c)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        bias = None if mask is None else (mask[:, None, None, :].float() * -1e9)  # mask: True at padding
        return self.encoder(self.embeddings(tokens), bias)


def _masked_fill(x: torch.Tensor, mask: torch.Tensor | None, channels_first: bool) -> torch.Tensor:
    if mask is None:
        return x
    return x.masked_fill(mask[:, None, :] if channels_first else mask[:, :, None], 0.0)


def _lstm(lstm: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """Run a batch-first LSTM over [B, T, C], packing when the batch has padding."""
    if lengths is None or bool((lengths == x.shape[1]).all()):
        return lstm(x)[0]
    packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
    return nn.utils.rnn.pad_packed_sequence(lstm(packed)[0], batch_first=True, total_length=x.shape[1])[0]


class _ChannelNorm(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, T]
        return F.layer_norm(x.transpose(1, 2), x.shape[1:2], self.gamma, self.beta, 1e-5).transpose(1, 2)


class TextEncoder(nn.Module):
    """Phonemes -> acoustic text features [B, 512, T] (the decoder's content input)."""

    def __init__(self, channels: int, kernel: int, depth: int, n_symbols: int):
        super().__init__()
        self.embedding = nn.Embedding(n_symbols, channels)
        self.cnn = nn.ModuleList(
            nn.Sequential(
                nn.Conv1d(channels, channels, kernel, padding=kernel // 2),
                _ChannelNorm(channels),
                nn.LeakyReLU(0.2),
                nn.Dropout(0.2),
            )
            for _ in range(depth)
        )
        self.lstm = nn.LSTM(channels, channels // 2, 1, batch_first=True, bidirectional=True)

    def forward(
        self, tokens: torch.Tensor, lengths: torch.Tensor | None = None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        x = _masked_fill(self.embedding(tokens).transpose(1, 2), mask, True)
        for block in self.cnn:
            x = _masked_fill(block(x), mask, True)
        x = _lstm(self.lstm, x.transpose(1, 2), lengths)
        return _masked_fill(x.transpose(1, 2), mask, True)


class AdaLayerNorm(nn.Module):
    def __init__(self, style_dim: int, channels: int):
        super().__init__()
        self.fc = nn.Linear(style_dim, channels * 2)

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:  # x [B, T, C]
        gamma, beta = self.fc(s)[:, None, :].chunk(2, dim=-1)
        return (1 + gamma) * F.layer_norm(x, x.shape[-1:], eps=1e-5) + beta


class DurationEncoder(nn.Module):
    """Style-conditioned BiLSTM stack over the ALBERT features; its output drives durations, F0 and energy."""

    def __init__(self, style_dim: int, d_model: int, nlayers: int):
        super().__init__()
        self.lstms = nn.ModuleList()
        for _ in range(nlayers):
            self.lstms.append(nn.LSTM(d_model + style_dim, d_model // 2, 1, batch_first=True, bidirectional=True))
            self.lstms.append(AdaLayerNorm(style_dim, d_model))

    def forward(
        self, x: torch.Tensor, s: torch.Tensor, lengths: torch.Tensor | None = None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:  # x [B, C, T] -> [B, T, C + style]
        style = s[:, None, :].expand(-1, x.shape[2], -1)
        x = _masked_fill(torch.cat([x.transpose(1, 2), style], -1), mask, False)
        for block in self.lstms:
            if isinstance(block, AdaLayerNorm):
                x = _masked_fill(torch.cat([block(x, s), style], -1), mask, False)
            else:
                x = _masked_fill(_lstm(block, x, lengths), mask, False)
        return x


class _LinearNorm(nn.Module):
    def __init__(self, i: int, o: int):
        super().__init__()
        self.linear_layer = nn.Linear(i, o)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_layer(x)


# ---------------------------------------------------------------- style-conditioned convolution blocks


class AdaIN1d(nn.Module):
    def __init__(self, style_dim: int, channels: int):
        super().__init__()
        self.fc = nn.Linear(style_dim, channels * 2)

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.fc(s)[:, :, None].chunk(2, dim=1)
        mean = x.mean(-1, keepdim=True)
        var = x.var(-1, keepdim=True, unbiased=False)
        return (1 + gamma) * (x - mean) / torch.sqrt(var + 1e-5) + beta


class AdainResBlk1d(nn.Module):
    def __init__(self, dim_in: int, dim_out: int, style_dim: int, upsample: bool = False):
        super().__init__()
        self.upsample = upsample
        self.conv1 = nn.Conv1d(dim_in, dim_out, 3, 1, 1)
        self.conv2 = nn.Conv1d(dim_out, dim_out, 3, 1, 1)
        self.norm1 = AdaIN1d(style_dim, dim_in)
        self.norm2 = AdaIN1d(style_dim, dim_out)
        self.learned_sc = dim_in != dim_out
        if self.learned_sc:
            self.conv1x1 = nn.Conv1d(dim_in, dim_out, 1, 1, 0, bias=False)
        if upsample:
            self.pool = nn.ConvTranspose1d(dim_in, dim_in, 3, 2, groups=dim_in, padding=1, output_padding=1)

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        r = F.leaky_relu(self.norm1(x, s), 0.2)
        if self.upsample:
            r = self.pool(r)
        r = self.conv2(F.leaky_relu(self.norm2(self.conv1(r), s), 0.2))
        sc = F.interpolate(x, scale_factor=2, mode="nearest") if self.upsample else x
        if self.learned_sc:
            sc = self.conv1x1(sc)
        return (r + sc) * (1 / math.sqrt(2))


class ProsodyPredictor(nn.Module):
    def __init__(self, style_dim: int, d_hid: int, nlayers: int, max_dur: int):
        super().__init__()
        self.text_encoder = DurationEncoder(style_dim, d_hid, nlayers)
        self.lstm = nn.LSTM(d_hid + style_dim, d_hid // 2, 1, batch_first=True, bidirectional=True)
        self.duration_proj = _LinearNorm(d_hid, max_dur)
        self.shared = nn.LSTM(d_hid + style_dim, d_hid // 2, 1, batch_first=True, bidirectional=True)
        half = d_hid // 2
        for name in ("F0", "N"):
            setattr(
                self,
                name,
                nn.ModuleList(
                    [
                        AdainResBlk1d(d_hid, d_hid, style_dim),
                        AdainResBlk1d(d_hid, half, style_dim, upsample=True),
                        AdainResBlk1d(half, half, style_dim),
                    ]
                ),
            )
        self.F0_proj = nn.Conv1d(half, 1, 1)
        self.N_proj = nn.Conv1d(half, 1, 1)

    def f0n(self, en: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame-level features [B, 640, F] -> F0 and energy curves [B, 2F] (two values per frame)."""
        x = self.shared(en.transpose(1, 2))[0].transpose(1, 2)
        f0, n = x, x
        for block in self.F0:
            f0 = block(f0, s)
        for block in self.N:
            n = block(n, s)
        return self.F0_proj(f0)[:, 0], self.N_proj(n)[:, 0]


# ---------------------------------------------------------------- decoder: iSTFTNet with a harmonic source


class _SnakeResBlock(nn.Module):
    def __init__(self, channels: int, kernel: int, dilations: tuple[int, ...], style_dim: int):
        super().__init__()
        self.convs1 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel, 1, dilation=d, padding=d * (kernel - 1) // 2) for d in dilations
        )
        self.convs2 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel, 1, padding=(kernel - 1) // 2) for _ in dilations
        )
        self.adain1 = nn.ModuleList(AdaIN1d(style_dim, channels) for _ in dilations)
        self.adain2 = nn.ModuleList(AdaIN1d(style_dim, channels) for _ in dilations)
        self.alpha1 = nn.ParameterList(nn.Parameter(torch.ones(1, channels, 1)) for _ in dilations)
        self.alpha2 = nn.ParameterList(nn.Parameter(torch.ones(1, channels, 1)) for _ in dilations)

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        for c1, c2, n1, n2, a1, a2 in zip(
            self.convs1, self.convs2, self.adain1, self.adain2, self.alpha1, self.alpha2, strict=True
        ):
            t = n1(x, s)
            t = c1(t + (1 / a1) * torch.sin(a1 * t) ** 2)
            t = n2(t, s)
            x = x + c2(t + (1 / a2) * torch.sin(a2 * t) ** 2)
        return x


class _HarmonicSource(nn.Module):
    """F0 -> a sum of 9 harmonics merged by a learned linear layer (deterministic, as exported)."""

    def __init__(self, sample_rate: int, upsample: int, harmonics: int = 8):
        super().__init__()
        self.sample_rate, self.upsample_scale = sample_rate, upsample
        self.register_buffer("orders", torch.arange(1, harmonics + 2, dtype=torch.float32), persistent=False)
        self.l_linear = nn.Linear(harmonics + 1, 1)

    def forward(self, f0: torch.Tensor) -> torch.Tensor:  # f0 [B, L] at the audio rate
        rad = (f0[:, :, None] * self.orders / self.sample_rate) % 1  # [B, L, H]
        down = F.interpolate(rad.transpose(1, 2), scale_factor=1 / self.upsample_scale, mode="linear")
        phase = torch.cumsum(down, dim=2) * 2 * math.pi
        phase = F.interpolate(phase * self.upsample_scale, scale_factor=self.upsample_scale, mode="linear")
        sines = torch.sin(phase).transpose(1, 2) * 0.1 * (f0[:, :, None] > 10).float()
        return torch.tanh(self.l_linear(sines))[:, :, 0]


class Generator(nn.Module):
    def __init__(self, style_dim: int, c: dict):
        super().__init__()
        rates, kernels = c["upsample_rates"], c["upsample_kernels"]
        ch0, n_fft = c["upsample_initial_channel"], c["n_fft"]
        self.n_fft, self.hop = n_fft, c["hop"]
        self.num_kernels = len(c["resblock_kernels"])
        self.m_source = _HarmonicSource(c["sample_rate"], math.prod(rates) * self.hop)
        self.ups = nn.ModuleList(
            nn.ConvTranspose1d(ch0 // 2**i, ch0 // 2 ** (i + 1), k, u, padding=(k - u) // 2)
            for i, (u, k) in enumerate(zip(rates, kernels, strict=True))
        )
        self.resblocks = nn.ModuleList()
        self.noise_convs = nn.ModuleList()
        self.noise_res = nn.ModuleList()
        for i in range(len(rates)):
            ch = ch0 // 2 ** (i + 1)
            for k, d in zip(c["resblock_kernels"], c["resblock_dilations"], strict=True):
                self.resblocks.append(_SnakeResBlock(ch, k, d, style_dim))
            if i + 1 < len(rates):
                stride = math.prod(rates[i + 1 :])
                self.noise_convs.append(nn.Conv1d(n_fft + 2, ch, stride * 2, stride, padding=(stride + 1) // 2))
                self.noise_res.append(_SnakeResBlock(ch, 7, (1, 3, 5), style_dim))
            else:
                self.noise_convs.append(nn.Conv1d(n_fft + 2, ch, 1))
                self.noise_res.append(_SnakeResBlock(ch, 11, (1, 3, 5), style_dim))
        self.conv_post = nn.Conv1d(ch, n_fft + 2, 7, 1, padding=3)
        self.register_buffer("window", torch.hann_window(n_fft, periodic=True), persistent=False)

    def forward(self, x: torch.Tensor, s: torch.Tensor, f0: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():  # the source depends on F0 only; F0 reaches the decoder's gradients via F0_conv
            source = self.m_source(f0.repeat_interleave(self.m_source.upsample_scale, dim=1))
            spec = torch.stft(
                source,
                self.n_fft,
                self.hop,
                self.n_fft,
                self.window,
                center=True,
                pad_mode="reflect",
                return_complex=True,
            )
            har = torch.cat([spec.abs(), torch.atan2(spec.imag, spec.real)], dim=1)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, 0.1))
            if i == len(self.ups) - 1:
                x = F.pad(x, (1, 0), mode="reflect")
            x = x + self.noise_res[i](self.noise_convs[i](har), s)
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            x = sum(block(x, s) for block in blocks) / self.num_kernels
        x = self.conv_post(F.leaky_relu(x, 0.01))
        half = self.n_fft // 2 + 1
        mag, phase = torch.exp(x[:, :half]), torch.sin(x[:, half:])
        audio = torch.istft(torch.polar(mag, phase), self.n_fft, self.hop, self.n_fft, self.window, center=True)
        return audio * ONNX_GAIN


class Decoder(nn.Module):
    def __init__(self, dim_in: int, style_dim: int, c: dict):
        super().__init__()
        self.encode = AdainResBlk1d(dim_in + 2, 1024, style_dim)
        self.decode = nn.ModuleList(
            [AdainResBlk1d(1024 + 2 + 64, 1024, style_dim) for _ in range(3)]
            + [AdainResBlk1d(1024 + 2 + 64, 512, style_dim, upsample=True)]
        )
        self.F0_conv = nn.Conv1d(1, 1, 3, 2, padding=1)
        self.N_conv = nn.Conv1d(1, 1, 3, 2, padding=1)
        self.asr_res = nn.Sequential(nn.Conv1d(512, 64, 1))
        self.generator = Generator(style_dim, c)

    def forward(self, asr: torch.Tensor, f0: torch.Tensor, n: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        f0_down, n_down = self.F0_conv(f0[:, None]), self.N_conv(n[:, None])
        x = self.encode(torch.cat([asr, f0_down, n_down], 1), s)
        res = self.asr_res(asr)
        for block in self.decode:  # every block sees the content, F0 and energy again; the last upsamples
            x = block(torch.cat([x, res, f0_down, n_down], 1), s)
        return self.generator(x, s, f0)


# ---------------------------------------------------------------- the whole model, stage by stage


@dataclass
class Prosody:
    """What the predictor decides for one utterance; every field can be replaced before decoding."""

    durations: torch.Tensor  # [T] frames per phoneme (long)
    f0: torch.Tensor  # [B, 2F] Hz
    energy: torch.Tensor  # [B, 2F]


class Kokoro(nn.Module):
    """Kokoro-82M in PyTorch. `forward` matches the ONNX graph; the stage methods let training swap any part."""

    def __init__(self, config: dict | None = None):
        super().__init__()
        c = dict(CONFIG, **(config or {}))
        self.config = c
        self.bert = Albert(c["bert"])
        self.bert_encoder = nn.Linear(c["bert"]["hidden"], c["hidden_dim"])
        self.predictor = ProsodyPredictor(c["style_dim"], c["hidden_dim"], c["n_layer"], c["max_dur"])
        self.text_encoder = TextEncoder(c["hidden_dim"], c["text_kernel"], c["n_layer"], c["n_token"])
        self.decoder = Decoder(c["hidden_dim"], c["style_dim"], c)

    # style rows: the first 128 values drive the decoder (timbre), the last 128 the predictor (prosody)
    @staticmethod
    def split_style(style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return style[:, :128], style[:, 128:]

    def duration_features(self, tokens: torch.Tensor, s_prosody: torch.Tensor) -> torch.Tensor:
        """Tokens [B, T] -> the duration encoder's features [B, T, 640]."""
        d_en = self.bert_encoder(self.bert(tokens)).transpose(1, 2)
        return self.predictor.text_encoder(d_en, s_prosody)

    def duration_logits(self, d: torch.Tensor) -> torch.Tensor:
        """[B, T, 640] -> [B, T, 50]; sigmoid-summed they give frames per phoneme."""
        return self.predictor.duration_proj(self.predictor.lstm(d)[0])

    @staticmethod
    def durations(logits: torch.Tensor, speed: float = 1.0) -> torch.Tensor:
        return torch.round(torch.sigmoid(logits).sum(-1) / speed).clamp(min=1).long()[0]

    @staticmethod
    def alignment(durations: torch.Tensor) -> torch.Tensor:
        """Frames per phoneme [T] -> a hard alignment [1, T, F]."""
        idx = torch.repeat_interleave(torch.arange(len(durations), device=durations.device), durations)
        return F.one_hot(idx, len(durations)).T.float()[None]

    def predict(self, tokens: torch.Tensor, style: torch.Tensor, speed: float = 1.0) -> Prosody:
        _, s = self.split_style(style)
        d = self.duration_features(tokens, s)
        dur = self.durations(self.duration_logits(d), speed)
        f0, n = self.predictor.f0n(d.transpose(1, 2) @ self.alignment(dur), s)
        return Prosody(dur, f0, n)

    def predictor_f0n_for(
        self, tokens: torch.Tensor, style: torch.Tensor, durations: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The F0 and energy the predictor gives for these durations."""
        _, s = self.split_style(style)
        d = self.duration_features(tokens, s)
        return self.predictor.f0n(d.transpose(1, 2) @ self.alignment(durations), s)

    def prosody_for(self, tokens: torch.Tensor, style: torch.Tensor, durations: torch.Tensor) -> Prosody:
        """A prosody plan for given durations (e.g. a real recording's alignment)."""
        return Prosody(durations, *self.predictor_f0n_for(tokens, style, durations))

    def decode(self, tokens: torch.Tensor, style: torch.Tensor, prosody: Prosody) -> torch.Tensor:
        """Audio [B, samples] at 24 kHz from tokens, a style row and a prosody plan."""
        s_timbre, _ = self.split_style(style)
        asr = self.text_encoder(tokens) @ self.alignment(prosody.durations)
        return self.decoder(asr, prosody.f0, prosody.energy, s_timbre)

    def forward(self, tokens: torch.Tensor, style: torch.Tensor, speed: float = 1.0) -> tuple[torch.Tensor, Prosody]:
        plan = self.predict(tokens, style, speed)
        return self.decode(tokens, style, plan), plan
