"""Token cache (chapter 3): format, mixture policy, resume, TokenWindows determinism and silence rule."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from streamlib.checkpoint import save_weights
from streamlib.codec import CausalCodec, load_codec
from streamlib.codec.model import build_codec_model
from streamlib.codec.tokenize import POLICIES, TokenWindows, sample_mixes, tokenize_dataset
from streamlib.config import get_preset
from streamlib.data.sampling import active_frames
from streamlib.data.synth import Recipe, synthesize


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("tok")
    synthesize(root / "data", Recipe(tracks=2, seed=3, min_seconds=9.0, max_seconds=10.0), progress=False)
    cfg = get_preset("debug").codec
    torch.manual_seed(0)
    path = root / "codec.safetensors"
    save_weights(path, build_codec_model(cfg).state_dict(), {"config": dataclasses.asdict(cfg)})
    codec = load_codec(path)
    meta = tokenize_dataset(root / "data", root / "tokens", codec, splits=("train",), progress=False,
                            codec_path=path)
    return root, codec, meta


def test_cache_format(setup):
    root, codec, meta = setup
    assert meta["complete"] and meta["tracks"]["train"] == 2 and meta["codec_sha256"]
    files = sorted((root / "tokens" / "train").glob("Track*.npz"))
    assert len(files) == 2
    with np.load(files[0]) as z:
        S, Q, T = z["stems"].shape
        M = len(z["mix_target"])
        assert (Q, z["stems"].dtype) == (codec.n_codebooks, np.int16)
        assert z["categories"].shape == (S,) and z["categories"].dtype == np.int8
        assert z["active"].shape == (S, T) and z["active"].dtype == bool
        assert z["mix_codes"].shape == (M, Q, T) and z["mix_codes"].dtype == np.int16
        assert z["mix_members"].shape == (M, S) and z["mix_active"].shape == (M, T)
        assert z["mix_policy"].dtype == np.int8 and set(z["mix_policy"]) <= {0, 1}
        for m in range(M):
            t = z["mix_target"][m]
            assert not z["mix_members"][m, t]  # the target is never in its own input
            if z["mix_policy"][m] == POLICIES["public"]:
                assert z["mix_members"][m].sum() == S - 1
        assert 0 <= z["stems"].min() and z["stems"].max() < codec.codebook_size


def test_cache_matches_the_codec(setup):
    root, codec, _ = setup
    from streamlib.codec.tokenize import read_stems

    names, audio, _ = read_stems(root / "data" / "train" / "Track00001", codec.sample_rate)
    with np.load(root / "tokens" / "train" / "Track00001.npz") as z:
        expected = codec.encode(torch.from_numpy(audio[:1])[:, None]).numpy()
        assert np.array_equal(z["stems"][:1], expected)
        mask = active_frames(audio[0], codec.sample_rate)
        assert np.array_equal(z["active"][0, : len(mask)], mask[: z["active"].shape[1]])


def test_resume_skips_finished_tracks(setup):
    root, codec, _ = setup
    f = root / "tokens" / "train" / "Track00001.npz"
    before = f.stat().st_mtime_ns
    tokenize_dataset(root / "data", root / "tokens", codec, splits=("train",), progress=False,
                     codec_path=root / "codec.safetensors")
    assert f.stat().st_mtime_ns == before
    other = CausalCodec(codec.cfg, build_codec_model(codec.cfg))
    other.card = {"weights_sha256": "different"}
    with pytest.raises(ValueError, match="another codec"):
        tokenize_dataset(root / "data", root / "tokens", other, splits=("train",), progress=False)


def test_token_windows(setup):
    root, codec, _ = setup
    ds = TokenWindows(root / "tokens", "train", window_frames=100, n_q=3, policy="paper", seed=1)
    again = TokenWindows(root / "tokens", "train", window_frames=100, n_q=3, policy="paper", seed=1)
    assert len(ds) > 0
    item = ds[0]
    assert item["input"].shape == item["target"].shape == (3, 100) and item["input"].dtype == torch.int64
    assert isinstance(item["category"], int)
    for i in range(len(ds)):
        a, b = ds[i], again[i]
        assert torch.equal(a["input"], b["input"]) and torch.equal(a["target"], b["target"])
    both = TokenWindows(root / "tokens", "train", window_frames=100, policy="both")
    public = TokenWindows(root / "tokens", "train", window_frames=100, policy="public")
    assert len(both) == len(ds) + len(public)
    by_target = [TokenWindows(root / "tokens", "train", window_frames=100, policy="both", targets=(c,))
                 for c in sorted({both[i]["category"] for i in range(len(both))})]
    assert sum(len(d) for d in by_target) == len(both)  # every row, in exactly one category's set
    for d in by_target:
        assert len({d[i]["category"] for i in range(len(d))}) == 1
    with pytest.raises(ValueError, match="policy"):
        TokenWindows(root / "tokens", "train", window_frames=100, policy="random")
    with pytest.raises(FileNotFoundError):
        TokenWindows(root / "tokens", "validation", window_frames=100)


def test_sample_mixes_policy():
    rng = np.random.default_rng(0)
    cats = np.array([0, 3, 16, 5], dtype=np.int8)  # 16 = Vocal: never a target
    rows = sample_mixes(4, cats, rng, paper_mixes=2)
    assert sorted({r[1] for r in rows}) == [0, 1, 3]
    assert len(rows) == 3 * 3
    for members, target, policy in rows:
        assert not members[target] and 1 <= members.sum() <= 3
        assert policy in (0, 1)
    assert sample_mixes(1, cats[:1], rng) == []


def test_meta_json(setup):
    root, _, meta = setup
    on_disk = json.loads((root / "tokens" / "meta.json").read_text())
    assert on_disk["sample_rate"] == meta["sample_rate"] and on_disk["seed"] == 0
    assert on_disk["mixes_policy"]["paper_mixes_per_target"] == 2


def test_book_tokens_keeps_a_cache_of_the_previous_codec_beside(tmp_path, monkeypatch):
    """When the shipped codec changes, the book's cache made by the previous one is moved to
    ``quick-HASH`` (where ``book_tokens(codec_path=...)`` of that codec finds it), and a new one is made."""
    import streamlib.codec.tokenize as tokenize
    import streamlib.data.synth as synth
    from streamlib.checkpoint import load_card
    from streamlib.codec import codes_id, default_checkpoint

    made = []
    monkeypatch.setenv("STREAMLIB_DATA", str(tmp_path))
    monkeypatch.setattr(synth, "book_dataset", lambda quick: tmp_path / "set")
    monkeypatch.setattr(tokenize, "tokenize_dataset", lambda dataset, out, **kw: made.append((out, kw)) or
                        (out / "meta.json").write_text(json.dumps({"complete": True, "codec_sha256": "new"})))
    old = tmp_path / "tokens" / "quick"
    old.mkdir(parents=True)
    (old / "meta.json").write_text(json.dumps({"complete": True, "codec_sha256": "0123456789abcdef"}))
    out = tokenize.book_tokens(quick=True, progress=False)
    assert out == old and len(made) == 1 and made[0][1]["codec_path"] == default_checkpoint()
    aside = tmp_path / "tokens" / "quick-01234567"
    assert json.loads((aside / "meta.json").read_text())["codec_sha256"] == "0123456789abcdef"
    kept = default_checkpoint().with_name("book_v3.safetensors")
    (tmp_path / "tokens" / f"quick-{codes_id(load_card(kept))[:8]}").mkdir()
    tokenize.book_tokens(quick=True, progress=False, codec_path=kept)  # another codec's cache: its own folder
    assert made[-1][0].name == f"quick-{codes_id(load_card(kept))[:8]}" and made[-1][1]["codec_path"] == kept
