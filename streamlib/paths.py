"""Where the repository keeps data, tokens and checkpoints (overridable by environment variables).

``STREAMLIB_DATA`` moves the data folder (e.g. to a disk with room for real Slakh2100);
``STREAMLIB_CHECKPOINTS`` moves the checkpoint folder. Everything else derives from these.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """Root of generated data (synthesised sets, token caches); ``data/`` in the repository by default."""
    return Path(os.environ.get("STREAMLIB_DATA", REPO_ROOT / "data"))


def checkpoint_dir() -> Path:
    """Root of shipped checkpoints; ``checkpoints/`` in the repository by default."""
    return Path(os.environ.get("STREAMLIB_CHECKPOINTS", REPO_ROOT / "checkpoints"))


def check_output_dir(path: str | Path, name: str = "--out") -> Path:
    """``path`` if it can become a folder we write into; raises ``ConfigError`` naming ``name`` when a file
    is in the way or the nearest existing folder is read-only. Creates nothing: call it before long work."""
    path = Path(path)
    _check_writable(path, path, name)
    return path


def check_output_file(path: str | Path, name: str) -> Path:
    """``path`` if a file can be written there (see ``check_output_dir``); raises ``ConfigError`` otherwise."""
    from streamlib.config import ConfigError

    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{name} {path}: it is a folder, not a file")
    _check_writable(path.parent, path, name)
    return path


def _check_writable(folder: Path, path: Path, name: str) -> None:
    """Raise ``ConfigError`` about option ``name`` = ``path`` unless ``folder`` exists or can be made, writable."""
    from streamlib.config import ConfigError

    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError(f"{name} {path}: {'it' if existing == path else existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{name} {path}: cannot write into {existing}")
