"""End-to-end streaming: codec encode + model + codec decode, KV cache vs no cache (chapter 8).

Streams the bundled example clip through the book-preset accompanist (the shipped checkpoint when
it exists, else random weights: speed does not depend on the values) and the book codec, on the
simulated clock of ``streamlib.stream``, twice in one run: with the generator's KV cache and with
a no-cache baseline that recomputes the whole history for every frame (a fresh generator fed all
input and output so far, ``NoCacheGenerator``). Prints the speed of each in x real time (audio
seconds / compute seconds, above 1 keeps pace) and its p50 / p99 chunk latency, and their ratios.
"""

from __future__ import annotations

import argparse

from streamlib.cli import number


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=float, default=10.0, help="streamed seconds with the KV cache (default 10)")
    p.add_argument("--baseline-seconds", type=float, default=4.0,
                   help="streamed seconds without the cache (default 4; it is much slower)")
    p.add_argument("--tf", type=int, default=-10, help="t_f in frames (default -10 = -0.2 s)")
    p.add_argument("--k", type=int, default=10, help="k in frames (default 10 = 0.2 s, a shipped model)")
    p.add_argument("--threads", type=number(int, minimum=1), default=2, help="torch threads (default 2)")
    p.add_argument("--checkpoint", default=None, help="accompanist checkpoint (default: shipped book_tf<tf>_k<k>)")


def _models(args):
    from streamlib.checkpoint import card_path
    from streamlib.codec import CausalCodec, load_codec
    from streamlib.codec.codec import default_checkpoint
    from streamlib.config import StreamSpec, get_preset, seed_everything
    from streamlib.model import Accompanist, load_accompanist
    from streamlib.paths import checkpoint_dir

    seed_everything(0)
    preset = get_preset("book")
    codec = load_codec() if default_checkpoint().exists() else CausalCodec(preset.codec)
    spec = StreamSpec(tf=args.tf, k=args.k)
    path = args.checkpoint or checkpoint_dir() / "models" / f"book_{spec.tag}.safetensors"
    if card_path(path).exists():
        return codec, load_accompanist(path), f"shipped {path}"
    acc = Accompanist(preset.model, codec.codebook_tables(preset.model.n_q), spec).eval()
    return codec, acc, "random book-preset weights"


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


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from streamlib.checkpoint import hardware
    from streamlib.data.examples import load_example
    from streamlib.stream import stream

    torch.set_num_threads(args.threads)
    codec, acc, source = _models(args)
    clip = load_example("test_clip")
    names = list(clip.stems)
    audio = np.sum([clip.stems[s] for s in names[1:]], axis=0)
    cat = clip.categories[names[0]]
    rows = []
    for label, seconds, model in (("KV cache", args.seconds, acc), ("no cache", args.baseline_seconds, _NoCache(acc))):
        n = int(seconds * codec.sample_rate)
        stream(model, codec, audio[: codec.sample_rate // 2], cat)  # warm-up
        res = stream(model, codec, audio[:n], cat, seed=0)
        lat = res.latency_percentiles()
        parts = {p: sum(getattr(r, f"{p}_s") for r in res.records) for p in ("encode", "generate", "decode")}
        rows.append((label, seconds, res.x_real_time, lat["p50"], lat["p99"], parts, res.compute_s))
    print(f"machine: {hardware()}")
    print(f"model: {source}; t_f = {args.tf} frames, k = {args.k} frames; {args.threads} threads")
    print("| mode | streamed s | x real time | chunk p50 ms | chunk p99 ms | encode / generate / decode share |")
    print("|---|---|---|---|---|---|")
    for label, seconds, speed, p50, p99, parts, total in rows:
        share = " / ".join(f"{100 * parts[p] / total:.0f} %" for p in ("encode", "generate", "decode"))
        print(f"| {label} | {seconds:g} | {speed:.2f} | {p50 * 1e3:.1f} | {p99 * 1e3:.1f} | {share} |")
    print(f"KV cache / no cache: {rows[0][2] / rows[1][2]:.1f}x the speed, "
          f"p50 latency {rows[1][3] / rows[0][3]:.1f}x lower")
    return 0
