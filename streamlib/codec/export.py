"""Ship a trained codec: weights (fp16 when it loses nothing measurable) + a card with its quality.

Chapter 3 reads the card. Pitch fidelity (``streamlib.codec.pitch_eval``: chroma similarity, probes of the tokens, codebook
perplexity) is measured on a synthesised set made with a seed never used in training
(``pitch_data``), and again on a tiny set the tests regenerate byte for byte (``PITCH_FIXTURE``);
the streaming speed in 1-frame chunks on one thread goes into the card too.

The held-out evaluation uses the ``test`` split's **mixes**: one excerpt
of ``EVAL_SECONDS`` per track starting at ``EVAL_START`` seconds (deterministic), reconstructed with
1, 2, 4 and all levels, next to an untrained codec (same config, seed 0) and the same audio
low-passed at 4 kHz. A tiny fixture clip and its numbers go into the card so a test can check
that the shipped file still reproduces them.
"""

from __future__ import annotations

import dataclasses
import shlex
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from streamlib.checkpoint import file_sha256, hardware, save_weights
from streamlib.codec.codec import CausalCodec, _strip_weight_norm, load_codec
from streamlib.codec.model import build_codec_model
from streamlib.codec.quality import distances, evaluate_codec, lowpass
from streamlib.codec.train import TOKENIZER_PARTS, model_from_state

PITCH_FIXTURE = {"tracks": 8, "seed": 7, "min_seconds": 16.0, "max_seconds": 20.0}
EVAL_START = 10.0
EVAL_SECONDS = 5.0
FIXTURE_SECONDS = 2.0


def _excerpt(path: Path, sample_rate: int) -> np.ndarray:
    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    if sr != sample_rate:
        raise ValueError(f"{path}: {sr} Hz, codec runs at {sample_rate} Hz")
    x = x.mean(axis=1)
    n = int(EVAL_SECONDS * sample_rate)
    start = min(int(EVAL_START * sr), max(0, len(x) - n))
    seg = np.zeros(n, dtype=np.float32)
    seg[: len(x[start : start + n])] = x[start : start + n]
    return seg


def heldout_mixes(root: str | Path, sample_rate: int, split: str = "test", max_tracks: int = 24) -> torch.Tensor:
    """``[B, 1, N]``: one excerpt per track mix of ``split`` (``EVAL_SECONDS`` from ``EVAL_START``)."""
    tracks = sorted(p for p in (Path(root) / split).glob("Track*") if (p / "mix.flac").exists())[:max_tracks]
    if not tracks:
        raise FileNotFoundError(f"no mixes under {Path(root) / split}")
    return torch.from_numpy(np.stack([_excerpt(t / "mix.flac", sample_rate) for t in tracks]))[:, None]


def heldout_stems(root: str | Path, sample_rate: int, split: str = "test", max_stems: int = 24) -> torch.Tensor:
    """``[B, 1, N]``: the same excerpt of single stems (the first ``max_stems`` that are not near-silent)."""
    clips = []
    for path in sorted((Path(root) / split).glob("Track*/stems/*.flac")):
        seg = _excerpt(path, sample_rate)
        if np.sqrt(np.mean(seg**2)) > 1e-3:
            clips.append(seg)
        if len(clips) == max_stems:
            break
    if not clips:
        raise FileNotFoundError(f"no audible stems under {Path(root) / split}")
    return torch.from_numpy(np.stack(clips))[:, None]


def quality_report(codec: CausalCodec, clips: torch.Tensor) -> dict:
    """Reconstruction numbers of ``codec`` plus the untrained-codec and 4 kHz low-pass bars."""
    torch.manual_seed(0)
    fresh = build_codec_model(codec.cfg)
    _strip_weight_norm(fresh)
    untrained = CausalCodec(codec.cfg, fresh)
    return {
        "clips": int(clips.shape[0]),
        "seconds_each": clips.shape[-1] / codec.sample_rate,
        "levels": evaluate_codec(codec, clips),
        "untrained_codec": evaluate_codec(untrained, clips, levels=[4 if codec.n_codebooks >= 4 else codec.n_codebooks]),
        "lowpass_4khz": distances(lowpass(clips, codec.sample_rate, 4000.0), clips, codec.sample_rate),
    }


def write_fixture(clips: torch.Tensor, sample_rate: int, path: Path) -> torch.Tensor:
    """Save the first ``FIXTURE_SECONDS`` of the first held-out clip as 16-bit FLAC; return it as read back."""
    x = clips[0, 0, : int(FIXTURE_SECONDS * sample_rate)].numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, sample_rate, subtype="PCM_16")
    y, _ = sf.read(str(path), dtype="float32")
    return torch.from_numpy(y)[None, None]


def fixture_numbers(codec: CausalCodec, clip: torch.Tensor) -> dict:
    codes = codec.encode(clip)
    q = min(4, codec.n_codebooks)
    return {"levels": q, **distances(codec.decode(codes[:, :q]), clip, codec.sample_rate)}


def pitch_fixture_numbers(codec: CausalCodec) -> dict:
    """Pitch fidelity on the tiny ``PITCH_FIXTURE`` set, regenerated (deterministically) in a temporary folder."""
    import tempfile

    from streamlib.codec.pitch_eval import load_excerpts, pitch_fidelity
    from streamlib.data.synth import Recipe, synthesize

    with tempfile.TemporaryDirectory() as tmp:
        synthesize(tmp, Recipe(**PITCH_FIXTURE), progress=False)
        return pitch_fidelity(codec, load_excerpts(tmp, max_tracks=PITCH_FIXTURE["tracks"]))


def streaming_speed(codec: CausalCodec, seconds: float = 5.0) -> dict:
    """x real time of streaming encode + decode (all levels) in 1-frame chunks on one thread: the plain
    streams and the compiled frame steps the engine runs (``streamlib.fastcodec``)."""
    from streamlib.bench.codec import measure

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        speeds = measure(codec, seconds, [1], repeats=3)
    finally:
        torch.set_num_threads(threads)
    import os

    return {"x_real_time_1frame_enc_dec": round(speeds["enc+dec stream 1f"], 2),
            "x_real_time_1frame_enc_dec_compiled": round(speeds["enc+dec fast 1f"], 2), "threads": 1,
            "machine": hardware(), "load_average_1min": round(os.getloadavg()[0], 2),
            "how": "streamlib.bench.codec.measure, median of 3, 5 s of noise, all levels encoded; "
                   "compiled: the engine's torch.compile frame steps"}


def loss_curve(log_csv: Path, points: int = 60) -> dict[str, list[float]] | None:
    """About ``points`` rows of a run's loss log (step, mel, commitment), each averaging its stretch."""
    if not log_csv.exists():
        return None
    rows = np.genfromtxt(log_csv, delimiter=",", names=True)
    if rows.size < 2:
        return None
    groups = np.array_split(np.arange(rows.size), min(points, rows.size))
    return {"step": [int(rows["step"][g[-1]]) for g in groups],
            "mel": [round(float(np.mean(rows["mel"][g])), 4) for g in groups],
            "commitment": [round(float(np.mean(rows["commitment"][g])), 4) for g in groups]}


def codes_of_parent(state: dict[str, torch.Tensor], meta: dict) -> dict:
    """For a decoder-only run: ``codes_sha256`` (the parent's ``codes_id``: token caches and accompanists of
    the parent stay valid) and ``decoder_of``, after checking that encoder, quantiser and pitch head are
    bit for bit the parent's. Empty for every other run."""
    from streamlib.checkpoint import CheckpointError, load_card, load_weights
    from streamlib.codec.codec import codes_id

    if not meta["train_config"].get("decoder_only"):
        return {}
    init = meta["extra"].get("init_from") or {}
    parent = Path(init.get("path", ""))
    if not parent.is_file():
        raise CheckpointError(f"a decoder-only run needs its parent codec to export: {parent} is missing")
    weights = load_weights(parent)
    frozen = [k for k in state if k.split(".")[0] in TOKENIZER_PARTS]
    changed = [k for k in frozen if k not in weights or not torch.equal(weights[k], state[k].float())]
    if changed or not frozen:
        raise CheckpointError(f"the codes of this run are not {parent}'s: {changed[:5]} differ")
    card = load_card(parent)
    return {"codes_sha256": codes_id(card),
            "decoder_of": {"path": str(parent), "weights_sha256": card["weights_sha256"], "steps": card.get("steps"),
                           "wall_hours": card.get("wall_hours"), "reproduce": card.get("reproduce")}}


def export_codec(state_path: str | Path, out: str | Path, data_root: str | Path, *, half: str = "auto",
                 fixture: str | Path | None = None, max_tracks: int = 24, pitch_data: str | Path | None = None) -> dict:
    """Write ``out`` (.safetensors) + card from a training state; returns the card.

    ``half``: "yes", "no" or "auto" (fp16 if the held-out mel distance at 4 levels moves by < 0.5 %).
    """
    model, meta = model_from_state(state_path)
    out = Path(out)
    cfg = model.cfg
    clips = heldout_mixes(data_root, cfg.sample_rate, max_tracks=max_tracks)

    state = model.state_dict()
    same_codes = codes_of_parent(state, meta)  # read before ``out`` may replace the parent
    parent = load_codec(same_codes["decoder_of"]["path"]) if same_codes else None
    card = {
        "kind": "codec",
        "config": dataclasses.asdict(cfg),
        "train_config": meta["train_config"],
        "steps": meta["step"],
        "wall_seconds": round(meta["wall_seconds"], 1),
        "wall_hours": round(meta["wall_seconds"] / 3600, 3),
        "train_hardware": meta["hardware"],
        "export_hardware": hardware(),
        "data": {"root": str(data_root), **meta["extra"].get("data", {})},
        "preset": meta["extra"].get("preset"),
        "train_command": meta["extra"].get("command"),
        "init_from": meta["extra"].get("init_from"),  # the weights it started from (None: from scratch)
        "export_command": " ".join(shlex.quote(a) for a in ["python", "-m", "streamlib"] + sys.argv[1:]),
        "parameters": sum(p.numel() for p in model.parameters()),
        "eval": {"split": "test", "what": "mixes", "start_seconds": EVAL_START, "seconds": EVAL_SECONDS,
                 "metrics": "mel = dac MelSpectrogramLoss (7 scales); si_sdr dB; mrstft = dac MultiScaleSTFTLoss"},
        **same_codes,
    }
    recipe = card["data"].get("recipe")
    if recipe:
        card["data_command"] = (f"python -m streamlib data synth --tracks {recipe['tracks']} --seed {recipe['seed']} "
                                f"--sample-rate {recipe['sample_rate']} --out {data_root}")
    card["reproduce"] = [c for c in (card.get("data_command"), card["train_command"], card["export_command"]) if c]
    resumable = out.with_suffix(".train_state.pt")
    if resumable.exists():
        card["train_state"] = {"path": resumable.name, "sha256": file_sha256(resumable),
                               "resume": f"python -m streamlib codec train --preset {card['preset']} --out runs/more "
                                         f"--resume-from {resumable} --steps N"}
    curve = loss_curve(Path(state_path).parent / "log.csv")
    if curve:
        card["loss_curve"] = curve
    save_weights(out, state, card, half=False)
    full = load_codec(out)
    report32 = quality_report(full, clips)
    use_half = half == "yes"
    if half == "auto":
        save_weights(out, state, card, half=True)
        report16 = quality_report(load_codec(out), clips)
        q = str(min(4, cfg.n_codebooks))
        m32, m16 = report32["levels"][q]["mel"], report16["levels"][q]["mel"]
        use_half = abs(m16 - m32) <= 0.005 * m32
        card["fp16_check"] = {"mel_fp32": m32, "mel_fp16": m16, "chosen": "float16" if use_half else "float32"}
    card["quality"] = report16 if use_half and half == "auto" else report32
    stems = heldout_stems(data_root, cfg.sample_rate, max_stems=max_tracks)
    card["quality_stems"] = quality_report(full, stems)  # single instruments: easier than mixes
    if use_half and half == "yes":
        save_weights(out, state, card, half=True)
        card["quality"] = quality_report(load_codec(out), clips)
    if fixture is not None:
        fixture = Path(fixture)
        save_weights(out, state, card, half=use_half)
        clip = write_fixture(clips, cfg.sample_rate, fixture)
        card["fixture"] = {"path": str(fixture.name), "sha256": file_sha256(fixture),
                           **fixture_numbers(load_codec(out), clip)}
    save_weights(out, state, card, half=use_half)
    final = load_codec(out)  # the weights as shipped
    if pitch_data is not None:
        import json

        from streamlib.codec.pitch_eval import load_excerpts, pitch_fidelity

        recipe = Path(pitch_data) / "synth.json"
        excerpts = load_excerpts(pitch_data, max_tracks=max_tracks)
        card["pitch"] = {"data": {"root": str(pitch_data),
                                  **(json.loads(recipe.read_text()) if recipe.exists() else {})},
                         **pitch_fidelity(final, excerpts)}
        if parent is not None:  # the same codes through the parent's decoder, on the same excerpts
            from streamlib.codec.pitch_eval import harmony_ceiling

            card["decoder_of"]["pitch_harmony"] = harmony_ceiling(
                parent, [dataclasses.replace(e, codes=None) for e in excerpts if e.kind != "mix"])
        card["pitch_fixture"] = {"recipe": PITCH_FIXTURE, **pitch_fixture_numbers(final)}
    card["speed"] = streaming_speed(final)
    save_weights(out, state, card, half=use_half)
    return card
