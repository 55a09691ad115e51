"""Rewrite the Kokoro ONNX graph for speed and control, once, at setup time.

Six rewrites, each exact or opt-in:

* ``ConvInteger`` (uint8 x uint8) runs on onnxruntime's slow generic path. Each stride-1
  convolution becomes im2col (Pad + Slice + Concat on uint8) and ``MatMulInteger``. On CPUs with
  int8 dot products (VNNI, AMX) the weights become int8 (``w - 128``, zero point shifted the same
  way), which uses those kernels. Elsewhere they stay uint8: without VNNI onnxruntime multiplies
  uint8 x int8 with ``vpmaddubsw``, whose 16-bit sums saturate, and Kokoro's activations overflow
  them (Whisper then mishears a quarter of the words). The integer result is bit-identical either
  way; only the kernel changes.
* The predicted F0 curve is multiplied by a new ``f0_scale`` input, so pitch can be shifted
  inside the model (the vocoder's harmonic source follows it) instead of by resampling.
* The predicted durations (frames per token, after rounding) become a second output, ``durations``,
  so audio the graph renders can be aligned token by token (voice training aligns clips that way).
* A ``max_durations`` input caps each token's frames (``Min`` after rounding). Callers feed no cap
  (the int64 maximum) except at the tail: trailing punctuation and the closing boundary token only
  render silence that is trimmed afterwards, yet cost decoder time like speech.
* A ``decoder_bias`` input is added to the biases of the decoder's AdaIN style projections
  (``decoder.decoder.<name>.fc.bias``, concatenated in name order): voices trained with a decoder
  adapter carry their offsets there, every other voice feeds zeros, so one graph serves all.
* A ``decoder_lora`` input adds a low-rank term to the decoder's frame-rate convolutions (``conv1`` and
  ``conv2`` of its ``encode`` and ``decode.N`` blocks): ``y += B (A * x)``. ``A`` (``LORA_RANK`` output
  channels, the convolution's kernel and dilation) is a fixed random projection made by
  :func:`lora_projection`, the same in the graph and in training; ``B`` (a 1x1 convolution, ``cout x rank``
  per layer, concatenated in name order) comes from the input. Voices trained with it carry ``B``; every
  other voice feeds zeros, which add exactly nothing. Fixing ``A`` keeps the adapter linear in what a voice
  stores, so blending voices blends their adapters exactly.
"""

from __future__ import annotations

import logging
import re
import zlib

import numpy as np

log = logging.getLogger(__name__)

OPTIMIZER_VERSION = 6
F0_SCALE_INPUT = "f0_scale"
DURATIONS_OUTPUT = "durations"
DECODER_BIAS_INPUT = "decoder_bias"
DECODER_LORA_INPUT = "decoder_lora"
LORA_RANK = 8  # changing it, or the projections, changes the input's size: old adapters are then refused
MAX_DURATIONS_INPUT = "max_durations"
_DURATIONS_NODE = "voxclone_durations"
_DECODER_BIAS = re.compile(r"^decoder\.decoder\.(.+\.fc)\.bias$")
_LORA_CONV = re.compile(r"^/decoder/decoder/(encode|decode\.\d+)/(conv1|conv2)/Conv_quant$")
LORA_MODULE = re.compile(r"^decoder\.(encode|decode\.\d+)\.(conv1|conv2)$")  # the same layers, as torch names them
_INT64_MAX = np.iinfo(np.int64).max


def optimize(model, signed_weights: bool = False):  # onnx.ModelProto -> onnx.ModelProto
    """Return a rewritten copy of a Kokoro ONNX model (see module docstring); ``signed_weights`` only
    where the CPU has int8 dot products (:func:`voxclone.engine.cpu.int8_dot_product`)."""
    import onnx

    model = onnx.ModelProto.FromString(model.SerializeToString())
    _add_f0_scale(model.graph)
    _add_decoder_bias(model.graph)
    _add_decoder_lora(model.graph)
    _add_durations_output(model.graph)
    _add_duration_cap(model.graph)
    _convinteger_to_matmulinteger(model.graph, signed_weights)
    return model


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _convinteger_to_matmulinteger(graph, signed_weights: bool) -> int:
    from onnx import helper, numpy_helper

    inits = {i.name: i for i in graph.initializer}
    new_nodes, new_inits, rewritten = [], [], 0
    for node in graph.node:
        a = _attrs(node)
        w_name = node.input[1] if node.op_type == "ConvInteger" else None
        ok = (
            w_name in inits
            and len(node.input) == 4
            and node.input[3] in inits
            and a.get("group", 1) == 1
            and list(a.get("strides", [1])) == [1]
            and a.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET")
        )
        w = numpy_helper.to_array(inits[w_name]) if ok else None
        if not ok or w.dtype != np.uint8 or w.ndim != 3:
            new_nodes.append(node)
            continue
        cout, cin, k = w.shape
        d = list(a.get("dilations", [1]))[0]
        pads = list(a.get("pads", [0, 0]))
        if pads[0] != pads[1] or 2 * pads[0] != d * (k - 1):
            new_nodes.append(node)  # only "same" convolutions keep T unchanged
            continue
        p = pads[0]
        wzp = numpy_helper.to_array(inits[node.input[3]])
        if wzp.size != 1:
            new_nodes.append(node)
            continue
        base = node.name or node.output[0]
        x, xzp = node.input[0], node.input[2]
        # rows ordered (k, c) to match the im2col concat below
        wmat = w.transpose(2, 1, 0).reshape(k * cin, cout)
        wz = np.array(wzp.reshape(()), dtype=np.uint8)
        if signed_weights:
            wmat, wz = (wmat.astype(np.int16) - 128).astype(np.int8), np.array(int(wz) - 128, dtype=np.int8)
        new_inits += [numpy_helper.from_array(wmat, f"{base}/mmi_w"), numpy_helper.from_array(wz, f"{base}/mmi_wz")]
        xt = f"{base}/mmi_xt"
        new_nodes.append(helper.make_node("Transpose", [x], [xt], perm=[0, 2, 1], name=f"{base}/mmi_T_in"))
        if k == 1:
            col = xt
        else:
            new_inits.append(numpy_helper.from_array(np.array([0, p, 0, 0, p, 0], np.int64), f"{base}/mmi_pads"))
            xp = f"{base}/mmi_xp"
            new_nodes.append(helper.make_node("Pad", [xt, f"{base}/mmi_pads", xzp], [xp], name=f"{base}/mmi_pad"))
            cols = []
            for j in range(k):
                start, end = j * d, j * d - 2 * p
                new_inits.append(numpy_helper.from_array(np.array([start], np.int64), f"{base}/mmi_s{j}"))
                new_inits.append(
                    numpy_helper.from_array(np.array([end if end < 0 else _INT64_MAX], np.int64), f"{base}/mmi_e{j}")
                )
                cols.append(f"{base}/mmi_c{j}")
                new_nodes.append(
                    helper.make_node(
                        "Slice",
                        [xp, f"{base}/mmi_s{j}", f"{base}/mmi_e{j}", "voxclone_axis1"],
                        [cols[-1]],
                        name=f"{base}/mmi_slice{j}",
                    )
                )
            col = f"{base}/mmi_col"
            new_nodes.append(helper.make_node("Concat", cols, [col], axis=2, name=f"{base}/mmi_concat"))
        yt = f"{base}/mmi_yt"
        new_nodes.append(
            helper.make_node(
                "MatMulInteger", [col, f"{base}/mmi_w", xzp, f"{base}/mmi_wz"], [yt], name=f"{base}/mmi_matmul"
            )
        )
        new_nodes.append(
            helper.make_node("Transpose", [yt], [node.output[0]], perm=[0, 2, 1], name=f"{base}/mmi_T_out")
        )
        rewritten += 1
    if rewritten:
        new_inits.append(numpy_helper.from_array(np.array([1], np.int64), "voxclone_axis1"))
        del graph.node[:]
        graph.node.extend(new_nodes)
        graph.initializer.extend(new_inits)
        _drop_unused_initializers(graph)
    return rewritten


def _drop_unused_initializers(graph) -> None:
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    keep = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)


def _f0_squeeze(graph) -> int | None:
    """Index of the Squeeze that ends the predictor's ``F0_proj`` chain (its output is F0 in Hz)."""
    consumers: dict[str, list[int]] = {}
    for idx, n in enumerate(graph.node):
        for i in n.input:
            consumers.setdefault(i, []).append(idx)
    for n in graph.node:
        if "F0_proj" in n.name and n.op_type in ("Conv", "ConvInteger"):
            frontier = list(n.output)  # walk through the dequantisation ops
            for _ in range(8):
                nxt = []
                for t in frontier:
                    for c in consumers.get(t, []):
                        if graph.node[c].op_type == "Squeeze":
                            return c
                        nxt.extend(graph.node[c].output)
                frontier = nxt
    return None


def _add_f0_scale(graph) -> bool:
    from onnx import TensorProto, helper

    if any(i.name == F0_SCALE_INPUT for i in graph.input):
        return True
    at = _f0_squeeze(graph)
    if at is None:
        return False
    f0 = graph.node[at].output[0]
    scaled = f"{f0}_voxclone_scaled"
    for n in graph.node:
        for idx, name in enumerate(n.input):
            if name == f0:
                n.input[idx] = scaled
    graph.node.insert(at + 1, helper.make_node("Mul", [f0, F0_SCALE_INPUT], [scaled], name="voxclone_f0_scale"))
    graph.input.append(helper.make_tensor_value_info(F0_SCALE_INPUT, TensorProto.FLOAT, [1]))
    return True


def _consumers(graph) -> dict[str, list]:
    """Tensor name -> the nodes that read it."""
    out: dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            out.setdefault(i, []).append(n)
    return out


def _add_durations_output(graph) -> bool:
    """Expose the rounded durations: the chain ``Div(sum of sigmoids, speed) -> Round -> Clip -> Cast``."""
    from onnx import TensorProto, helper

    if any(o.name == DURATIONS_OUTPUT for o in graph.output):
        return True
    consumers = _consumers(graph)
    node = next((n for n in consumers.get("speed", []) if n.op_type == "Div"), None)
    for op in ("Round", "Clip", "Cast"):
        node = next((c for c in consumers.get(node.output[0], []) if c.op_type == op), None) if node else None
    if node is None or _attrs(node).get("to") != TensorProto.INT64:
        log.warning("no durations chain found in the graph; voice training will align with the torch model")
        return False
    graph.node.append(helper.make_node("Identity", [node.output[0]], [DURATIONS_OUTPUT], name=_DURATIONS_NODE))
    graph.output.append(helper.make_tensor_value_info(DURATIONS_OUTPUT, TensorProto.INT64, None))
    return True


def _add_duration_cap(graph) -> bool:
    """Add ``max_durations`` (int64 [tokens + 2]) between the rounded durations and their consumers."""
    from onnx import TensorProto, helper

    if any(i.name == MAX_DURATIONS_INPUT for i in graph.input):
        return True
    ident = next((n for n in graph.node if n.name == _DURATIONS_NODE), None)
    if ident is None:
        return False
    rounded, capped = ident.input[0], f"{ident.input[0]}_voxclone_capped"
    for n in graph.node:
        for idx, name in enumerate(n.input):
            if name == rounded:
                n.input[idx] = capped
    at = next(i for i, n in enumerate(graph.node) if rounded in n.output)
    graph.node.insert(at + 1, helper.make_node("Min", [rounded, MAX_DURATIONS_INPUT], [capped], name="voxclone_cap"))
    graph.input.append(helper.make_tensor_value_info(MAX_DURATIONS_INPUT, TensorProto.INT64, ["tokens"]))
    return True


def _add_decoder_bias(graph) -> int:
    """Add the ``decoder_bias`` input (see module docstring); returns its length (0: none added)."""
    from onnx import TensorProto, helper, numpy_helper

    if any(i.name == DECODER_BIAS_INPUT for i in graph.input):
        return 0
    inits = {i.name: i for i in graph.initializer}
    names = sorted(
        {i for n in graph.node if n.op_type == "Add" for i in n.input if _DECODER_BIAS.match(i) and i in inits}
    )
    if not names:
        return 0
    layout, at = {}, 0
    for name in names:
        size = int(np.prod(inits[name].dims))
        layout[name] = (at, at + size)
        at += size
    new_inits, new_nodes, renamed = [], [], {}
    for name, (a, b) in layout.items():
        base = f"voxclone_decoder_bias/{_DECODER_BIAS.match(name).group(1)}"
        new_inits += [
            numpy_helper.from_array(np.array([a], np.int64), f"{base}/start"),
            numpy_helper.from_array(np.array([b], np.int64), f"{base}/end"),
        ]
        new_nodes += [
            helper.make_node("Slice", [DECODER_BIAS_INPUT, f"{base}/start", f"{base}/end"], [f"{base}/part"]),
            helper.make_node("Add", [name, f"{base}/part"], [f"{base}/bias"]),
        ]
        renamed[name] = f"{base}/bias"
    for n in graph.node:
        if n.op_type == "Add":
            for idx, inp in enumerate(n.input):
                n.input[idx] = renamed.get(inp, inp)
    nodes = new_nodes + list(graph.node)  # the new nodes read only the input and initializers: first is topological
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(new_inits)
    graph.input.append(helper.make_tensor_value_info(DECODER_BIAS_INPUT, TensorProto.FLOAT, [at]))
    return at


def lora_projection(name: str, cin: int, kernel: int, rank: int = LORA_RANK) -> np.ndarray:
    """The fixed ``A`` of the decoder's low-rank adapter for the torch module ``name`` (for example
    ``decoder.decode.0.conv1``): unit-variance output for unit-variance input, the same on every machine."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    return (rng.standard_normal((rank, cin, kernel)) / np.sqrt(cin * kernel)).astype(np.float32)


def _lora_module(node_name: str) -> str | None:
    """The torch module a ConvInteger node computes, if the low-rank adapter reaches it."""
    m = _LORA_CONV.match(node_name)
    return f"decoder.{m.group(1)}.{m.group(2)}" if m else None


def _add_decoder_lora(graph) -> int:
    """Add the ``decoder_lora`` input (see module docstring); returns its length (0: none added)."""
    from onnx import TensorProto, helper, numpy_helper

    if any(i.name == DECODER_LORA_INPUT for i in graph.input):
        return 0
    inits = {i.name: i for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    consumers = _consumers(graph)

    def only(name: str, op: str):
        nodes = consumers.get(name, [])
        return nodes[0] if len(nodes) == 1 and nodes[0].op_type == op else None

    layers = []  # (module, conv node, float input, float output)
    for node in graph.node:
        module = _lora_module(node.name) if node.op_type == "ConvInteger" else None
        quant = producer.get(node.input[0]) if module else None
        if quant is None or quant.op_type != "DynamicQuantizeLinear":
            continue
        # int32 result -> (+ quantised bias) -> Cast -> Mul by the scales: the float output
        step = only(node.output[0], "Add") or only(node.output[0], "Cast")
        if step is not None and step.op_type == "Add":
            step = only(step.output[0], "Cast")
        mul = only(step.output[0], "Mul") if step is not None else None
        if mul is None:
            continue
        layers.append((module, node, quant.input[0], mul.output[0]))
    if not layers:
        return 0
    layers.sort(key=lambda item: item[0])
    at, inserted = 0, {}
    new_inits = []
    for module, node, x, y in layers:
        cout, cin, k = (int(d) for d in inits[node.input[1]].dims)
        a = _attrs(node)
        base = f"voxclone_decoder_lora/{module}"
        size = cout * LORA_RANK
        new_inits += [
            numpy_helper.from_array(lora_projection(module, cin, k), f"{base}/a"),
            numpy_helper.from_array(np.array([at], np.int64), f"{base}/start"),
            numpy_helper.from_array(np.array([at + size], np.int64), f"{base}/end"),
            numpy_helper.from_array(np.array([cout, LORA_RANK, 1], np.int64), f"{base}/shape"),
        ]
        at += size
        nodes = [
            helper.make_node(
                "Conv",
                [x, f"{base}/a"],
                [f"{base}/h"],
                kernel_shape=[k],
                pads=list(a.get("pads", [0, 0])),
                dilations=list(a.get("dilations", [1])),
            ),
            helper.make_node("Slice", [DECODER_LORA_INPUT, f"{base}/start", f"{base}/end"], [f"{base}/b_flat"]),
            helper.make_node("Reshape", [f"{base}/b_flat", f"{base}/shape"], [f"{base}/b"]),
            helper.make_node("Conv", [f"{base}/h", f"{base}/b"], [f"{base}/delta"]),
            helper.make_node("Add", [y, f"{base}/delta"], [f"{base}/out"]),
        ]
        for c in consumers.get(y, []):
            for idx, name in enumerate(c.input):
                if name == y:
                    c.input[idx] = f"{base}/out"
        inserted[y] = nodes
    ordered = []
    for n in graph.node:  # each layer's nodes right after the one that makes its output
        ordered.append(n)
        for o in n.output:
            ordered.extend(inserted.get(o, []))
    del graph.node[:]
    graph.node.extend(ordered)
    graph.initializer.extend(new_inits)
    graph.input.append(helper.make_tensor_value_info(DECODER_LORA_INPUT, TensorProto.FLOAT, [at]))
    return at
