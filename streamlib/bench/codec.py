"""Codec speed in x real time: encode/decode, batch vs streaming (1- and 5-frame chunks), per preset.

x real time = audio seconds / compute seconds (above 1 is faster than real time; the usual real-time
factor, compute / audio, is its inverse). Every row
is measured in the same run on the same random clip, after one warm-up pass; weights are random
for presets without a shipped checkpoint (speed does not depend on the values). Chapter 3 quotes
the result; ``benchmarks/RESULTS.md`` keeps a copy with the machine.
"""

from __future__ import annotations

import argparse
import time

import torch

from streamlib.cli import number


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--presets", nargs="+", default=["book", "paper"], help="codec presets to compare")
    p.add_argument("--seconds", type=number(float, above=0), default=4.0,
                   help="audio length per measurement (paper: a quarter)")
    p.add_argument("--chunks", type=number(int, minimum=1), nargs="+", default=[1, 5],
                   help="streaming chunk sizes in frames")
    p.add_argument("--threads", type=number(int, minimum=1), default=1)
    p.add_argument("--repeats", type=number(int, minimum=1), default=3, help="median of this many timings")


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up (allocations, oneDNN primitive caches)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def measure(codec, seconds: float, chunks: list[int], repeats: int) -> dict[str, float]:
    """Speeds in x real time of one codec: batch encode/decode, streaming encode+decode per chunk size and the
    engine's compiled 1-frame steps (``streamlib.fastcodec``; chapter 8, "The fast path")."""
    torch.manual_seed(0)
    n = int(seconds * codec.sample_rate) // codec.hop * codec.hop
    audio = 0.1 * torch.randn(1, 1, n)
    codes = codec.encode(audio)
    out = {
        "encode batch": seconds / _median_time(lambda: codec.encode(audio), repeats),
        "decode batch": seconds / _median_time(lambda: codec.decode(codes), repeats),
    }
    for k in chunks:
        step = k * codec.hop

        def stream_encode() -> None:
            enc = codec.stream_encoder()
            for i in range(0, n, step):
                enc.push(audio[..., i : i + step])

        def stream_decode() -> None:
            dec = codec.stream_decoder()
            for i in range(0, codes.shape[-1], k):
                dec.push(codes[..., i : i + k])

        te, td = _median_time(stream_encode, repeats), _median_time(stream_decode, repeats)
        out[f"encode stream {k}f"] = seconds / te
        out[f"decode stream {k}f"] = seconds / td
        out[f"enc+dec stream {k}f"] = seconds / (te + td)
    out.update(_measure_fast(codec, audio, codes, seconds, repeats))
    return out


def _measure_fast(codec, audio: torch.Tensor, codes: torch.Tensor, seconds: float, repeats: int) -> dict[str, float]:
    """The compiled frame steps the streaming engine runs (one call per 20 ms frame; the warm-up of
    ``_median_time`` compiles them, or they fall back to the eager steps with a printed note)."""
    from streamlib.fastcodec import FrameDecoder, FrameEncoder

    def encode() -> None:
        enc = FrameEncoder(codec, codec.n_codebooks, notify=print)
        for i in range(0, audio.shape[-1], codec.hop):
            enc.push(audio[..., i : i + codec.hop])

    def decode() -> None:
        dec = FrameDecoder(codec, notify=print)
        for i in range(codes.shape[-1]):
            dec.push(codes[..., i : i + 1])

    te, td = _median_time(encode, repeats), _median_time(decode, repeats)
    return {"encode fast 1f": seconds / te, "decode fast 1f": seconds / td, "enc+dec fast 1f": seconds / (te + td)}


def _codec_for(preset: str):
    from streamlib.codec import CausalCodec, default_checkpoint, load_codec
    from streamlib.codec.model import build_codec_model
    from streamlib.codec.codec import _strip_weight_norm
    from streamlib.config import get_preset

    if preset == "book" and default_checkpoint().exists():
        return load_codec(), "shipped checkpoint"
    cfg = get_preset(preset).codec
    torch.manual_seed(0)
    model = build_codec_model(cfg)
    _strip_weight_norm(model)
    return CausalCodec(cfg, model), "random weights"


def run(args: argparse.Namespace) -> int:
    from streamlib.checkpoint import hardware

    torch.set_num_threads(args.threads)
    print(f"hardware: {hardware()}")
    results = {}
    for preset in args.presets:
        codec, source = _codec_for(preset)
        seconds = args.seconds if codec.sample_rate <= 16_000 else args.seconds / 4
        params = sum(p.numel() for p in codec.parameters()) / 1e6
        print(f"\n[{preset}] {codec.sample_rate} Hz, {codec.n_codebooks} levels, {params:.2f} M parameters "
              f"({source}), {seconds:g} s of audio, {args.threads} thread(s)")
        results[preset] = measure(codec, seconds, args.chunks, args.repeats)
        for name, speed in results[preset].items():
            print(f"  {name:22s} {speed:8.2f}x real time")
    if len(results) > 1:
        names = list(results)
        a, b = names[0], names[1]
        print(f"\nratio {a} / {b} (how many times faster):")
        for row in results[a]:
            print(f"  {row:22s} {results[a][row] / results[b][row]:8.1f}x")
    return 0
