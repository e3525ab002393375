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
