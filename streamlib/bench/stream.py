"""End-to-end streaming: codec encode + model + codec decode, fast path vs plain vs no cache (chapter 8).

Streams the bundled example clip (tiled to length) through the book-preset accompanist (the shipped
checkpoint when it exists, else random weights: speed does not depend on the values) at the guidance scale
it plays with by default (``default_guidance``: 4 for the shipped models, two passes a step) and each codec
given (``--codec``, repeatable; default the shipped one), on the simulated clock of
``streamlib.stream`` with the command line's default timing (tau_sys = tau_jitter = 20 ms), in one run:

* ``fast``: the fast decode path (``streamlib.model.fast``) and the codec's compiled steps
  (``streamlib.fastcodec``), compiled in the warm-up before the clock;
* ``fast model, eager codec``: the fast decode path with the codec's own stream encoder and decoder;
* ``plain``: the plain ``Generator`` with its KV cache and the codec's own streams;
* ``no cache``: a baseline that recomputes the whole history for every frame (a fresh generator fed all
  input and output so far, ``NoCacheGenerator``), over a shorter stretch;
* ``fast, second core busy``: the fast path again for ``--busy-seconds`` (60 s) while a CPU-bound
  process that this benchmark starts (and stops) keeps another core busy; this process and the
  burner are pinned to different cores where the OS allows it.

Prints the speed of each in x real time (audio seconds / compute seconds, above 1 keeps pace), its
p50 / p99 chunk latency, its late chunks and the encode / generate / decode shares, with the load
average before and after, and the ratios fast / plain / no cache.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from streamlib.cli import number

BURNER = "while True: pass"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=number(above=0), default=10.0,
                   help="streamed seconds, fast and plain (default 10)")
    p.add_argument("--baseline-seconds", type=number(minimum=0), default=1.0,
                   help="streamed seconds without the cache (default 1; it is much slower; 0 skips it)")
    p.add_argument("--busy-seconds", type=number(minimum=0), default=60.0,
                   help="streamed seconds on the fast path with a second core kept busy (default 60; 0 skips)")
    p.add_argument("--tf", type=int, default=-50, help="t_f in frames (default -50 = -1 s, a shipped model)")
    p.add_argument("--k", type=int, default=1, help="k in frames (default 1 = 0.02 s, a shipped model)")
    p.add_argument("--threads", type=number(int, minimum=1), default=1, help="torch threads (default 1)")
    p.add_argument("--checkpoint", default=None, help="accompanist checkpoint (default: shipped book_tf<tf>_k<k>)")
    p.add_argument("--codec", action="append", default=None,
                   help="codec checkpoint; repeat to measure several side by side (default: the shipped one)")


def _models(args):
    """(label, codec) pairs, the accompanist and where it came from: the shipped checkpoint with the codec
    its card names (``codec_for``), else random weights (speed does not depend on them)."""
    from streamlib.checkpoint import card_path
    from streamlib.codec import CausalCodec, codec_for, load_codec
    from streamlib.codec.codec import default_checkpoint
    from streamlib.config import StreamSpec, get_preset, seed_everything
    from streamlib.model import Accompanist, load_accompanist
    from streamlib.paths import checkpoint_dir

    seed_everything(0)
    preset = get_preset("book")
    spec = StreamSpec(tf=args.tf, k=args.k)
    path = args.checkpoint or checkpoint_dir() / "models" / f"book_{spec.tag}.safetensors"
    acc = load_accompanist(path) if card_path(path).exists() else None
    if args.codec:
        codecs = [(p, load_codec(p)) for p in args.codec]
    elif acc is not None:
        codec = codec_for(acc)
        codecs = [(f"the model's own ({codec.cfg.arch}, {codec.card.get('preset', '?')} preset)", codec)]
    elif default_checkpoint().exists():
        codecs = [(str(default_checkpoint()), load_codec())]
    else:
        codecs = [("random book-preset codec", CausalCodec(preset.codec))]
    if acc is not None:
        return codecs, acc, f"shipped {path}"
    acc = Accompanist(preset.model, codecs[0][1].codebook_tables(preset.model.n_q), spec).eval()
    return codecs, acc, "random book-preset weights"


class NoCacheGenerator:
    """The baseline: every frame recomputes the whole history -- a fresh generator is fed all input
    and all previous output (``feed_output``) and generates one frame; same API as the real one."""

    def __init__(self, acc, category: int, **kwargs):
        self.acc, self.category, self.kwargs = acc, category, kwargs
        self.inputs: list = []
        self.outputs: list = []

    @property
    def n_input(self) -> int:
        return sum(x.shape[-1] for x in self.inputs)

    def feed_input(self, codes) -> None:
        self.inputs.append(codes)

    def feed_output(self, codes) -> None:
        self.outputs.append(codes)

    def generate(self, k: int):
        import torch

        frames = []
        for _ in range(k):
            gen = self.acc.generator(self.category, **self.kwargs)
            if self.inputs:
                gen.feed_input(torch.cat(self.inputs, dim=-1))
            if self.outputs:
                gen.feed_output(torch.cat(self.outputs, dim=-1))
            frame = gen.generate(1)
            self.outputs.append(frame)
            frames.append(frame)
        return torch.cat(frames, dim=-1)


class _NoCache:
    """Wraps an accompanist so that ``stream`` gets ``NoCacheGenerator``s."""

    def __init__(self, acc):
        self.acc, self.spec, self.cfg = acc, acc.spec, acc.cfg

    def generator(self, category, **kwargs):
        return NoCacheGenerator(self.acc, category, **kwargs)


class BusyCore:
    """A CPU-bound child process on another core, for the life of a ``with`` block (started and
    stopped here); this process is pinned to one core and the child to another where possible."""

    def __init__(self):
        self.proc: subprocess.Popen | None = None
        self.saved: set[int] | None = None

    def __enter__(self) -> "BusyCore":
        cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        self.proc = subprocess.Popen([sys.executable, "-c", BURNER])
        if len(cores) >= 2:
            self.saved = set(cores)
            os.sched_setaffinity(0, {cores[0]})
            os.sched_setaffinity(self.proc.pid, {cores[1]})
        time.sleep(0.5)  # let it take its core
        return self

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        if self.saved is not None:
            os.sched_setaffinity(0, self.saved)


def _tiled(audio, seconds: float, sample_rate: int):
    """``audio`` repeated to at least ``seconds`` plus a little lead-in for t_f and the delay pattern."""
    import numpy as np

    n = int((seconds + 0.5) * sample_rate)
    return np.tile(audio, -(-n // len(audio)))[:n]


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from streamlib.checkpoint import hardware
    from streamlib.config import to_frames
    from streamlib.data.examples import load_example
    from streamlib.model.accompanist import default_guidance
    from streamlib.stream import Timing, stream

    torch.set_num_threads(args.threads)
    codecs, acc, source = _models(args)
    clip = load_example("test_clip")
    names = list(clip.stems)
    audio = np.sum([clip.stems[s] for s in names[1:]], axis=0)
    cat = clip.categories[names[0]]
    timing = Timing(tau_sys=0.02, tau_jitter=0.02)
    guided = {"guidance": default_guidance(acc)}  # as ``stream`` and ``demo`` play this model
    fast = {"fast": True, "compile": True, "notify": lambda text: print(f"note: {text}", file=sys.stderr), **guided}
    load_before = os.getloadavg()
    rows, ratios = [], []
    for codec_name, codec in codecs:
        x = _tiled(audio, max(args.seconds, args.busy_seconds), codec.sample_rate)
        results = {}
        for label, seconds, model, kwargs, compiled in (
                ("fast", args.seconds, acc, fast, True), ("fast model, eager codec", args.seconds, acc, fast, False),
                ("plain", args.seconds, acc, guided, False),
                ("no cache", args.baseline_seconds, _NoCache(acc), guided, False)):
            if seconds <= 0:
                continue
            stream(model, codec, x[: codec.sample_rate // 2], cat, generator_kwargs=kwargs,
                   compile_codec=compiled)  # warm-up run
            results[label] = stream(model, codec, x, cat, seed=0, timing=timing, generator_kwargs=kwargs,
                                    compile_codec=compiled, output_frames=to_frames(seconds))
        if args.busy_seconds > 0 and (os.cpu_count() or 1) >= 2:
            with BusyCore():
                results["fast, second core busy"] = stream(acc, codec, x, cat, seed=0, timing=timing,
                                                           generator_kwargs=fast, compile_codec=True,
                                                           output_frames=to_frames(args.busy_seconds))
        for label, res in results.items():
            lat = res.latency_percentiles()
            parts = {p: sum(getattr(r, f"{p}_s") for r in res.records) for p in ("encode", "generate", "decode")}
            share = " / ".join(f"{100 * parts[p] / res.compute_s:.0f} %" for p in ("encode", "generate", "decode"))
            path = f"{res.info['decode_path']}; codec {res.info['codec_steps']}"
            rows.append(f"| {codec_name} | {label} ({path}) | {res.streamed_frames / 50:g} | {res.x_real_time:.2f} "
                        f"| {lat['p50'] * 1e3:.1f} | {lat['p99'] * 1e3:.1f} | {res.n_late} of {len(res.records)} "
                        f"| {share} |")
        speed = {label: res.x_real_time for label, res in results.items()}
        if "fast" in speed and "plain" in speed:
            ratios.append(f"{codec_name}: fast / plain {speed['fast'] / speed['plain']:.2f}x the speed"
                          + (f", plain / no cache {speed['plain'] / speed['no cache']:.1f}x" if "no cache" in speed
                             else ""))
    print(f"machine: {hardware()}; load average before {load_before[0]:.2f} / {load_before[1]:.2f} (1 / 5 min), "
          f"after {os.getloadavg()[0]:.2f} / {os.getloadavg()[1]:.2f}")
    print(f"model: {source}; t_f = {args.tf} frames, k = {args.k} frames; guidance {guided['guidance']:g} (the "
          f"model's default); {args.threads} torch thread(s); tau_sys = tau_jitter = 20 ms; "
          f"the busy core: a child process running `{BURNER}`")
    print("| codec | mode | streamed s | x real time | chunk p50 ms | chunk p99 ms | late chunks "
          "| encode / generate / decode share |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(row)
    for line in ratios:
        print(line)
    return 0
