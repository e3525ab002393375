"""The model-free lookahead probe: flux of quantised latents and its lagged correlation."""

import numpy as np
import pytest
import torch

from streamlib.lookahead import flux_lag_correlation, lagged_correlation, latent_flux


def test_latent_flux_is_zero_for_held_codes_and_positive_at_changes():
    tables = np.random.default_rng(0).normal(size=(2, 8, 3))
    codes = np.array([[1, 1, 1, 5, 5], [2, 2, 2, 2, 7]])
    flux = latent_flux(codes, tables)
    assert flux.shape == (4,)
    assert flux[0] == flux[1] == 0 and flux[2] > 0 and flux[3] > 0


def test_lagged_correlation_peaks_at_the_true_lag():
    rng = np.random.default_rng(1)
    source = rng.normal(size=400)
    target = np.roll(source, -3)  # target[f] = source[f + 3]: the source leads by 3 frames
    r = {d: lagged_correlation(target, source, d) for d in range(-6, 7)}
    assert max(r, key=r.get) == 3 and r[3] == pytest.approx(1.0, abs=0.02)
    assert abs(r[-3]) < 0.2
    assert np.isnan(lagged_correlation(np.ones(10), source[:10], 0))  # constant: undefined, not 0


def test_flux_lag_correlation_finds_a_mixture_that_leads_its_target(tmp_path):
    rng = np.random.default_rng(2)
    tables = torch.from_numpy(rng.normal(size=(2, 16, 4))).float()
    (tmp_path / "validation").mkdir()
    for t in range(3):
        stem = rng.integers(0, 16, (1, 2, 300))
        mix = np.roll(stem, 2, axis=-1)  # the mixture plays the target's changes 2 frames later
        np.savez(tmp_path / "validation" / f"Track{t:05d}.npz", stems=stem.astype(np.int16),
                 mix_codes=mix.astype(np.int16), mix_target=np.array([0], np.int16))
    result = flux_lag_correlation(tmp_path, tables, lags=range(-4, 5))
    best = max(result, key=lambda d: result[d][0])
    assert best == 2 and result[2][0] > 0.9 and result[0][0] < 0.3
    with pytest.raises(FileNotFoundError):
        flux_lag_correlation(tmp_path, tables, lags=[0], split="test")
