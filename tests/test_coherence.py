"""Chapter 9: the book's coherence model (known answers, shipped checkpoint vs its card) and MetricScorer."""

import numpy as np
import pytest
import torch

from streamlib.checkpoint import load_training_state, save_training_state
from streamlib.metrics import CoherenceError, MetricScorer, coherence, load_coherence
from streamlib.metrics.coherence import CHUNK_SAMPLES, DEFAULT_PATH, SR, CoherenceModel, chunk, features
from streamlib.metrics.coherence_train import CoherenceTrainConfig, auc_report, read_fixture, train_step
from streamlib.paths import REPO_ROOT
from streamlib.sweep import Clip

FIXTURE = REPO_ROOT / "tests" / "fixtures" / "coherence_fixture.flac"


@pytest.fixture(scope="module")
def model():
    return load_coherence()


@pytest.fixture(scope="module")
def fixture_pairs():
    return read_fixture(FIXTURE)


def test_missing_or_foreign_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CoherenceError, match="not found"):
        load_coherence(tmp_path / "missing.safetensors")
    (tmp_path / "cocola.ckpt").write_bytes(b"x")
    with pytest.raises(CoherenceError, match="official COCOLA"):
        load_coherence(tmp_path / "cocola.ckpt")


def test_chunking_5s_every_2_5s():
    assert chunk(np.zeros(10 * SR, np.float32), SR).shape == (3, CHUNK_SAMPLES)
    assert chunk(np.zeros(11 * SR, np.float32), SR).shape == (4, CHUNK_SAMPLES)  # end-aligned tail chunk
    assert chunk(np.zeros(3 * SR, np.float32), SR).shape == (1, CHUNK_SAMPLES)  # zero-padded
    assert chunk(np.zeros(10 * 8000, np.float32), 8000).shape == (3, CHUNK_SAMPLES)  # resampled to 16 kHz first


def test_harmonic_subscore_ignores_percussive_channel(model, fixture_pairs):
    feats = features(torch.from_numpy(fixture_pairs[0][0]), SR)[None]
    noisy = feats.clone()
    noisy[:, 1] = torch.rand_like(noisy[:, 1])
    with torch.no_grad():
        assert torch.equal(model.embed(feats, "harmonic"), model.embed(noisy, "harmonic"))
        assert not torch.equal(model.embed(feats, "full"), model.embed(noisy, "full"))
        assert not torch.equal(model.embed(feats, "percussive"), model.embed(noisy, "percussive"))


def test_shipped_checkpoint_reproduces_its_card(model, fixture_pairs):
    card = model.card
    assert DEFAULT_PATH.stat().st_size < 5e6 and FIXTURE.stat().st_size < 1e6
    got = auc_report(model, *fixture_pairs)
    for key in ("auc", "auc_harmonic", "auc_percussive", "mean_true", "mean_random"):
        assert abs(got[key] - card["fixture"][key]) < 1e-3, key
    assert card["heldout"]["auc"] > 0.65 and card["steps"] > 0 and "command" in card


def test_stem_scores_higher_with_its_own_mixture(model, fixture_pairs):
    inputs, stems = fixture_pairs
    own = [coherence(inputs[i], stems[i], SR, model)["coherence"] for i in range(len(stems))]
    other = [coherence(inputs[(i + 1) % len(stems)], stems[i], SR, model)["coherence"] for i in range(len(stems))]
    assert np.mean(own) > np.mean(other)
    assert sum(o > r for o, r in zip(own, other)) >= len(stems) - 1


def test_training_resumes_exactly(tmp_path):
    torch.manual_seed(0)
    pool = (torch.rand(6, 2, 2, 64, 101) * 0.5).half()
    cfg = CoherenceTrainConfig(steps=2, batch_pairs=4, warmup_steps=1)

    def fresh():
        torch.manual_seed(1)
        m = CoherenceModel()
        return m, torch.optim.AdamW(m.parameters(), lr=cfg.lr)

    a, opt_a = fresh()
    for step in range(2):
        train_step(a, opt_a, pool, cfg, step)
    b, opt_b = fresh()
    train_step(b, opt_b, pool, cfg, 0)
    save_training_state(tmp_path / "s.pt", {"model": b.state_dict(), "optimizer": opt_b.state_dict()})
    c, opt_c = fresh()
    state = load_training_state(tmp_path / "s.pt")
    c.load_state_dict(state["model"])
    opt_c.load_state_dict(state["optimizer"])
    train_step(c, opt_c, pool, cfg, 1)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), c.state_dict().values()))


def _clip(i: int, seconds: float = 5.0) -> Clip:
    from streamlib.metrics.beats import click_track

    t = np.arange(int(seconds * SR)) / SR
    drums = click_track(100 + 10 * i, seconds, SR)
    bass = (0.3 * np.sin(2 * np.pi * (55 + 10 * i) * t)).astype(np.float32)
    target = (0.2 * np.sin(2 * np.pi * (220 + 30 * i) * t) * (1 + np.sin(2 * np.pi * 2 * t)) / 2).astype(np.float32)
    return Clip(name=f"synthetic{i}", category=0, sample_rate=SR, input_stems=[drums, bass], target=target,
                frames=int(seconds * 50))


def test_metric_scorer_returns_five_metrics_with_cis(model):
    clips = [_clip(i) for i in range(3)]
    scorer = MetricScorer(coherence_model=model, n_boot=200, fad_boot=50)
    generated = [c.target + 0.01 * np.random.default_rng(i).normal(size=len(c.target)).astype(np.float32)
                 for i, c in enumerate(clips)]
    result = scorer(generated, clips, seed=0)
    assert set(result) == {"beat_f1", "coherence", "coherence_harmonic", "coherence_percussive", "fad"}
    for name, (value, low, high, n, note) in result.items():
        assert low <= value <= high and n == 3 and note, name
    assert "logmel64-16k" in result["fad"][4] and "N = 3" in result["fad"][4]
    key = (clips[0].name, len(clips[0].target))
    assert len(scorer._reference_beats) == 3
    assert scorer.reference_beats(clips[0].name, clips[0].input_mix, SR) is scorer._reference_beats[key]  # cached
