"""Data speed: synthesis (x real time, 16 kHz vs 44.1 kHz) and example sampling (examples/s), one run.

x real time = seconds of mix written / wall seconds on one thread (each song also writes its
stems, ~5.7 per song). Chapter 2 quotes the result; ``benchmarks/RESULTS.md`` keeps a copy.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from streamlib.cli import number


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tracks", type=number(int, minimum=1), default=12, help="songs per measurement")
    p.add_argument("--rates", type=int, nargs="+", default=[16_000, 44_100])
    p.add_argument("--examples", type=number(int, minimum=1), default=64,
                   help="10 s examples drawn for the sampler timing")


def run(args) -> int:
    import torch

    from streamlib.checkpoint import hardware
    from streamlib.data.sampling import ExampleDataset
    from streamlib.data.slakh import SlakhDataset
    from streamlib.data.synth import Recipe, synthesize

    torch.set_num_threads(1)
    print(hardware())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        synthesize(Path(tmp) / "warmup", Recipe(tracks=1, min_seconds=9, max_seconds=10), progress=False)
        for sr in args.rates:
            out = Path(tmp) / f"sr{sr}"
            r = synthesize(out, Recipe(tracks=args.tracks, seed=0, sample_rate=sr), progress=False)
            rows.append((f"synth {sr} Hz", f"{r['x_real_time']:.0f}x real time",
                         f"{r['hours'] * 3600:.0f} s of audio in {r['wall_seconds']:.1f} s"))
        ds = SlakhDataset(Path(tmp) / f"sr{args.rates[0]}", sample_rate=16_000)
        examples = ExampleDataset(ds, 10.0, length=args.examples, seed=0)
        t = time.perf_counter()
        for i in range(len(ds)):
            for s in ds[i].stems:
                ds[i].active(s.name)
        masks = time.perf_counter() - t
        t = time.perf_counter()
        for i in range(len(examples)):
            examples[i]
        sampling = time.perf_counter() - t
        rows.append(("activity masks", f"{ds.hours * 3600 / masks:.0f}x real time", f"{len(ds)} songs in {masks:.1f} s"))
        rows.append(("10 s examples", f"{len(examples) / sampling:.0f} examples/s", f"{len(examples)} in {sampling:.1f} s"))
    width = max(len(r[0]) for r in rows)
    for name, value, detail in rows:
        print(f"{name:<{width}}  {value:>22}  ({detail})")
    return 0
