"""``python -m streamlib jam``: live accompaniment through the sound card (chapter 8, "Jam live").

Examples::

    python -m streamlib jam --input song.wav --category Bass   # the file played in real time; the mix out
    python -m streamlib jam --category Bass                    # the default input device (use headphones)
    python -m streamlib jam --measure-latency                  # output routed to input: round-trip latency
    python -m streamlib jam --no-device --input song.wav       # no sound card: the wall clock paces it

The session (input, accompaniment, mix, what was played, timing.json) is written to ``--out``.
"""

from __future__ import annotations

import argparse
import sys

from streamlib.cli import number


def _device(text: str) -> int | str:
    """A device index (a whole number) or a name fragment, as ``sounddevice`` takes them."""
    return int(text) if text.isdigit() else text


def _run(args: argparse.Namespace) -> int:
    """Ctrl-C before the session runs (while loading or compiling) stops without a traceback."""
    try:
        return _jam(args)
    except KeyboardInterrupt:
        print("stopped by Ctrl-C before the session started", file=sys.stderr)
        return 130


def _jam(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm.auto import tqdm

    from streamlib.audio import input_notes, load_audio
    from streamlib.config import FRAME_RATE
    from streamlib.codec import codec_for, load_codec
    from streamlib.commands.stream import generator_kwargs, note, print_report
    from streamlib.live import (ClockPort, LiveError, SoundDevicePort, list_devices, measure_latency, run_session,
                                save_session)
    from streamlib.model import load_accompanist
    from streamlib.paths import check_output_dir
    from streamlib.stream import (default_category, guidance_note, parse_category, set_threads, shipped_models,
                                  smallest_lead, thread_probe)

    if args.list_devices:
        print(list_devices())
        return 0
    check_output_dir(args.out)
    if args.no_device and not args.input and not args.measure_latency:
        raise LiveError("--no-device needs --input FILE: the software clock has no microphone")
    port = ClockPort() if args.no_device else SoundDevicePort(args.input_device, args.output_device)
    if args.measure_latency:
        m = measure_latency(port, load_codec(args.codec).sample_rate)
        print(f"round-trip latency (output -> input, {port.name}): {m['latency_s'] * 1e3:.1f} ms, median of "
              f"{m['clicks']} clicks (spread {m['spread_s'] * 1e3:.1f} ms)")
        return 0
    checkpoint = args.checkpoint
    if checkpoint is None:
        ready = [e for e in shipped_models() if e.kind == "streaming"]
        if not ready:
            raise LiveError("no shipped checkpoints: pass --checkpoint")
        checkpoint = smallest_lead([e for e in ready if e.tf < 0] or ready).path
    acc = load_accompanist(checkpoint)
    category = default_category(acc) if args.category is None else parse_category(args.category)
    codec = codec_for(acc, args.codec)  # the codec the model was trained with (checked against its codebooks)
    audio = None
    if args.input:
        audio, _ = load_audio(args.input, codec.sample_rate)
        for text in input_notes(args.input, audio, codec.sample_rate):
            note(text)
    kwargs, compile_codec = generator_kwargs(args), not (args.plain or args.no_compile)
    if said := guidance_note(acc, kwargs):
        note(said)
    probe_audio = audio if audio is not None else np.zeros(2 * codec.sample_rate, dtype=np.float32)
    choice = set_threads(args.threads, thread_probe(acc, codec, probe_audio, category, generator_kwargs=kwargs,
                                                    compile_codec=compile_codec))
    source = args.input or f"input device {args.input_device or '(default)'}"

    def started() -> None:  # printed once the port runs (after the warm-up), so Ctrl-C from here on is clean
        print(f"jamming: {source} -> {port.name}; {acc.spec.tf_seconds:g} s t_f, k = {acc.spec.k_seconds:g} s "
              f"({checkpoint}); Ctrl-C stops", flush=True)

    with tqdm(desc="jamming", unit="s", disable=args.quiet, bar_format="{desc}: {n:.1f} s [{elapsed}]") as bar:
        def progress(seconds: float) -> None:
            bar.update(seconds - bar.n)

        result = run_session(acc, codec, category, port, input_audio=audio, seconds=args.seconds,
                             play_mix={"mix": True, "accompaniment": False}.get(args.play),
                             block_frames=args.block_frames, temperature=args.temperature, top_k=args.top_k,
                             seed=args.seed, generator_kwargs=kwargs, compile_codec=compile_codec, progress=progress,
                             on_start=started)
    result.info.update(checkpoint=str(checkpoint), input=source, threads=choice.reason)
    paths = save_session(result, args.out)
    info = result.info
    print_report(result, paths, headline=(
        f"stopped by {info['stopped_by']} after {info['session_s']:.2f} s: {len(result.records)} chunks"
        + (f" ({info['unmade_frames'] / FRAME_RATE:.2f} s not made: the clock ran out first)"
           if info["unmade_frames"] else "") + ", "
        f"{result.x_real_time:.2f}x real time; underruns {info['underrun_blocks']} blocks "
        f"({info['underrun_samples'] / result.sample_rate * 1e3:.0f} ms of silence played); device xruns "
        f"{info['device_xruns']}; late chunks {result.n_late} measured, {info['simulated_late']} on the simulated "
        f"clock"))
    return 0


def register(sub) -> None:
    from streamlib.commands.stream import add_generation_arguments

    p = sub.add_parser("jam", help="live accompaniment through the sound card (or a file played in real time)")
    p.add_argument("--checkpoint", default=None,
                   help="accompanist checkpoint (default: the shipped streaming model with the smallest lead)")
    p.add_argument("--input", default=None, help="an audio file played as the input in real time (default: a device)")
    p.add_argument("--input-device", type=_device, default=None, help="input device, index or name (--list-devices)")
    p.add_argument("--output-device", type=_device, default=None, help="output device, index or name")
    p.add_argument("--no-device", action="store_true",
                   help="no sound card: a software clock paces the session (needs --input)")
    p.add_argument("--list-devices", action="store_true", help="list the sound devices and exit")
    p.add_argument("--measure-latency", action="store_true",
                   help="route the output to the input (cable or loopback) and measure the round trip, then exit")
    p.add_argument("--seconds", type=number(above=0), default=None,
                   help="stop after this long (default: the end of --input, or Ctrl-C)")
    p.add_argument("--play", choices=["accompaniment", "mix"], default=None,
                   help="what goes out: the accompaniment, or the mix with the input (default: mix for a file)")
    p.add_argument("--block-frames", type=number(int, minimum=1), default=1,
                   help="audio callback block in 20 ms frames (default 1)")
    p.add_argument("--out", default="runs/jam", help="session folder (default runs/jam)")
    add_generation_arguments(p)
    p.set_defaults(func=_run)
