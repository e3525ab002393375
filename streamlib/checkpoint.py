"""One checkpoint format for every trained artifact: safetensors weights + a JSON card beside them.

* ``save_weights`` / ``load_weights``: ``NAME.safetensors`` (optionally half precision) and
  ``NAME.json`` (the card: config, data recipe, steps, wall time, hardware, scores, command).
* ``save_training_state`` / ``load_training_state``: everything needed to resume training exactly
  (model, optimiser, scheduler, RNG states, step) in a weights-only ``torch.save`` file, loaded with
  ``weights_only=True`` (no arbitrary pickle).
* Every write goes to a temporary file in the same folder first and is then renamed
  (``os.replace``), so a crash never leaves a half-written checkpoint.

Used by chapters 3 (codec), 7 (training) and 9 (coherence model).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch
from safetensors.torch import load_file, save_file


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, or does not match the model it is loaded into."""


def _atomic_write(path: Path, write: Callable[[str], None]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path: str | Path, data: dict) -> None:
    """Write JSON atomically (sorted keys, indented, trailing newline)."""

    def _w(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")

    _atomic_write(Path(path), _w)


def write_csv(path: str | Path, columns: Sequence[str], rows: Iterable[dict]) -> Path:
    """Write a CSV with a header row atomically (results tables, listening-study keys)."""

    def _w(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(columns))
            writer.writeheader()
            writer.writerows(rows)

    _atomic_write(Path(path), _w)
    return Path(path)


def card_path(weights_path: str | Path) -> Path:
    return Path(weights_path).with_suffix(".json")


def save_weights(path: str | Path, state_dict: dict[str, torch.Tensor], card: dict, half: bool = False) -> None:
    """Save ``state_dict`` as safetensors (fp16 for floating tensors if ``half``) and its card."""
    tensors = {}
    for name, t in state_dict.items():
        t = t.detach().cpu().contiguous()
        if half and t.is_floating_point():
            t = t.half()
        tensors[name] = t
    _atomic_write(Path(path), lambda tmp: save_file(tensors, tmp))
    card = dict(card)
    card.setdefault("weights_dtype", "float16" if half else "float32")
    card["weights_sha256"] = file_sha256(path)
    write_json(card_path(path), card)


def load_card(path: str | Path) -> dict:
    """Read the JSON card beside a weights file."""
    cp = card_path(path)
    if not cp.exists():
        raise CheckpointError(f"no card {cp} beside {path}")
    try:
        return json.loads(cp.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"card {cp} is not valid JSON: {e}") from e


def load_weights(path: str | Path, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Load safetensors weights, cast floating tensors to ``dtype``."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        tensors = load_file(str(path))
    except Exception as e:  # safetensors raises several types for corrupt files
        raise CheckpointError(f"checkpoint {path} is unreadable or corrupt: {e}") from e
    return {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in tensors.items()}


def load_into(module: torch.nn.Module, state: dict[str, torch.Tensor], what: str = "checkpoint") -> None:
    """``load_state_dict`` with an error that lists missing, unexpected and mis-shaped tensors."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in sorted(set(own) & set(state)) if own[k].shape != state[k].shape]
    if missing or unexpected or shapes:
        lines = [f"{what} does not match this model's configuration:"]
        if missing:
            lines.append(f"  missing: {missing[:8]}{' ...' if len(missing) > 8 else ''}")
        if unexpected:
            lines.append(f"  unexpected: {unexpected[:8]}{' ...' if len(unexpected) > 8 else ''}")
        if shapes:
            lines.append(f"  shape mismatch: {shapes[:8]}")
        raise CheckpointError("\n".join(lines))
    module.load_state_dict(state)


def save_training_state(path: str | Path, state: dict[str, Any]) -> None:
    """Atomically save a resumable training state (tensors, numbers, strings, nested dicts/lists)."""
    _atomic_write(Path(path), lambda tmp: torch.save(state, tmp))


def load_training_state(path: str | Path) -> dict[str, Any]:
    """Load a training state safely (``weights_only=True``)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"training state {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"training state {path} is unreadable or corrupt: {e}") from e


def rng_state() -> dict[str, Any]:
    """Torch RNG states (CPU, and CUDA when present) for exact resume."""
    out: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def file_sha256(path: str | Path, length: int = 16) -> str:
    """Short content hash of a file (recorded in cards, e.g. the codec a model was trained on)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:length]


def hardware() -> dict[str, Any]:
    """What the machine was, for cards and benchmark records."""
    info: dict[str, Any] = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch": str(torch.__version__),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info
