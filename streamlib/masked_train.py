"""Training and shipping the masked model of chapter 12 (``python -m streamlib masked train|export``).

The loop follows the accompanist's (``streamlib.train``, chapter 7) and borrows its pieces: the
schedule ``lr_at``, batches from ``TokenWindows`` drawn from ``(seed, step)`` by ``make_batch``, the
fixed validation windows, the codec check of the token cache, and the atomic training state of
``streamlib.checkpoint``. What differs is the objective (``streamlib.model.masked.draw_mask``: a random
level L partly masked, the levels above masked, loss on level L's masked positions) and the input
dropout (20 % of windows lose their input term, for classifier-free guidance). Masks and dropout are
drawn from ``numpy.random.default_rng([seed, step, 17])``, so a resumed run equals an uninterrupted one
without any saved random state.
"""

from __future__ import annotations

import csv
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from streamlib.checkpoint import CheckpointError, hardware, load_card, load_training_state, rng_state, save_training_state
from streamlib.config import ConfigError, TrainConfig, bf16_supported, config_from_dict, get_device
from streamlib.model.masked import (
    MaskedAccompanist, MaskedPreset, draw_input_keep, draw_mask, masked_config_from_dict, masked_model_loss,
    masked_preset, sample_masked, save_masked,
)
from streamlib.train import codec_tables, lr_at, make_batch, validation_windows
from streamlib.stopping import StopRequest

LOG_FIELDS = ("step", "lr", "train_loss", "val_loss", "tokens", "seconds")
_MASK_STREAM = 17  # third seed word of the mask draws (the batch indices use [seed, step])


@dataclass(frozen=True)
class MaskedRun:
    """One masked-model training run: on which tokens, for how long, written where."""

    tokens: str  # token cache folder (python -m streamlib tokenize)
    out: str  # run folder: train_state.pt, log.csv
    steps: int | None = None  # default: the preset's
    seed: int = 0
    policy: str = "paper"  # input mixtures, as in streamlib.train.Run
    val_every: int = 100
    val_windows: int = 16
    save_every_s: float = 120.0
    max_minutes: float | None = None  # stop (and save) after this long; run again to resume


def _identity(run: dict) -> dict:
    """The fields that make a run itself (how long or how often it saves may change on resume)."""
    return {k: v for k, v in run.items() if k not in ("steps", "max_minutes", "save_every_s", "val_every", "out")}


def validation_masks(n: int, n_q: int, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed masks for ``n`` validation windows at every level: row ``i * n_q + q`` is window i's mask with
    L = q (u and the coins from ``default_rng([1234, i, q])``); returns ``(masks [n * n_q, n_q, T], levels)``."""
    masks, levels = [], []
    for i in range(n):
        for q in range(n_q):
            rng = np.random.default_rng([1234, i, q])
            coin = rng.random(frames) < np.cos(rng.random() * np.pi / 2)
            lv = np.arange(n_q)[:, None]
            masks.append(torch.from_numpy((lv > q) | ((lv == q) & coin[None, :])))
            levels.append(q)
    return torch.stack(masks), torch.tensor(levels)


@torch.no_grad()
def evaluate_masked(model: MaskedAccompanist, windows: dict[str, torch.Tensor], device: torch.device,
                    batch_size: int = 8, by_level: bool = False) -> float | dict[int, float]:
    """Mean cross entropy per scored token on fixed windows, each with a fixed mask at every level L
    (``validation_masks``), input kept: the card's number; ``by_level``: one mean per level L."""
    was = model.training
    model.eval()
    n, n_q, frames = windows["target"].shape
    masks, levels = validation_masks(n, n_q, frames)
    rows = {key: v.repeat_interleave(n_q, dim=0) for key, v in windows.items()}  # window i at rows i*n_q .. +n_q-1
    sums, counts = np.zeros(n_q), np.zeros(n_q)
    for lo in range(0, n * n_q, batch_size):
        sl = slice(lo, lo + batch_size)
        s, c = masked_model_loss(model, rows["input"][sl].to(device), rows["target"][sl].to(device),
                                 rows["category"][sl].to(device), masks[sl].to(device), levels[sl].to(device),
                                 per_window=True)
        np.add.at(sums, levels[sl].numpy(), s.cpu().double().numpy())
        np.add.at(counts, levels[sl].numpy(), c.cpu().numpy())
    model.train(was)
    if by_level:
        return {q: round(sums[q] / counts[q], 5) for q in range(n_q) if counts[q]}
    return float(sums.sum() / max(counts.sum(), 1))


def train_masked(run: MaskedRun, preset: MaskedPreset | str = "book", *, codec=None,
                 device: str | torch.device | None = None, progress: bool = True, log=print, on_step=None,
                 command: str | None = None) -> dict:
    """Train (or resume) ``run``; returns a summary (steps, wall time, validation loss, model, history).

    ``codec`` supplies the frozen input codebooks (default: the shipped codec, checked against the
    token cache). The state is saved every ``run.save_every_s`` seconds and on any exit, Ctrl-C and
    SIGTERM included; calling ``train_masked`` again on the same ``out`` resumes exactly.
    """
    from tqdm.auto import tqdm

    from streamlib.codec.tokenize import TokenWindows

    preset = masked_preset(preset) if isinstance(preset, str) else preset
    mcfg, tcfg = preset.model, preset.train
    window = tcfg.window_frames
    if window > mcfg.model.max_frames:
        raise ConfigError(f"window of {window} frames exceeds the model's max_frames {mcfg.model.max_frames}")
    total = int(run.steps or tcfg.steps)
    if total < 1:
        raise ConfigError(f"steps must be >= 1, got {total}")
    device = get_device(device) if not isinstance(device, torch.device) else device

    torch.manual_seed(run.seed)
    tables, codec_sha = codec_tables(run.tokens, mcfg.model.n_q, codec)
    model = MaskedAccompanist(mcfg, tables).to(device)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embed" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2 or "embed" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": tcfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=tcfg.peak_lr, betas=tcfg.betas)
    configs = {"masked_config": dataclasses.asdict(mcfg), "train_config": dataclasses.asdict(tcfg)}

    out = Path(run.out)
    state_path = out / "train_state.pt"
    step, history, wall, commands = 0, [], 0.0, []
    if state_path.exists():
        state = load_training_state(state_path)
        if state.get("kind") != "masked":
            raise CheckpointError(f"{state_path} is not a masked-model training state; use a new --out")
        if _identity(state["run"]) != _identity(dataclasses.asdict(run)) or state["configs"] != configs:
            raise CheckpointError(f"{state_path} belongs to another run or preset ({state['run']}, preset "
                                  f"{state.get('preset')}); use a new --out")
        if state.get("codec_sha256") != codec_sha:
            raise CheckpointError(f"{state_path} was trained on codec {state.get('codec_sha256')}, these tokens "
                                  f"are codec {codec_sha}; use a new --out")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step, history, wall = int(state["step"]), list(state["history"]), float(state["wall_seconds"])
        commands = list(state.get("commands", []))
        log(f"resumed {state_path} at step {step}")
    if command:
        commands.append(f"{command}  # sitting from step {step}")
    ds = TokenWindows(run.tokens, "train", window, n_q=mcfg.model.n_q, policy=run.policy, seed=run.seed)
    val = validation_windows(run.tokens, window, mcfg.model.n_q, run.val_windows, run.policy)
    use_bf16 = tcfg.bf16 and bf16_supported(device)

    def save() -> None:
        save_training_state(state_path, {
            "kind": "masked", "run": dataclasses.asdict(run), "preset": preset.name, "configs": configs,
            "model": model.state_dict(), "optimizer": opt.state_dict(), "rng": rng_state(), "step": step,
            "history": history, "wall_seconds": wall, "codec_sha256": codec_sha, "window": window,
            "hardware": {**hardware(), "bf16_autocast": use_bf16}, "commands": commands,
        })
        with open(out / "log.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=LOG_FIELDS)
            w.writeheader()
            w.writerows(history)

    out.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=total, initial=step, desc="train masked", disable=not progress)
    started = last_save = time.perf_counter()
    wall0 = wall
    model.train()
    consistent = True  # model, optimiser, step and history agree (not in the middle of a step)
    with StopRequest() as stopper:
        try:
            while step < total:
                consistent = False
                lr = lr_at(step, tcfg, total)
                for group in opt.param_groups:
                    group["lr"] = lr
                idx = np.random.default_rng([run.seed, step]).integers(0, len(ds), size=tcfg.batch_size)
                batch = make_batch(ds, idx, draw=step + 1)
                rng = np.random.default_rng([run.seed, step, _MASK_STREAM])
                masked, level = draw_mask(rng, tcfg.batch_size, mcfg.model.n_q, window)
                keep = draw_input_keep(rng, tcfg.batch_size, mcfg.input_dropout)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                    summed, count = masked_model_loss(model, batch["input"].to(device), batch["target"].to(device),
                                                      batch["category"].to(device), masked.to(device), level.to(device),
                                                      keep.to(device))
                loss = summed / count.clamp(min=1)
                value = float(loss.detach())
                opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), tcfg.grad_clip)
                opt.step()
                step += 1
                wall = wall0 + time.perf_counter() - started
                row = {"step": step, "lr": lr, "train_loss": round(value, 5), "val_loss": "",
                       "tokens": int(count), "seconds": round(wall, 1)}
                if step % run.val_every == 0 or step == total:
                    row["val_loss"] = round(evaluate_masked(model, val, device), 5)
                history.append(row)
                consistent = True
                if on_step is not None:
                    on_step(row)
                bar.update(1)
                bar.set_postfix(loss=f"{value:.3f}", val=row["val_loss"] or "-")
                if time.perf_counter() - last_save > run.save_every_s:
                    save()
                    last_save = time.perf_counter()
                if run.max_minutes is not None and (time.perf_counter() - started) > 60 * run.max_minutes:
                    log(f"stopping after {run.max_minutes} minutes at step {step}; run again to resume")
                    break
                if stopper.signal is not None:
                    log(f"stopped by signal {stopper.signal} after step {step}; run again to resume")
                    raise KeyboardInterrupt(f"signal {stopper.signal}")
        finally:
            if consistent:
                save()  # also on Ctrl-C or SIGTERM (after the step): the run resumes from here
            bar.close()
    val_losses = [r["val_loss"] for r in history if r["val_loss"] != ""]
    return {"step": step, "total": total, "wall_seconds": wall, "val_loss": val_losses[-1] if val_losses else None,
            "history": history, "model": model, "window": window, "codec_sha256": codec_sha}


def model_from_state(state: dict) -> MaskedAccompanist:
    """The model of a training state (``train_state.pt`` of ``train_masked``), in eval mode."""
    if state.get("kind") != "masked":
        raise CheckpointError("not a masked-model training state (python -m streamlib masked train writes one)")
    cfg = masked_config_from_dict(state["configs"]["masked_config"])
    model = MaskedAccompanist(cfg, state["model"]["input_tables"])
    model.load_state_dict(state["model"])
    return model.eval()


def time_generation(model: MaskedAccompanist, windows: dict[str, torch.Tensor], seed: int = 0) -> dict:
    """Seconds to generate the first validation window with the model's own sampling settings."""
    sample = sample_masked(model, windows["input"][0], int(windows["category"][0]), seed=seed)
    frames = int(windows["input"].shape[-1])
    return {"seconds": round(sample.seconds, 2), "clip_seconds": frames / 50, "threads": torch.get_num_threads(),
            "steps": list(sample.steps), "cfg_scale": sample.cfg_scale,
            "x_real_time": round(frames / 50 / sample.seconds, 3)}


def export_masked(state_path: str | Path, out: str | Path, *, commands: list[str] | None = None,
                  half: str = "auto", timing: bool = True, fixture: str | Path | None = None) -> dict:
    """Write ``out`` (safetensors) + card from a run's ``train_state.pt``.

    The card holds the configs, codec hash, data, steps, wall time, hardware, the loss curve, the
    validation loss (overall and per level L), the time to generate one window on this machine, the
    command of every sitting, and the fp16 check: weights are stored in half precision when that
    moves the validation loss by less than 1e-3 nats (``half="auto"``; "yes" / "no" force it).
    ``fixture``: committed windows of the same codec's token cache (``tests/fixtures/*.npz``, as the
    streaming models' cards): the card records the stored weights' loss on them, so a test re-scores the
    shipped model without the data set.
    """
    import json

    state = load_training_state(state_path)
    model = model_from_state(state)
    run = MaskedRun(**state["run"])
    window = int(state["window"])
    n_q = model.n_q
    val = validation_windows(run.tokens, window, n_q, run.val_windows, run.policy)
    cpu = torch.device("cpu")
    val_loss = evaluate_masked(model, val, cpu)
    half_model = MaskedAccompanist(model.cfg, model.input_tables).eval()
    half_model.load_state_dict({k: v.half().float() if v.is_floating_point() else v for k, v in model.state_dict().items()})
    fp16 = {"val_loss_fp32": val_loss, "val_loss_fp16": evaluate_masked(half_model, val, cpu)}
    use_half = half == "yes" or (half == "auto" and abs(fp16["val_loss_fp16"] - val_loss) < 1e-3)
    meta_path = Path(run.tokens) / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    hist = state["history"]
    every = max(1, len(hist) // 100)
    tcfg = config_from_dict(TrainConfig, state["configs"]["train_config"])
    card = {
        "preset": state["preset"],
        "run": state["run"],
        "train_config": state["configs"]["train_config"],
        "window_frames": window,
        "codec_sha256": state.get("codec_sha256"),
        "data": {"tokens": str(run.tokens), "dataset": meta.get("dataset"), "tracks": meta.get("tracks"),
                 "policy": run.policy, "token_seed": meta.get("seed")},
        "steps": int(state["step"]),
        "batch_size": tcfg.batch_size,
        "wall_seconds": round(float(state["wall_seconds"]), 1),
        "hardware": state.get("hardware"),
        "val_loss": round(val_loss, 5),
        "val_loss_by_level": {str(k): v for k, v in evaluate_masked(model, val, cpu, by_level=True).items()},
        "val_windows": int(val["input"].shape[0]),
        "val_note": "cross entropy on the masked positions of level L, one fixed mask per window and level "
                    "(validation_masks), input kept",
        "fp16_check": fp16,
        "generation": time_generation(model, val) if timing else None,
        "loss_curve": {key: [r[key] for r in hist[::every]] for key in ("step", "train_loss")},
        "val_curve": [(r["step"], r["val_loss"]) for r in hist if r["val_loss"] != ""],
        "reproduce": commands if commands is not None else list(state.get("commands", [])),
    }
    if fixture is not None:
        from streamlib.train import load_val_fixture

        stored = half_model if use_half else model
        windows = {k: (v[..., :window] if v.dim() == 3 else v) for k, v in load_val_fixture(fixture).items()}
        card["fixture"] = {"path": Path(fixture).name, "loss": round(evaluate_masked(stored, windows, cpu), 5)}
    save_masked(out, model, card, half=use_half)
    return load_card(out)


__all__ = ["MaskedRun", "evaluate_masked", "export_masked", "model_from_state", "time_generation", "train_masked",
           "validation_masks"]
