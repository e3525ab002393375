"""``python -m streamlib stream``: accompany an audio file as a simulated live stream (chapter 8).

Example::

    python -m streamlib stream --input song.wav --checkpoint checkpoints/models/book_tf-10_k5.safetensors \\
        --tf -0.2 --k 0.1 --category Bass --out runs/stream
"""

from __future__ import annotations

import argparse

from streamlib.cli import number


def add_stream_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by ``stream`` and ``demo``."""
    p.add_argument("--category", default=None, help="instrument to generate: a name (Bass, Piano, ...) or id")
    p.add_argument("--prompt-seconds", type=number(minimum=0), default=0.0,
                   help="warm start with this much ground truth (needs --prompt-audio for stream)")
    p.add_argument("--tau-sys", type=number(minimum=0), default=0.02,
                   help="non-compute system latency, seconds (default 0.02)")
    p.add_argument("--tau-jitter", type=number(minimum=0), default=0.02, help="safety margin, seconds (default 0.02)")
    p.add_argument("--jitter-ms", type=number(minimum=0), default=0.0,
                   help="inject Exp(mean) extra compute per chunk, ms")
    p.add_argument("--temperature", type=number(above=0), default=1.0, help="sampling temperature (default 1)")
    p.add_argument("--top-k", type=number(int, minimum=1), default=200, help="sample from the k likeliest codes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--codec", default=None, help="codec checkpoint (default: the shipped one)")
    p.add_argument("--threads", type=number(int, minimum=1), default=1, help="torch threads (default 1)")


def stream_kwargs(args: argparse.Namespace) -> dict:
    from streamlib.stream import ExponentialJitter, Timing

    return {
        "timing": Timing(args.tau_sys, args.tau_jitter),
        "jitter": ExponentialJitter(args.jitter_ms / 1e3, seed=args.seed) if args.jitter_ms else None,
        "temperature": args.temperature,
        "top_k": args.top_k,
        "seed": args.seed,
        "prompt_seconds": args.prompt_seconds,
    }


def _run(args: argparse.Namespace) -> int:
    import torch

    from streamlib.audio import load_audio
    from streamlib.paths import check_output_dir
    from streamlib.stream import StreamError, stream_file, summary

    check_output_dir(args.out)
    if args.prompt_seconds and not args.prompt_audio:
        raise StreamError("--prompt-seconds needs --prompt-audio (the ground-truth accompaniment)")
    torch.set_num_threads(args.threads)
    kwargs = stream_kwargs(args)
    if args.prompt_seconds:
        from streamlib.codec import load_codec

        kwargs["prompt_audio"] = load_audio(args.prompt_audio, load_codec(args.codec).sample_rate)[0]
    result, paths = stream_file(args.input, args.checkpoint, tf=args.tf, k=args.k,
                                category=args.category or "Piano", out=args.out, codec_path=args.codec, **kwargs)
    print(summary(result))
    for name, path in paths.items():
        print(f"  {name}: {path}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("stream", help="accompany an audio file as a simulated live stream (timing report + mix)")
    p.add_argument("--input", required=True, help="any audio file soundfile reads (resampled, downmixed)")
    p.add_argument("--checkpoint", required=True, help="an accompanist checkpoint (.safetensors with its card)")
    p.add_argument("--tf", default=None, help="future visibility in seconds; must match the checkpoint")
    p.add_argument("--k", default=None, help="chunk duration in seconds; must match the checkpoint")
    p.add_argument("--out", default="runs/stream", help="output folder (default runs/stream)")
    p.add_argument("--prompt-audio", default=None, help="ground-truth accompaniment for --prompt-seconds")
    add_stream_arguments(p)
    p.set_defaults(func=_run)
