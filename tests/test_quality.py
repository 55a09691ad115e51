"""Recording measurements on real synthesised speech with known degradations."""

import numpy as np
import pytest

from voxclone.audio import resample
from voxclone.cloning import quality


@pytest.fixture(scope="module")
def speech(tts):
    return tts.speak("The library closes at eight, but the reading room stays open until ten.", voice="bf_emma")


def test_telephone_band_is_recognised_and_imitated(speech):
    x, rate = speech.samples, speech.sample_rate
    phone = resample(resample(x, rate, 8000), 8000, 16000)  # an 8 kHz recording, played at 16 kHz
    assert quality.bandwidth_hz(phone, 16000) <= 4100
    assert quality.bandwidth_hz(resample(x, rate, 16000), 16000) > 6000
    assert quality.channel_of([quality.bandwidth_hz(phone, 16000)]) == quality.TELEPHONE_HZ
    assert quality.channel_of([7800, 8000]) == quality.FULL_BAND
    limited = quality.through_channel(x, rate, quality.TELEPHONE_HZ)
    spec_in, spec_out = np.abs(np.fft.rfft(x)) ** 2, np.abs(np.fft.rfft(limited)) ** 2
    high = np.fft.rfftfreq(len(x), 1 / rate) > 4500
    assert spec_out[high].sum() < 1e-4 * spec_in[high].sum()
    assert len(limited) == len(x)


def test_clipping_loudness_snr_and_pitch(speech):
    x, rate = speech.samples, speech.sample_rate
    assert quality.clipped_fraction(x) == 0
    assert quality.clipped_fraction(np.clip(x * 8, -1, 1)) > 0.01
    normalised = quality.normalize_loudness(x * 0.05, rate)
    assert quality.loudness_lufs(normalised, rate) == pytest.approx(-20, abs=0.5)
    noisy = x + np.random.default_rng(0).standard_normal(len(x)).astype(np.float32) * 0.02
    floor = quality.noise_floor(noisy, rate)
    assert 5 < quality.snr_db(noisy, floor, rate) < 30
    assert 150 < quality.median_f0(x, rate) < 230  # a female voice
    assert quality.speech_seconds(x, rate) == pytest.approx(speech.duration, abs=1.2)
