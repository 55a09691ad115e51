"""The PyTorch rebuild of Kokoro (voxclone.training): conversion, stages, parity with the ONNX graph, fitting."""

import numpy as np
import pytest
import torch

from voxclone.bench.sentences import SENTENCES
from voxclone.engine import assets
from voxclone.engine.voices import style_for
from voxclone.text.g2p import G2P
from voxclone.training import convert, parity
from voxclone.training.model import FRAME_SAMPLES, Kokoro, Prosody


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(2)
    return convert.load()


@pytest.fixture(scope="module")
def utterance(vocab):
    tokens = [vocab[c] for c in G2P("en-us", vocab)("The quick brown fox jumps over the lazy dog.") if c in vocab]
    packs, _ = assets.load_voice_packs(None)
    return torch.tensor([[0, *tokens, 0]]), torch.from_numpy(style_for(packs["af_heart"], len(tokens)))


def test_conversion_sets_every_parameter_from_the_graph():
    state = convert.weights_from_onnx(assets.resolve_model(None))
    own = Kokoro().state_dict()
    assert set(own) <= set(state)
    assert all(tuple(state[k].shape) == tuple(own[k].shape) for k in own)
    # weights come out at the scale of a trained network, not as raw int8 codes
    assert 0.001 < float(state["decoder.encode.conv1.weight"].abs().mean()) < 1.0
    broken = dict(state)
    del broken["predictor.shared.weight_hh_l0"]
    with pytest.raises(ValueError, match="predictor.shared.weight_hh_l0"):
        convert.load_weights(Kokoro(), broken)


def test_config_is_read_off_the_graph():
    from voxclone.training.model import CONFIG

    derived = convert.config_from_graph(assets.resolve_model(None))
    assert derived == {k: CONFIG[k] for k in derived}


def test_conversion_is_cached_and_reused(model):
    cache = convert.cached_weights_path(assets.resolve_model(None))
    assert cache.exists()
    again = convert.load()
    assert torch.equal(again.decoder.generator.conv_post.weight, model.decoder.generator.conv_post.weight)


def test_stages_take_external_durations_and_f0(model, utterance):
    tokens, style = utterance
    with torch.no_grad():
        plan = model.predict(tokens, style)
        audio = model.decode(tokens, style, plan)[0].numpy()
        assert len(audio) == int(plan.durations.sum()) * FRAME_SAMPLES
        slow = Prosody(plan.durations * 2, *model.predictor_f0n_for(tokens, style, plan.durations * 2))
        longer = model.decode(tokens, style, slow)[0].numpy()
        assert len(longer) == 2 * len(audio)
        high = model.decode(tokens, style, Prosody(plan.durations, plan.f0 * 1.5, plan.energy))[0].numpy()
    from voxclone.cloning.quality import median_f0

    base, raised = median_f0(audio, 24_000), median_f0(high, 24_000)
    assert 1.35 < raised / base < 1.65, (base, raised)


def test_durations_match_the_graph_on_one_sentence(model, utterance):
    tokens, style = utterance
    ref = parity.Reference()
    onnx_dur = ref.durations(tokens[0, 1:-1].tolist(), style.numpy())
    with torch.no_grad():
        own = model.predict(tokens, style).durations.numpy()
    assert np.abs(own - onnx_dur).mean() <= 0.25


def test_decoder_adapter_speaks_the_same_in_onnx_and_torch(model, utterance, tts):
    """A decoder adapter vector fed to the optimised graph acts like the same offsets on the torch projections
    and the same low-rank weights on its convolutions; with the low-rank part or without."""
    from voxclone.training.adapt import adapter_sizes, decoder_offsets, decoder_spread, lora_scale

    tokens, style = utterance
    toks = tokens[0, 1:-1].tolist()
    rng = np.random.default_rng(0)
    spread = decoder_spread(model, tts._stock())
    n_bias, n_lora = adapter_sizes(model)
    assert (n_bias, n_bias + n_lora) == (tts.engine.decoder_bias_size, tts.engine.decoder_adapter_size)
    bias = (rng.standard_normal(len(spread)) * spread * 0.7).astype(np.float32)
    lora = (rng.standard_normal(n_lora) * lora_scale(model)).astype(np.float32)
    durations = torch.from_numpy(parity.Reference().durations(toks, style.numpy()))
    plain = tts.engine.infer(toks, style.numpy())
    with torch.no_grad():
        plan = model.prosody_for(tokens, style, durations)
        t_plain = model.decode(tokens, style, plan)[0].numpy()
    for vec in (bias, np.concatenate([bias, lora]), np.concatenate([np.zeros_like(bias), lora])):
        adapted = tts.engine.infer(toks, style.numpy(), decoder_bias=vec)
        with torch.no_grad(), decoder_offsets(model, vec):
            t_adapted = model.decode(tokens, style, plan)[0].numpy()
        same, crossed = parity.mel_l1(adapted, t_adapted), parity.mel_l1(adapted, t_plain)
        assert parity.mel_l1(plain, adapted) > 0.3  # the adapter changes the voice audibly...
        assert same < 0.35 and same < 0.6 * crossed, (len(vec), same, crossed)  # ...and both the same way
    with torch.no_grad():
        assert np.array_equal(model.decode(tokens, style, plan)[0].numpy(), t_plain)  # the hooks are gone after
    with pytest.raises(ValueError, match="decoder bias vector"), decoder_offsets(model, bias[:-1]):
        pass


@pytest.mark.slow
def test_parity_with_the_onnx_graph(model):
    """10 sentences x 5 voices: durations on all, audio (log-mel, WER, similarity) on every 5th sentence
    (`voxclone bench parity` runs 20 x 5 with audio on all)."""
    r = parity.run(model, [t for t, _ in SENTENCES[:10]], parity.VOICES, floor_every=2, audio_every=5)
    assert r["duration_mean_abs_diff_frames"] <= 1.0, r
    # int8 activations alone move the float model's log-mel by the floor; the graph may differ a little more
    assert r["log_mel_l1"] <= 1.5 * r["log_mel_l1_int8_floor"], r
    assert abs(r["wer_torch"] - r["wer_onnx"]) <= 0.03, r
    assert abs(r["similarity_torch"] - r["similarity_onnx"]) <= 0.02, r


@pytest.mark.slow
def test_train_quality_moves_toward_the_speaker(tts, tmp_path, slowdown, monkeypatch):
    """An off-manifold "person" (a stock style moved 1.2 spreads) recorded in four takes; `--quality train`
    fits by gradient descent and must end closer to them than the instant voice, on both encoders."""
    import soundfile as sf

    from voxclone.bench.dvector import DVectorEncoder
    from voxclone.cloning import intelligibility as intel
    from voxclone.cloning.build import VoiceBuilder
    from voxclone.cloning.clone import clone
    from voxclone.cloning.library import VoiceLibrary
    from voxclone.cloning.speaker import centroid
    from voxclone.cloning.texts import EVAL

    # half the check's sentences: its 24 are asserted in the check's own test, and each costs a render and
    # Whisper twice here, which kept the suite near its 20-minute bound
    half = intel.check_sentences("en-us")[: intel.CHECK_SENTENCES // 2]
    monkeypatch.setattr(intel, "check_sentences", lambda lang: half)
    builder = VoiceBuilder(tts, "en-us")
    dirs, _ = builder._basis()
    person = tts._stock()["af_sarah"] + (1.2 * dirs[1] - 0.8 * dirs[3]).reshape(1, 1, 256)
    tts.add_voice("__person__", person, "en-us", kind="fitting")
    takes = tmp_path / "takes"
    takes.mkdir()
    for i in range(4):
        text = " ".join(t for t, _ in SENTENCES[20 + 2 * i : 22 + 2 * i])
        a = tts._render(text, voice="__person__")
        sf.write(takes / f"take{i}.wav", a.samples, a.sample_rate)
    lib = VoiceLibrary(tmp_path / "voices")
    seen = []
    kw = dict(waiver="test", tts=tts, library=lib, lang="en-us")
    instant = clone("person-instant", [takes], quality="instant", **kw)
    budget = 400 * slowdown  # a bound only: the same 20 steps on every CPU (see conftest)
    trained = clone("person", [takes], quality="train", budget_s=budget, max_evals=20, fit_progress=seen.append, **kw)
    assert trained["quality"] == "train" and len(seen) >= 2 and seen[-1]["heldout"] < seen[0]["heldout"]
    assert trained["build"]["evaluations"] == 20 and trained["build"]["stopped"] == "steps"
    assert lib.decoder("person-instant") is None and len(lib.decoder("person")) == tts.engine.decoder_bias_size
    check = trained["intelligibility"]  # a Kokoro-made person speaks as clearly as its start: adapter kept whole
    assert check["decoder_adapter"] == "whole" and [c["adapter"] for c in check["checks"]] == [None, "whole"]
    assert check["checks"][0]["words"] > 100 and check["sentences"] == len(half) == 12

    def clips(pack, speed=1.0, pitch=0.0, decoder=None):
        tts.add_voice("__probe__", pack, "en-us", kind="fitting", decoder=decoder)
        return [tts._render(t, voice="__probe__", speed=speed, pitch=pitch) for t in EVAL[:6]]

    heard = {"__person__": clips(person)}  # each voice rendered once, heard by both encoders
    for name, record in (("person-instant", instant), ("person", trained)):
        _, pack = lib.load(name)
        heard[name] = clips(pack, record["speed"], record["pitch"], lib.decoder(name))
    for embed in (builder.encoder.embed, DVectorEncoder().embed):
        embs = {name: np.stack([embed(a.samples, a.sample_rate) for a in audio]) for name, audio in heard.items()}
        ref = centroid(embs["__person__"])
        scores = {name: float((embs[name] @ ref).mean()) for name in ("person-instant", "person")}
        assert scores["person"] > scores["person-instant"] + 0.02, (embed, scores)


@pytest.mark.slow
def test_intelligibility_check_cuts_a_garbling_decoder_adapter_back_to_its_generator_part(tts, model):
    """Decoder offsets 8 stock spreads off at random in the encode/decode blocks garble speech (Whisper hears
    almost nothing right), as an accent would, far more; the check then keeps the generator's part alone,
    exactly, which speaks as clearly as the start. Without time for a second check it keeps that part unchecked
    (not the fit's earlier state, tried before it when there is time); when every part fails, the last (the
    whole adapter halved)."""
    import time

    from voxclone.bench.clone import wer_sentences
    from voxclone.cloning import intelligibility as intel
    from voxclone.cloning.build import VoiceBuilder
    from voxclone.training.adapt import decoder_projections, decoder_spread, generator_span
    from voxclone.transcribe import Transcriber

    texts = intel.check_sentences("en-us")
    assert len(texts) == intel.CHECK_SENTENCES == 24 and not set(texts) & set(wer_sentences())  # never benchmarked on
    assert intel.check_sentences("ja") == []  # no prompts: no check
    texts = texts[:4]
    builder, asr = VoiceBuilder(tts, "en-us"), Transcriber()
    pack = tts._stock()["af_heart"]
    spread = decoder_spread(model, tts._stock())
    a, b = span = generator_span(model)
    assert b == len(spread) and a == sum(
        fc.out_features for n, fc in decoder_projections(model) if "generator" not in n
    )
    noise = np.random.default_rng(0).standard_normal(len(spread)) * spread
    garble = (noise * np.where(np.arange(len(spread)) < a, 8.0, 0.3)).astype(np.float32)  # the generator: 0.3

    def check(part: str) -> intel.Check:
        return intel.word_errors(builder.speaker(pack, decoder=intel.kept(garble, part, span)), texts, asr, "en")

    start = intel.word_errors(builder.speaker(pack), texts, asr, "en")
    assert start.errors <= 1 and start.words >= 40  # words as counted after normalising (numbers spelt out)
    no_earlier = tuple(p for p in intel.ADAPTERS if p != "earlier")  # a fit that offers no earlier state
    part, log = intel.choose_adapter(start, check, time.perf_counter() + 3600, parts=no_earlier)
    assert [c["adapter"] for c in log] == [None, "whole", "generator"], log
    assert log[1]["errors"] > log[1]["words"] / 2 and log[2]["errors"] <= start.errors + 1
    assert part == "generator"
    # the deadline is now: kept unchecked is the generator's part, never the earlier state (it may be accented)
    part, log = intel.choose_adapter(start, check, time.perf_counter())
    assert part == "generator" and [c["adapter"] for c in log] == [None, "whole"]
    part, log = intel.choose_adapter(start, lambda p: intel.Check(0 if p == "earlier" else 99, 100, 0.0), 1e12)
    assert part == "earlier" and [c["adapter"] for c in log] == [None, "whole", "earlier"]
    tried = []
    part, log = intel.choose_adapter(
        start, lambda p: tried.append(p) or intel.Check(99, 100, 0.0), time.perf_counter() + 60
    )
    assert part == "half" == tried[-1] and [c["adapter"] for c in log] == [None, *intel.ADAPTERS]
    kept, half = intel.kept(garble, "generator", span), intel.kept(garble, "half", span)
    assert intel.kept(garble, "whole", span) is garble is intel.kept(garble, "earlier", span)
    assert intel.kept(None, "generator", span) is None
    assert not kept[:a].any() and np.array_equal(kept[a:], garble[a:])
    assert np.allclose(half, garble / 2) and half.dtype == garble.dtype
    with pytest.raises(ValueError, match="unknown decoder adapter part"):
        intel.kept(garble, "none", span)


def test_transcripts_in_languages_kokoro_does_not_speak_still_get_phonemes(tts):
    from voxclone.training.adapt import transcript_g2p

    ru = transcript_g2p(tts, "ru", "en-us")
    assert ru.language.espeak == "ru"
    ps = ru("Здравствуйте, оставьте сообщение.")
    assert len(ps) > 15 and all(c in ru.vocab or c == " " for c in ps)
    assert transcript_g2p(tts, "fr", "fr").language.code == "fr"
    assert transcript_g2p(tts, "xx", "en-us").language.code == "en-us"  # no espeak voice: the speaking rules


def test_setup_converts_the_training_model():
    """`voxclone setup` leaves the float model ready, so the first `--quality train` does not convert."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-m", "voxclone.cli", "setup"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    line = next(x for x in run.stderr.splitlines() if x.startswith("training"))
    assert line.split()[-1] == str(convert.cached_weights_path(assets.resolve_model(None)))
    assert convert.cached_weights_path(assets.resolve_model(None)).exists()


def test_speaker_loss_is_resemblyzers_front_end_with_gradients(tts):
    """The torch front end (24 -> 16 kHz, power mel, -30 dBFS) gives Resemblyzer's own embedding for the same
    partials, and a finite gradient back to the audio."""
    from resemblyzer.audio import normalize_volume, wav_to_mel_spectrogram

    from voxclone.audio import resample
    from voxclone.training.adapt import SpeakerLoss

    audio = tts._render("Speaker similarity has to flow back to the decoder.", voice="am_michael").samples
    loss = SpeakerLoss(np.ones(256) / 16.0)
    mel = torch.from_numpy(wav_to_mel_spectrogram(normalize_volume(resample(audio, 24_000, 16_000), -30)))
    n = SpeakerLoss.PARTIAL
    with torch.no_grad():
        want = loss.net(torch.stack([mel[:n], mel[-n:]])).mean(0)
    x = torch.from_numpy(audio.copy())[None].requires_grad_(True)
    got = loss.embed(x)
    assert float(got @ (want / want.norm())) > 0.999
    (1.0 - got @ loss.target).backward()
    assert torch.isfinite(x.grad).all() and float(x.grad.abs().sum()) > 0


def test_sentences_without_recordings_teach_only_through_the_speaker_loss(model, utterance, tts):
    """A fit step on a sentence with no recording (or a clip on the predictor's F0) has no log-mel, F0 or
    duration target, yet its speaker loss reaches the style's timbre half; held-out scoring takes the
    log-mel on the clip's F0 and the speaker loss on the predictor's."""
    from voxclone.training.adapt import Adapter, SpeakerLoss

    tokens, style = utterance
    ids = tokens[0, 1:-1].tolist()
    adapter = Adapter(model, np.repeat(style.numpy().reshape(1, 1, 256), 510, axis=0))
    adapter.speaker = SpeakerLoss(np.ones(256) / 16.0)
    text = adapter.prepare_text(ids)
    assert text.target is None and text.f0.abs().sum() == 0
    delta = torch.zeros(1, 256, requires_grad=True)
    parts = adapter.losses(text, delta, 0, 60)
    assert float(parts["mel"]) == float(parts["f0"]) == float(parts["duration"]) == 0.0
    assert 0.0 < float(parts["speaker"]) < 2.0
    parts["speaker"].backward()
    assert float(delta.grad[0, :128].abs().sum()) > 0  # the timbre half hears it

    with torch.no_grad():
        plan = model.predict(tokens, style)
        audio = model.decode(tokens, style, plan)[0].numpy()
    clip = adapter.prepare(audio, ids)
    free = adapter.losses(clip, torch.zeros(1, 256), 0, 60, free=True)
    forced = adapter.losses(clip, torch.zeros(1, 256), 0, 60)
    both = adapter.losses(clip, torch.zeros(1, 256), 0, 60, free_speaker=True)
    assert float(free["mel"]) == 0.0 < float(forced["mel"]) and float(both["mel"]) == float(forced["mel"])
    assert float(both["speaker"]) == pytest.approx(float(free["speaker"]), abs=1e-5)


def test_copy_takes_timing_and_f0_from_the_clip_and_timbre_from_the_voice(model, tts, vocab):
    """`bench clone` scores a voice's timbre alone by having it re-speak the speaker's clips: the copy lasts
    as long as the clip and follows its pitch, while it sounds like the voice that speaks it."""
    from voxclone.cloning.speaker import shared_encoder
    from voxclone.training.adapt import Adapter, clip_f0

    text = "She sells sea shells by the sea shore, and the shells she sells are surely sea shells."
    ids = [vocab[c] for c in G2P("en-us", vocab)(text) if c in vocab]
    clip = tts._render(text, voice="af_heart", speed=0.9).samples  # the "recording": a high voice, slowed
    stock = tts._stock()
    copy = Adapter(model, stock["am_michael"], render=tts.engine.infer_timed).copy(clip, ids)
    assert abs(len(copy) - len(clip)) <= FRAME_SAMPLES

    def median_f0(audio: np.ndarray) -> float:
        f0 = clip_f0(audio, len(audio) // FRAME_SAMPLES)
        return float(np.median(f0[f0 > 0]))

    own = tts._render(text, voice="am_michael").samples
    assert median_f0(own) < 0.75 * median_f0(clip)  # left to himself he speaks far lower
    assert 0.85 < median_f0(copy) / median_f0(clip) < 1.15  # ~0.9: WORLD hears the decoder's pitch a little low

    enc = shared_encoder()
    him, her, heard = (enc.embed(a, 24_000) for a in (own, clip, copy))
    assert float(heard @ him) > float(heard @ her) + 0.05


def test_whisper_rebuilt_in_torch_hears_what_faster_whisper_hears_and_scores_accents(tts, asr):
    """Whisper-base rebuilt from faster-whisper's CTranslate2 file: greedy decoding of a Kokoro sentence gives
    faster-whisper's words, and the training loss (teacher-forced cross-entropy, gradients to the audio)
    is far higher for an Italian voice speaking English than for an English one; the fit's intelligibility
    term counts only what exceeds the start voice."""
    import soxr

    from voxclone.engine.assets import whisper_model_dir
    from voxclone.training.adapt import IntelligibilityLoss
    from voxclone.training.whisper import WhisperLoss, read_ctranslate2
    from voxclone.transcribe import word_errors

    variables = read_ctranslate2(whisper_model_dir() / "model.bin")
    assert variables["decoder/embeddings/weight"].shape == (51865, 512) and int(variables["encoder/num_heads"]) == 8
    loss = WhisperLoss("en")
    text = "Could you brush my teeth for me and then help me wash my face?"
    scores, heard16 = {}, {}
    for voice in ("af_heart", "if_sara"):
        a = tts._render(text, voice=voice)
        x = torch.from_numpy(soxr.resample(a.samples, a.sample_rate, 16_000).astype(np.float32)).requires_grad_(True)
        heard16[voice] = x.detach()
        ce = loss(x, text)
        ce.backward()
        assert x.grad is not None and float(x.grad.abs().sum()) > 0
        scores[voice] = float(ce)
        if voice == "af_heart":
            with torch.no_grad():
                memory = loss.model.encode(loss.mel(x.detach()))
                ids = list(loss.transcripts.prefix)
                while len(ids) < 40 and ids[-1] != loss.transcripts.end:
                    ids.append(int(loss.model.logits(torch.tensor([ids]), memory)[0, -1].argmax()))
            heard = loss.transcripts.tokenizer.decode([i for i in ids if i < loss.transcripts.end])
            assert word_errors(text, heard)[0] == 0 == word_errors(text, asr.transcribe(a, language="en"))[0], heard
    assert scores["af_heart"] < 0.3 < 0.6 < scores["if_sara"], scores
    term = IntelligibilityLoss("en", resample=lambda audio: audio)  # the audio here is at 16 kHz already
    start = heard16["af_heart"]
    assert float(term(heard16["if_sara"], text, lambda: start)) == pytest.approx(
        scores["if_sara"] - scores["af_heart"], abs=1e-3
    )
    assert float(term(start, text, lambda: 1 / 0)) == 0.0  # the start's score is kept: not rendered again
    with pytest.raises(ValueError, match="no language token"):
        WhisperLoss("xx")


def test_fit_takes_the_intelligibility_loss_on_whole_sentences_without_recordings(model, utterance, tts):
    """With an intelligibility term, a sentence without a recording is decoded whole and Whisper scores it
    against the start voice: ~0 for the start voice itself, high for a garbled decoder adapter, with
    gradients to the style; a cropped window takes no such term; a fit logs it."""
    from voxclone.training.adapt import Adapter, IntelligibilityLoss, SpeakerLoss, decoder_spread, generator_span

    tokens, style = utterance
    ids = tokens[0, 1:-1].tolist()
    adapter = Adapter(model, np.repeat(style.numpy().reshape(1, 1, 256), 510, axis=0))
    adapter.speaker = SpeakerLoss(np.ones(256) / 16.0)
    adapter.intelligibility = IntelligibilityLoss("en", adapter.speaker.to_16k)
    text = adapter.prepare_text(ids, "The quick brown fox jumps over the lazy dog.")
    delta = torch.zeros(1, 256, requires_grad=True)
    assert "intelligibility" not in adapter.losses(text, delta, 0, 60)  # a crop: Whisper needs every word
    assert float(adapter.losses(text, delta, 0, 0, free=True)["intelligibility"]) < 0.05
    spread = decoder_spread(model, tts._stock())
    a, _ = generator_span(model)
    noise = np.random.default_rng(0).standard_normal(len(spread)) * spread * (np.arange(len(spread)) < a) * 8.0
    garbled = adapter.losses(text, delta, 0, 0, torch.from_numpy(noise.astype(np.float32)), free=True)
    assert float(garbled["intelligibility"]) > 0.3
    garbled["intelligibility"].backward()
    assert float(delta.grad.abs().sum()) > 0

    with torch.no_grad():
        audio = model.decode(tokens, style, model.predict(tokens, style))[0].numpy()
    clip = adapter.prepare(audio, ids)
    fitted = adapter.fit(
        [clip], [clip], np.ones(256), steps=1, texts=[text], text_fraction=1.0,
        speaker_weight=1.0, intelligibility_weight=1.0,
    )  # fmt: skip
    assert fitted.steps == 1 and "intelligibility" in fitted.log[-1]


def _another_speaker(model, utterance):
    """An adapter starting from `utterance`'s style, and a "speaker" to fit: the same sentence in a style 1.5
    stock spreads away, prepared as a clip."""
    from voxclone.training.adapt import Adapter

    tokens, style = utterance
    adapter = Adapter(model, np.repeat(style.numpy().reshape(1, 1, 256), 510, axis=0))
    with torch.no_grad():
        other = style + 0.15 * torch.from_numpy(np.random.default_rng(1).standard_normal((1, 256)).astype(np.float32))
        audio = model.decode(tokens, other, model.predict(tokens, other))[0].numpy()
    return adapter, adapter.prepare(audio, tokens[0, 1:-1].tolist())


def test_fit_offers_its_earlier_state_for_the_intelligibility_check(model, utterance, tts):
    """Besides the state it keeps, a fit offers the one it kept last at or before `EARLIER` of its steps (style
    and whole decoder adapter, as they were then): the check's next try when the kept voice is too accented."""
    from voxclone.training.adapt import EARLIER, decoder_spread

    adapter, clip = _another_speaker(model, utterance)
    fitted = adapter.fit(
        [clip], [clip], np.ones(256) * 0.1, steps=6, eval_every=1, crop_frames=40, heldout_frames=40,
        decoder_spread=decoder_spread(model, tts._stock()),
    )  # fmt: skip
    kept = [e["step"] for e in fitted.log if e.get("kept")]
    assert len(kept) >= 3, fitted.log
    e = fitted.earlier
    assert e is not None and e.step == max(s for s in kept[:-1] if s <= EARLIER * kept[-1]), (kept, e.step)
    assert e.heldout_loss > fitted.heldout_loss
    assert np.allclose(e.pack, adapter.pack + e.delta.reshape(1, 1, 256))
    assert e.decoder.shape == fitted.decoder.shape and not np.allclose(e.decoder, fitted.decoder)
    assert 0 < np.abs(e.decoder).max() < np.abs(fitted.decoder).max()  # the adapter grows as the fit goes on


def test_fit_keeps_a_running_average_of_its_states(model, utterance, tts):
    """With `average`, the state a fit scores and keeps is the running average of the values its steps reach
    (the steps themselves are those of a fit without it), not the last of them."""
    from voxclone.training.adapt import decoder_spread

    adapter, clip = _another_speaker(model, utterance)
    spread = decoder_spread(model, tts._stock())

    def fit(steps: int, average: float = 0.0):
        f = adapter.fit(
            [clip], [clip], np.ones(256) * 0.1, steps=steps, eval_every=100, crop_frames=40, heldout_frames=40,
            decoder_spread=spread, average=average,
        )  # fmt: skip
        assert [e["step"] for e in f.log if e.get("kept")] == [steps], f.log  # the state after the last step
        return f

    raw = [fit(k) for k in (1, 2, 3)]
    assert not np.allclose(raw[1].delta, raw[2].delta)
    beta = 0.5
    want_delta, want_decoder = np.zeros(256), np.zeros_like(raw[0].decoder)
    for f in raw:
        want_delta = beta * want_delta + (1 - beta) * f.delta
        want_decoder = beta * want_decoder + (1 - beta) * f.decoder
    averaged = fit(3, beta)
    assert np.allclose(averaged.delta, want_delta, atol=1e-5)
    assert np.allclose(averaged.decoder, want_decoder, atol=1e-5)
    assert not np.allclose(averaged.delta, raw[2].delta, atol=1e-3)
