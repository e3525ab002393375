"""``python -m streamlib --help`` answers and lists subcommands."""

import subprocess
import sys


def test_help_answers():
    result = subprocess.run(
        [sys.executable, "-m", "streamlib", "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout.lower()
    assert "bench" in result.stdout
