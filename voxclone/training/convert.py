"""Recover float Kokoro weights for `training.model.Kokoro` from the int8 ONNX that ships in packages.

What ONNX export and quantisation changed, undone here: weights are int8/uint8 with a scale and zero point
(per tensor or per output channel); weight norm is folded into one weight named after the node that computes
it, so weights are found through the node that consumes them, whose name carries the module path; matmul
weights are stored transposed; LSTM gates are ordered i, o, f, c (torch: i, f, g, o) and input, recurrent
and bias tensors are packed per direction; ALBERT's one shared layer appears 12 times (taken once).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from ..engine import assets
from .model import Kokoro

FORMAT = 2  # bump when the conversion changes, so cached weights are rebuilt


def _torch_path(node_path: str) -> str:
    """'/encoder/F0.1/conv1' -> 'predictor.F0.1.conv1'; '/decoder/decoder/asr_res/asr_res.0' -> 'decoder.asr_res.0'."""
    parts = [p for p in node_path.split("/") if p]
    if parts[:2] == ["decoder", "decoder"]:
        parts = ["decoder"] + parts[2:]
    elif parts[:1] == ["encoder"]:
        parts = parts[1:]
        if parts and re.match(r"(F0|N)(\.\d+|_proj)$|shared$", parts[0]):
            parts = ["predictor"] + parts
    out: list[str] = []
    for i, p in enumerate(parts):  # nn.Sequential shows up twice: 'cnn.0/cnn.0.0' is 'cnn.0.0'
        if i + 1 < len(parts) and parts[i + 1].startswith(p + "."):
            continue
        out.append(p)
    return ".".join(out)


def _lstm_gates(w: np.ndarray) -> np.ndarray:
    """Gate blocks along axis 0 from ONNX order (i, o, f, c) to torch order (i, f, g, o)."""
    i, o, f, c = np.split(w, 4, axis=0)
    return np.concatenate([i, f, c, o], axis=0)


class _Graph:
    def __init__(self, model: onnx.ModelProto):
        self.init = {t.name: t for t in model.graph.initializer}
        self.nodes = list(model.graph.node)
        self._cache: dict[str, np.ndarray] = {}

    def array(self, name: str) -> np.ndarray:
        if name not in self._cache:
            self._cache[name] = numpy_helper.to_array(self.init[name])
        return self._cache[name]

    def dequant(self, name: str, axis: int, zero_point: str | None = None, scale: str | None = None) -> np.ndarray:
        """(q - zero_point) * scale, with per-channel parameters along `axis`. The export shares equal
        zero-point tensors between weights, so the consuming node's own input names are preferred."""
        if not name.endswith("_quantized"):
            return self.array(name).astype(np.float32)
        base = name[: -len("_quantized")]
        q = self.array(name).astype(np.float32)
        scale = self.array(scale or base + "_scale").astype(np.float32)
        zp = self.array(zero_point or base + "_zero_point").astype(np.float32)
        shape = [1] * q.ndim
        if scale.ndim:
            shape[axis] = -1
        return (q - zp.reshape(shape)) * scale.reshape(shape)


def _gathered(g: _Graph, output: str) -> str:
    """The quantised table a Gather read to produce `output`."""
    return next(n.input[0] for n in g.nodes if n.op_type == "Gather" and output in n.output)


def _graph(source: str | os.PathLike | onnx.ModelProto) -> onnx.ModelProto:
    return source if isinstance(source, onnx.ModelProto) else onnx.load(str(source))


def weights_from_onnx(path: str | os.PathLike | onnx.ModelProto) -> dict[str, torch.Tensor]:
    """A state dict for `Kokoro` read from Kokoro's int8 ONNX graph."""
    g = _Graph(_graph(path))
    sd: dict[str, np.ndarray] = {}
    for node in g.nodes:
        path_, _, _ = node.name.rpartition("/")
        key = _torch_path(path_)
        if re.search(r"_\d+$", key.rsplit(".", 1)[-1]):  # ALBERT's shared layer, applied again
            continue
        op = node.op_type
        if op == "ConvInteger":
            sd[key + ".weight"] = g.dequant(node.input[1], axis=0, zero_point=node.input[3])
        elif op in ("Conv", "ConvTranspose") and node.input[1] in g.init and "istft" not in key:
            sd[key + ".weight"] = g.array(node.input[1])
        elif op == "MatMulInteger" and node.input[1] in g.init:
            sd[key + ".weight"] = g.dequant(node.input[1], axis=1, zero_point=node.input[3]).T
        elif op == "MatMul" and node.input[1] in g.init:
            sd[key + ".weight"] = g.array(node.input[1]).T
        elif op == "DequantizeLinear" and node.input[0].endswith("Gather_output_0_quantized"):
            table = node.input[0].replace("/Gather_output_0_quantized", "")  # the embedding's own path
            key = _torch_path(table)
            sd[key + ".weight"] = g.dequant(
                _gathered(g, node.input[0]), 0, zero_point=node.input[2], scale=node.input[1]
            )
        elif op == "DynamicQuantizeLSTM":
            w = g.dequant(node.input[1], 0, zero_point=node.input[9], scale=node.input[8])  # [2, in, 4H]
            r = g.dequant(node.input[2], 0, zero_point=node.input[11], scale=node.input[10])  # [2, H, 4H]
            b = g.array(node.input[3])  # [2, 8H]
            for d, suffix in enumerate(("", "_reverse")):
                sd[f"{key}.weight_ih_l0{suffix}"] = _lstm_gates(w[d].T)
                sd[f"{key}.weight_hh_l0{suffix}"] = _lstm_gates(r[d].T)
                wb, rb = np.split(b[d], 2)
                sd[f"{key}.bias_ih_l0{suffix}"] = _lstm_gates(wb)
                sd[f"{key}.bias_hh_l0{suffix}"] = _lstm_gates(rb)
    # float tensors the export kept under their module names (biases, norms, snake alphas)
    for name in g.init:
        if name.endswith(("_quantized", "_scale", "_zero_point")) or not name.startswith(("encoder.", "decoder.")):
            continue
        key = name.split(".", 1)[1]
        key = key[len("decoder.") :] if name.startswith("decoder.decoder.") else key
        key = "decoder." + key if name.startswith("decoder.decoder.") else key
        sd.setdefault(key, g.array(name))
    return {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in sd.items()}


def config_from_graph(path: str | os.PathLike | onnx.ModelProto, state: dict[str, torch.Tensor] | None = None) -> dict:
    """Kokoro's configuration read off the graph: sizes from the weights, strides, dilations and the number
    of ALBERT passes from the nodes. (Only the attention head count is not visible; 64-wide heads assumed.)"""
    model = _graph(path)
    state = state if state is not None else weights_from_onnx(model)
    attrs = {n.name: {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute} for n in model.graph.node}

    def shape(key: str) -> tuple[int, ...]:
        return tuple(state[key].shape)

    def count(prefix: str) -> int:
        return len({k[len(prefix) :].split(".")[0] for k in state if k.startswith(prefix)})

    n_ups = count("decoder.generator.ups.")
    n_kernels = count("decoder.generator.resblocks.") // n_ups
    gen = "/decoder/decoder/generator"
    hidden = shape("bert.encoder.embedding_hidden_mapping_in.weight")[0]
    return {
        "n_token": shape("text_encoder.embedding.weight")[0],
        "hidden_dim": shape("text_encoder.embedding.weight")[1],
        "style_dim": shape("decoder.encode.norm1.fc.weight")[1],
        "n_layer": count("text_encoder.cnn."),
        "max_dur": shape("predictor.duration_proj.linear_layer.weight")[0],
        "text_kernel": shape("text_encoder.cnn.0.0.weight")[2],
        "bert": {
            "vocab": shape("bert.embeddings.word_embeddings.weight")[0],
            "embedding": shape("bert.embeddings.word_embeddings.weight")[1],
            "hidden": hidden,
            "heads": hidden // 64,
            "intermediate": shape("bert.encoder.albert_layer_groups.0.albert_layers.0.ffn.weight")[0],
            "positions": shape("bert.embeddings.position_embeddings.weight")[0],
            "layers": sum(n.op_type == "MatMulInteger" and "/attention/query" in n.name for n in model.graph.node),
        },
        "upsample_rates": tuple(attrs[f"{gen}/ups.{i}/ConvTranspose"]["strides"][0] for i in range(n_ups)),
        "upsample_kernels": tuple(shape(f"decoder.generator.ups.{i}.weight")[2] for i in range(n_ups)),
        "upsample_initial_channel": shape("decoder.generator.ups.0.weight")[0],
        "resblock_kernels": tuple(
            shape(f"decoder.generator.resblocks.{j}.convs1.0.weight")[2] for j in range(n_kernels)
        ),
        "resblock_dilations": tuple(
            tuple(attrs[f"{gen}/resblocks.{j}/convs1.{i}/Conv_quant"]["dilations"][0] for i in range(3))
            for j in range(n_kernels)
        ),
        "n_fft": shape("decoder.generator.conv_post.weight")[0] - 2,
        "hop": attrs[f"{gen}/istft/stft/ConvTranspose"]["strides"][0],
        "sample_rate": 24_000,
    }


def load_weights(model: Kokoro, state: dict[str, torch.Tensor]) -> None:
    """Load a state dict; refuse one that leaves any parameter unset or has the wrong shapes."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    wrong = sorted(k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape))
    if missing or wrong:
        raise ValueError(
            f"Kokoro weights do not fit: missing {missing[:8]} ({len(missing)}), "
            f"wrong shape {[(k, tuple(state[k].shape), tuple(own[k].shape)) for k in wrong[:8]]}"
        )
    model.load_state_dict({k: state[k].reshape(own[k].shape) for k in own})


def official_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Flatten the official `kokoro-v1_0.pth` (per-module state dicts, weight norm as weight_g/weight_v)."""
    raw = torch.load(str(path), map_location="cpu", weights_only=True)
    out: dict[str, torch.Tensor] = {}
    for module, state in raw.items():
        for k, v in state.items():
            k = k[7:] if k.startswith("module.") else k
            out[f"{module}.{k}"] = v
    for k in [k for k in out if k.endswith(".weight_v")]:
        base = k[: -len(".weight_v")]
        v, g_ = out.pop(k), out.pop(base + ".weight_g")
        norm = v.flatten(1).norm(dim=1).reshape(g_.shape)
        out[base + ".weight"] = g_ * v / norm
    return out


def cached_weights_path(onnx_path: Path) -> Path:
    digest = hashlib.sha256(f"{assets.sha256_file(onnx_path)}:{FORMAT}".encode()).hexdigest()[:12]
    return assets.home() / "models" / f"kokoro-torch-{digest}.pt"


def load(source: str | os.PathLike | None = None) -> Kokoro:
    """The float torch model in eval mode. `source`: None (the packaged int8 ONNX, converted once and cached),
    an `.onnx` file, or an official `.pth`."""
    path = Path(source) if source else assets.resolve_model(None)
    if path.suffix == ".pth":
        state, config = official_state(path), {}
    else:
        cache = cached_weights_path(path)
        if cache.exists():
            saved = torch.load(cache, map_location="cpu", weights_only=True)
            state, config = saved["state"], saved["config"]
        else:
            graph = onnx.load(str(path))
            state = weights_from_onnx(graph)
            config = config_from_graph(graph, state)
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(f".tmp{os.getpid()}")
            torch.save({"state": state, "config": config}, tmp)
            os.replace(tmp, cache)
    model = Kokoro(config)
    load_weights(model, state)
    return model.eval()
