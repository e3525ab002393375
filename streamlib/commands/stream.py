"""``python -m streamlib stream``: accompany an audio file as a simulated live stream (chapter 8).

Example::

    python -m streamlib stream --input song.wav --checkpoint checkpoints/models/book_tf-50_k10.safetensors \\
        --tf -0.2 --k 0.2 --category Bass --out runs/stream
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from streamlib.cli import number

if TYPE_CHECKING:
    from streamlib.stream import StreamResult


def add_stream_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by ``stream`` and ``demo``."""
    p.add_argument("--prompt-seconds", type=number(minimum=0), default=0.0,
                   help="warm start with this much ground truth (needs --prompt-audio for stream)")
    p.add_argument("--tau-sys", type=number(minimum=0), default=0.02,
                   help="non-compute system latency, seconds (default 0.02)")
    p.add_argument("--tau-jitter", type=number(minimum=0), default=0.02, help="safety margin, seconds (default 0.02)")
    p.add_argument("--jitter-ms", type=number(minimum=0), default=0.0,
                   help="inject Exp(mean) extra compute per chunk, ms")
    add_generation_arguments(p)


def add_generation_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by ``stream``, ``demo`` and ``jam``: what to play, how to sample, the decode path."""
    p.add_argument("--category", default=None,
                   help="instrument to generate: a name (Bass, Piano, ...) or id (default: the model's own, if it was "
                        "trained on one; else Piano)")
    p.add_argument("--temperature", type=number(above=0), default=1.0, help="sampling temperature (default 1)")
    p.add_argument("--top-k", type=number(int, minimum=1), default=200, help="sample from the k likeliest codes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--codec", default=None, help="codec checkpoint (default: the shipped one)")
    p.add_argument("--threads", type=threads_option, default="auto",
                   help="torch threads, or auto (default): measured on the first second of input, never more "
                        "than the cores the load average leaves free")
    p.add_argument("--guidance", type=number(minimum=0), default=None,
                   help="classifier-free guidance scale (1: none; default: 4 for models trained with input dropout, "
                        "else 1; chapter 7); twice the decoder's work per step")
    p.add_argument("--plain", action="store_true",
                   help="the plain engine (chapter 6's Generator, the codec's eager streams) instead of the fast one")
    p.add_argument("--no-compile", action="store_true",
                   help="the fast path without torch.compile (model and codec): no compile wait, slower steps")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def threads_option(text: str) -> int | str:
    """argparse type of ``--threads``: ``auto`` or a whole number >= 1."""
    return "auto" if text == "auto" else number(int, minimum=1)(text)


def stream_kwargs(args: argparse.Namespace) -> dict:
    from streamlib.stream import ExponentialJitter, Timing

    return {
        "timing": Timing(args.tau_sys, args.tau_jitter),
        "jitter": ExponentialJitter(args.jitter_ms / 1e3, seed=args.seed) if args.jitter_ms else None,
        "temperature": args.temperature,
        "top_k": args.top_k,
        "seed": args.seed,
        "prompt_seconds": args.prompt_seconds,
        "progress": not args.quiet,
        "generator_kwargs": generator_kwargs(args),
        "compile_codec": not (args.plain or args.no_compile),  # --plain: eager codec streams too
    }


def generator_kwargs(args: argparse.Namespace) -> dict | None:
    """``generator_kwargs`` of ``stream`` for ``--plain`` / ``--no-compile`` / ``--guidance``: None is the plain
    path without guidance."""
    guidance = getattr(args, "guidance", None)  # None: the model's default (``default_guidance``)
    guided = {} if guidance == 1.0 else {"guidance": guidance}
    if args.plain:
        return guided or None
    return {"fast": True, "compile": not args.no_compile, "notify": note, **guided}


def note(text: str) -> None:
    """Something the user should know about what ran, on stderr."""
    print(f"note: {text}", file=sys.stderr)


def late_explanation(result: StreamResult, *, threads: int, cores: int, load: float) -> str | None:
    """Why chunks of ``result`` were late and what to try, in one line (None when none was late).
    ``threads``: torch threads used; ``cores``: CPU cores; ``load``: the 1-minute load average."""
    from streamlib.config import to_seconds
    from streamlib.stream import shipped_models, smallest_lead

    if not result.n_late:
        return None
    spec, timing = result.spec, result.timing
    delay_s = to_seconds(result.info["delay_pattern_frames"])
    lead_s = -spec.tf_seconds - delay_s - timing.tau_sys  # from a chunk's last input frame to its play time
    why, tries = [], []
    if lead_s <= 0:
        why.append(f"each chunk must be ready within -t_f - D - tau_sys = {to_seconds(-spec.tf):g} - {delay_s:g} - "
                   f"{timing.tau_sys:g} = {lead_s:.2f} s of its input arriving (D: the delay pattern's latency), "
                   f"which no machine can do")
        ahead = [e for e in shipped_models() if e.kind == "streaming" and to_seconds(e.tf) < -delay_s - timing.tau_sys]
        example = f", e.g. {smallest_lead(ahead).path}" if ahead else ""
        tries.append(f"a checkpoint with t_f below {-delay_s - timing.tau_sys:g} s{example}")
    else:
        if result.x_real_time < 1:
            why.append(f"compute runs at {result.x_real_time:.2f}x real time, slower than the audio it makes, so "
                       f"every chunk starts later than the one before")
            tries.append("a checkpoint with a larger k (fewer, longer chunks)")
        else:
            p99 = result.latency_percentiles()["p99"]
            why.append(f"the slowest chunks' compute (p99 {p99 * 1e3:.0f} ms) exceeds the {lead_s * 1e3:.0f} ms "
                       f"between a chunk's input and its play time")
            tries.append("a checkpoint with more lead (a more negative t_f)")
        if result.info.get("jitter_mean_s"):
            why.append(f"--jitter-ms adds {result.info['jitter_mean_s'] * 1e3:g} ms per chunk on average")
        path, codec = result.info.get("decode_path", "fast, compiled"), result.info.get("codec_steps", "compiled")
        if (path, codec) != ("fast, compiled", "compiled"):
            why.append(f"the {path} decode path with {codec} codec steps")
            tries.append("the compiled fast path (no --plain / --no-compile)")
        if threads < cores:
            why.append(f"{threads} torch thread{'s' if threads > 1 else ''} on {cores} cores")
            if load + threads <= cores - 0.5:  # the other cores are free: more threads may help
                tries.append(f"--threads {cores}")
        if load > cores:
            why.append(f"the machine is busy (load average {load:.1f} on {cores} cores)")
            tries.append("a less busy machine")
    return (f"{result.n_late} of {len(result.records)} chunks late: " + "; ".join(why)
            + ". Try " + "; ".join(tries) + ".")


def print_report(result: StreamResult, paths: dict[str, Path], headline: str | None = None) -> None:
    """The summary (or ``headline``), the decode path and threads, why chunks were late (if any were)
    and the files written."""
    from streamlib.stream import summary

    print(headline or summary(result))
    info = result.info
    threads = info.get("threads") or f"{info['torch_threads']} torch threads"
    guided = f", guidance {info['guidance']:g}" if info.get("guidance", 1.0) != 1.0 else ""
    print(f"decode path: {info['decode_path']}{guided}, codec steps {info['codec_steps']} (warmed up before the "
          f"clock); {threads}")
    explanation = late_explanation(result, threads=info["torch_threads"], cores=os.cpu_count() or 1,
                                   load=os.getloadavg()[0])
    if explanation:
        print(explanation)
    for name, path in paths.items():
        print(f"  {name}: {path}")


def _run(args: argparse.Namespace) -> int:
    from streamlib.audio import load_audio
    from streamlib.paths import check_output_dir
    from streamlib.stream import StreamError, stream_file

    check_output_dir(args.out)
    if args.prompt_seconds and not args.prompt_audio:
        raise StreamError("--prompt-seconds needs --prompt-audio (the ground-truth accompaniment)")
    kwargs = stream_kwargs(args)
    if args.prompt_seconds:
        from streamlib.codec import load_codec

        kwargs["prompt_audio"] = load_audio(args.prompt_audio, load_codec(args.codec).sample_rate)[0]
    result, paths = stream_file(args.input, args.checkpoint, tf=args.tf, k=args.k,
                                category=args.category, out=args.out, codec_path=args.codec,
                                notify=note, threads=args.threads, **kwargs)
    default = " (the default; --category picks another)" if args.category is None else ""
    print(f"{args.input}: generated {result.info['category_name']}{default} with {args.checkpoint}")
    print_report(result, paths)
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
