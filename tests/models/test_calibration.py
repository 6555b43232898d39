"""The calibration layer's helpers."""

from __future__ import annotations

import numpy as np

from models import calibration


def test_the_fast_column_quantiles_equal_numpys_nanquantile():
    rng = np.random.default_rng(3)
    for _ in range(50):
        z = rng.normal(size=(int(rng.integers(10, 400)), 7))
        z[rng.random(z.shape) < rng.uniform(0, 0.6)] = np.nan
        counts = np.isfinite(z).sum(axis=0)
        keep = counts >= 1
        expected = np.nanquantile(z[:, keep], calibration._GRID, axis=0)
        np.testing.assert_allclose(calibration._column_quantiles(z[:, keep], counts[keep]), expected, rtol=0, atol=1e-12)
