"""The shipped accompanists (checkpoints/models): each loads, matches the shipped codec, and re-scores
its card's validation loss on the committed fixture windows; the grid the book needs is there."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamlib.checkpoint import file_sha256
from streamlib.codec import default_checkpoint, load_codec
from streamlib.model import load_accompanist
from streamlib.stream import shipped_models
from streamlib.train import load_val_fixture, score_windows

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "model_val_windows.npz"
ENTRIES = shipped_models()


def test_the_book_grid_is_shipped():
    specs = {(e.tf, e.k) for e in ENTRIES if e.kind == "streaming"}
    assert {(-50, 1), (0, 1), (50, 1)} <= specs, specs  # k = 1 at t_f = -1 s, 0, +1 s
    assert any(k > 1 for _, k in specs), "no k > 1 prefix-decoder model"
    assert any(e.kind == "offline_prefix" for e in ENTRIES), "no offline prefix decoder"


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.path.stem for e in ENTRIES])
def test_loads_and_scores_its_card(entry):
    acc = load_accompanist(entry.path)
    card = acc.card
    assert card["codec_sha256"] == file_sha256(default_checkpoint())
    acc.check_codec(load_codec())
    assert card["fixture"]["path"] == FIXTURE.name
    loss = score_windows(acc, load_val_fixture(FIXTURE), card["window_frames"])
    assert loss == pytest.approx(card["fixture"]["loss"], abs=2e-3)
    assert (entry.tf, entry.k) == ((None, None) if acc.offline else (acc.spec.tf, acc.spec.k))


def test_validation_loss_orders_with_lookahead():
    """More future visibility makes the target more predictable: at k = 1 the validation loss falls
    from t_f = -1 s to 0 to +1 s (the intermediate points are reported in chapter 7, not asserted)."""
    losses = {e.tf: load_accompanist(e.path).card["val_loss"] for e in ENTRIES if e.kind == "streaming" and e.k == 1}
    assert losses[-50] > losses[0] > losses[50], losses
