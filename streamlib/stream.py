"""Streamed generation on a simulated clock (chapter 8, "Streamed generation").

The input arrives as a stream of 50 Hz frames. To produce the chunk ``y(t : t+k)`` the engine
reveals the input ``x(1 : t + t_f + D)`` -- frames ``0 .. t+t_f+D-1``, encoded with the streaming
codec encoder as they arrive -- asks the accompanist's KV-cache generator for the next ``k`` frames
and decodes them with the streaming codec decoder. It never feeds a frame beyond ``t + t_f + D``.

``D = n_q - 1`` is the delay pattern's cost (chapter 4): level q of frame t is generated q steps
after level 0 and sees q more input frames, so a frame's last level needs ``x(1 : t + t_f + D)``
and the frame is playable D frames after its level-0 token (0.06 s for 4 levels at 50 Hz). Level 0
of every frame still sees exactly ``x(1 : t + t_f)``, as Eq. (1) says; the deadlines below count D.

Wall time is simulated, compute time is measured. Input frame ``i`` has arrived at wall time
``(i + 1) / 50`` s, so the chunk starting at ``t`` can start computing at ``(t + t_f + D) / 50`` s
(earlier if it needs no input yet, later if the previous chunk is still computing: one worker,
chunks in order). It is *audible* ``tau_sys`` seconds after its compute finishes (capture,
transport and output buffers; compute is measured, not part of ``tau_sys``) and must be audible
at its play time ``t / 50`` s. So

    slack = t/50 - (start + compute + tau_sys),   late: slack < 0,   unsafe: slack < tau_jitter

which is the latency condition of ``streamlib.feasibility`` with ``gen_in_latency=True`` plus the
queueing of a worker that cannot keep pace. ``jitter`` injects extra compute time per chunk (a
slow core, a network hop) to test what a safety margin ``tau_jitter`` buys.

``stream(...)`` returns a ``StreamResult`` (accompaniment audio, codes, one ``ChunkRecord`` per
chunk) that can ``save`` the accompaniment, the A.9 mix and a JSON timing report.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from streamlib.audio import AudioError, save_audio, validate
from streamlib.config import FRAME_RATE, ConfigError, StreamSpec, to_seconds
from streamlib.paths import REPO_ROOT, checkpoint_dir

_TAG = re.compile(r"^book_tf([+-]\d+)_k(\d+)$")
ARCHIVED_CARDS = REPO_ROOT / "results" / "first_codec_cards"  # cards of replaced models the committed results used

Clock = Callable[[], float]
Jitter = Callable[[int], float]  # chunk index -> extra compute seconds


class StreamError(ValueError):
    """The stream cannot run as asked (mismatched spec, too little input, bad arguments)."""


# ----------------------------------------------------------------------------- timing model


@dataclass(frozen=True)
class Timing:
    """System assumptions in seconds: non-compute latency ``tau_sys`` and safety margin ``tau_jitter``."""

    tau_sys: float = 0.0
    tau_jitter: float = 0.0

    def __post_init__(self) -> None:
        for name in ("tau_sys", "tau_jitter"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"{name} must be a finite number of seconds >= 0, got {value!r}")


class ExponentialJitter:
    """Injected compute jitter: each chunk gets an extra ``Exp(mean_s)`` seconds (seeded)."""

    def __init__(self, mean_s: float, seed: int = 0):
        if not (math.isfinite(mean_s) and mean_s >= 0):
            raise ConfigError(f"jitter mean must be >= 0 seconds, got {mean_s}")
        self.mean_s = float(mean_s)
        self.rng = np.random.default_rng(seed)

    def __call__(self, index: int) -> float:
        return float(self.rng.exponential(self.mean_s)) if self.mean_s > 0 else 0.0


@dataclass
class ChunkRecord:
    """One chunk: which frames, what it saw, what it cost, when it was ready (seconds)."""

    index: int
    start: int  # first output frame t
    frames: int  # chunk length (k, the last one may be shorter)
    input_visible: int  # input frames fed to the model before generating it (<= t + tf)
    encode_s: float  # streaming codec encoder, for the input revealed at this step
    generate_s: float  # the model's generate(k)
    decode_s: float  # streaming codec decoder
    jitter_s: float  # injected extra compute
    compute_start_s: float = 0.0  # simulated wall clock from here on
    ready_s: float = 0.0
    audible_s: float = 0.0
    deadline_s: float = 0.0
    slack_s: float = 0.0
    late: bool = False
    unsafe: bool = False

    @property
    def compute_s(self) -> float:
        return self.encode_s + self.generate_s + self.decode_s + self.jitter_s


def schedule(records: Sequence[ChunkRecord], tf: int, timing: Timing, frame_rate: int = FRAME_RATE,
             delay: int = 0) -> None:
    """Fill the simulated-clock fields of ``records`` (in place) from their measured compute times;
    ``delay`` is the delay pattern's D = n_q - 1 frames."""
    free_at = -math.inf
    for r in records:
        input_ready = (r.start + tf + delay) / frame_rate
        r.compute_start_s = max(input_ready, free_at)
        r.ready_s = r.compute_start_s + r.compute_s
        free_at = r.ready_s
        r.audible_s = r.ready_s + timing.tau_sys
        r.deadline_s = r.start / frame_rate
        r.slack_s = r.deadline_s - r.audible_s
        r.late = r.slack_s < 0
        r.unsafe = r.slack_s < timing.tau_jitter


# ----------------------------------------------------------------------------- result


@dataclass
class StreamResult:
    """What a stream produced: audio ``[N]`` at ``sample_rate``, codes ``[n_q, T]``, per-chunk records."""

    spec: StreamSpec
    sample_rate: int
    accompaniment: np.ndarray
    codes: torch.Tensor
    input_audio: np.ndarray
    records: list[ChunkRecord]
    timing: Timing
    category: int
    prompt_frames: int = 0
    info: dict = field(default_factory=dict)

    @property
    def frames(self) -> int:
        return int(self.codes.shape[-1])

    @property
    def streamed_frames(self) -> int:
        return sum(r.frames for r in self.records)

    @property
    def compute_s(self) -> float:
        return sum(r.compute_s for r in self.records)

    @property
    def x_real_time(self) -> float:
        """Speed in "x real time": streamed audio seconds / compute seconds (above 1 keeps pace; the
        usual real-time factor, compute / audio, is its inverse)."""
        return to_seconds(self.streamed_frames) / max(self.compute_s, 1e-12)

    def latency_percentiles(self, q: Sequence[float] = (50, 99)) -> dict[str, float]:
        """Chunk compute latency percentiles in seconds, e.g. ``{'p50': ..., 'p99': ...}``."""
        values = np.array([r.compute_s for r in self.records]) if self.records else np.zeros(1)
        return {f"p{int(p)}": float(np.percentile(values, p)) for p in q}

    @property
    def n_late(self) -> int:
        return sum(r.late for r in self.records)

    @property
    def n_unsafe(self) -> int:
        return sum(r.unsafe for r in self.records)

    def report(self) -> dict:
        """The JSON timing report."""
        lat = self.latency_percentiles()
        return {
            "tf_frames": self.spec.tf,
            "k_frames": self.spec.k,
            "tf_seconds": self.spec.tf_seconds,
            "k_seconds": self.spec.k_seconds,
            "category": self.category,
            "prompt_frames": self.prompt_frames,
            "tau_sys_s": self.timing.tau_sys,
            "tau_jitter_s": self.timing.tau_jitter,
            "sample_rate": self.sample_rate,
            "output_seconds": to_seconds(self.frames),
            "streamed_seconds": to_seconds(self.streamed_frames),
            "chunks": len(self.records),
            "compute_s": self.compute_s,
            "x_real_time": self.x_real_time,
            "chunk_latency_p50_s": lat["p50"],
            "chunk_latency_p99_s": lat["p99"],
            "late_chunks": self.n_late,
            "unsafe_chunks": self.n_unsafe,
            "worst_slack_s": min((r.slack_s for r in self.records), default=0.0),
            **self.info,
            "records": [asdict(r) for r in self.records],
        }

    def mix(self, input_tracks: Sequence[np.ndarray] | None = None) -> np.ndarray:
        """The paper's A.9 mix of the input track(s) (default: the input stream) with the accompaniment."""
        from streamlib.metrics.mixing import mix_tracks

        tracks = list(input_tracks) if input_tracks is not None else [self.input_audio]
        n = min(len(self.accompaniment), *(len(t) for t in tracks))
        return mix_tracks([t[:n] for t in tracks], self.accompaniment[:n], self.sample_rate)

    def save(self, out: str | Path, input_tracks: Sequence[np.ndarray] | None = None) -> dict[str, Path]:
        """Write ``accompaniment.wav``, ``mix.wav``, ``input.wav`` and ``timing.json`` into ``out``."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        paths = {name: out / f"{name}.wav" for name in ("accompaniment", "mix", "input")}
        save_audio(paths["accompaniment"], self.accompaniment, self.sample_rate)
        save_audio(paths["input"], self.input_audio[: len(self.accompaniment)], self.sample_rate)
        save_audio(paths["mix"], self.mix(input_tracks), self.sample_rate)
        paths["timing"] = out / "timing.json"
        paths["timing"].write_text(json.dumps(self.report(), indent=1) + "\n")
        return paths


# ----------------------------------------------------------------------------- the engine


def check_spec(spec: StreamSpec, tf: int | None, k: int | None, what: str = "checkpoint") -> None:
    """Raise ``StreamError`` when the requested (tf, k) in frames differ from the model's own."""
    if tf is not None and tf != spec.tf:
        raise StreamError(
            f"{what} was trained with t_f = {spec.tf_seconds:g} s ({spec.tf} frames), not {to_seconds(tf):g} s: "
            f"t_f is fixed by training; pick the checkpoint trained for it"
        )
    if k is not None and k != spec.k:
        raise StreamError(
            f"{what} was trained with k = {spec.k_seconds:g} s ({spec.k} frames), not {to_seconds(k):g} s: "
            f"pick the checkpoint trained for it"
        )


def _as_mono(audio, sample_rate: int, name: str) -> np.ndarray:
    x = audio.detach().cpu().numpy() if isinstance(audio, torch.Tensor) else np.asarray(audio)
    x = np.asarray(x, dtype=np.float32).reshape(-1) if x.ndim <= 1 or x.shape[0] == 1 else None
    if x is None:
        raise AudioError(f"{name} must be mono audio [N] at {sample_rate} Hz")
    validate(x, name=name)
    return x


def fed_input_count(gen, pushed: int) -> int:
    """Input frames the generator holds: its own ``n_input`` counter if it has one, else ``pushed``."""
    return int(getattr(gen, "n_input", pushed))


class ChunkEngine:
    """The work of every chunk, shared by the simulated clock (``stream``) and the live loop
    (``streamlib.live``): encode the input revealed so far, generate ``k`` frames, decode them.

    ``needed(t)`` is how many input frames the chunk at ``t`` may see, ``t + t_f + D`` (never more is
    fed); ``chunk(t, k, source)`` reads the input samples it still lacks from ``source(first, stop)``
    (frames ``first .. stop - 1``), runs the chunk and returns its codes, audio and ``ChunkRecord``
    (compute times measured with ``clock``; the wall-clock fields are the scheduler's to fill).
    """

    def __init__(self, acc, codec, category: int, *, temperature: float = 1.0, top_k: int = 200, seed: int = 0,
                 generator_kwargs: dict | None = None, compile_codec: bool = False,
                 notify: Callable[[str], None] | None = None, clock: Clock = time.perf_counter):
        self.spec: StreamSpec = acc.spec
        self.codec, self.clock, self.compile_codec, self.notify = codec, clock, compile_codec, notify
        self.n_q = int(acc.cfg.n_q)
        self.lag = self.n_q - 1  # the delay pattern's D (module docstring)
        self.hop = codec.hop
        torch.manual_seed(seed)
        self.gen = acc.generator(category, temperature=temperature, top_k=top_k, **(generator_kwargs or {}))
        self.enc, self.dec = self._codec_streams()
        self.pushed = 0  # input frames encoded and fed
        self.chroma = None
        if getattr(acc.cfg, "input_chroma", False):  # the model's second input path (streamlib.input_chroma)
            from streamlib.input_chroma import CausalChroma

            self.chroma = CausalChroma(codec.sample_rate)

    def _codec_streams(self):
        """The codec's stream encoder and decoder: eager (``codec.stream_encoder``), or with
        ``compile_codec`` its steps compiled (``streamlib.fastcodec``)."""
        if not self.compile_codec:
            return self.codec.stream_encoder(batch=1, n_q=self.n_q), self.codec.stream_decoder(batch=1)
        from streamlib.fastcodec import FrameDecoder, FrameEncoder

        return (FrameEncoder(self.codec, self.n_q, notify=self.notify),
                FrameDecoder(self.codec, notify=self.notify))

    def warm_up(self) -> float:
        """Before the clock starts: compile / run the generator's step (``warm_up``, if it has one) and
        push frames through scratch codec streams (compiling their steps with ``compile_codec``);
        seconds taken."""
        from streamlib.model.fast import compile_settings

        start = time.perf_counter()
        if hasattr(self.gen, "warm_up"):
            self.gen.warm_up()
        enc, dec = self._codec_streams()
        if self.compile_codec:
            from streamlib.fastcodec import READY

            if self.codec.model not in READY and self.notify:
                self.notify("compiling the codec's steps (once per codec and process; --no-compile skips it)")
            READY.add(self.codec.model)
        with compile_settings():
            dec.push(enc.push(torch.zeros(3 * self.hop)))
        return time.perf_counter() - start

    def needed(self, t: int) -> int:
        """Input frames the chunk starting at output frame ``t`` may see: ``max(t + t_f + D, 0)``."""
        return max(t + self.spec.tf + self.lag, 0)

    def reveal(self, upto: int, source: Callable[[int, int], np.ndarray]) -> None:
        """Encode and feed input frames ``pushed .. upto - 1`` (samples from ``source(first, stop)``)."""
        if upto > self.pushed:
            samples = np.ascontiguousarray(source(self.pushed, upto), dtype=np.float32)
            codes = self.enc.push(torch.from_numpy(samples))
            if self.chroma is None:
                self.gen.feed_input(codes[0, : self.n_q])
            else:
                self.gen.feed_input(codes[0, : self.n_q], torch.from_numpy(self.chroma.push(samples)))
            self.pushed = upto

    def prompt(self, truth: torch.Tensor, source: Callable[[int, int], np.ndarray]) -> np.ndarray:
        """Teacher-force the true first output frames ``truth [n_q, L]`` (a warm start); their audio."""
        self.reveal(self.needed(truth.shape[-1]), source)
        self.gen.feed_output(truth)
        return self.dec.push(truth[None]).reshape(-1).cpu().numpy()

    def chunk(self, t: int, k: int, source: Callable[[int, int], np.ndarray]
              ) -> tuple[torch.Tensor, np.ndarray, ChunkRecord]:
        """Output frames ``t .. t + k - 1``: codes ``[n_q, k]``, audio, and the chunk's record."""
        c0 = self.clock()
        self.reveal(self.needed(t), source)
        c1 = self.clock()
        visible = fed_input_count(self.gen, self.pushed)
        if visible > self.needed(t):
            raise StreamError(f"the generator holds {visible} input frames at t={t}, more than "
                              f"t + t_f + D = {t + self.spec.tf + self.lag}")
        chunk = self.gen.generate(k)
        c2 = self.clock()
        if tuple(chunk.shape) != (self.n_q, k):
            raise StreamError(f"generate({k}) returned shape {tuple(chunk.shape)}, expected ({self.n_q}, {k})")
        audio = self.dec.push(chunk[None]).reshape(-1).cpu().numpy()
        c3 = self.clock()
        record = ChunkRecord(index=0, start=t, frames=k, input_visible=visible, encode_s=c1 - c0,
                             generate_s=c2 - c1, decode_s=c3 - c2, jitter_s=0.0)
        return chunk.cpu(), audio, record


def stream(
    acc,
    codec,
    input_audio,
    category: int,
    *,
    spec: StreamSpec | None = None,
    prompt_audio=None,
    prompt_seconds: float = 0.0,
    timing: Timing = Timing(),
    jitter: Jitter | None = None,
    temperature: float = 1.0,
    top_k: int = 200,
    seed: int = 0,
    output_frames: int | None = None,
    clock: Clock = time.perf_counter,
    generator_kwargs: dict | None = None,
    compile_codec: bool = False,
    progress: bool = False,
) -> StreamResult:
    """Stream ``input_audio`` (mono, ``codec.sample_rate``) through ``acc`` and ``codec``.

    ``spec`` defaults to ``acc.spec`` (must equal it if given). ``prompt_seconds`` > 0 warm-starts
    with the ground truth: the first L seconds of the output are ``prompt_audio`` (the true
    accompaniment), teacher-forced into the generator, and streaming starts at t = L. The output
    has ``input frames - max(t_f + D, 0)`` frames unless ``output_frames`` says fewer, so that every
    chunk's visible input ``x(1 : t + t_f + D)`` exists (paper A.7: a model with t_f > 0 sees t_f more
    input than it outputs). ``generator_kwargs`` go to ``acc.generator`` (``fast=True``: the fast path);
    ``compile_codec`` runs the codec's steps compiled (``streamlib.fastcodec``); compiling happens in a
    warm-up before the clock starts. ``progress`` shows a progress bar over the chunks.
    """
    model_spec: StreamSpec = acc.spec
    if spec is not None:
        check_spec(model_spec, spec.tf, spec.k)
    spec = model_spec
    sr, hop = codec.sample_rate, codec.hop
    x = _as_mono(input_audio, sr, "input audio")
    n_in = len(x) // hop
    lag = int(acc.cfg.n_q) - 1
    n_out = n_in - max(spec.tf + lag, 0)
    if output_frames is not None:
        if output_frames > n_out:
            raise StreamError(f"output_frames={output_frames} needs more input than the {n_in} frames given")
        n_out = int(output_frames)
    prompt = int(round(prompt_seconds * FRAME_RATE))
    if n_out < 1:
        raise StreamError(f"input of {len(x) / sr:.3f} s is too short for t_f = {spec.tf_seconds} s")
    if prompt < 0 or prompt >= n_out:
        raise StreamError(f"prompt of {prompt_seconds} s must be >= 0 and shorter than the {to_seconds(n_out)} s output")
    if prompt and prompt_audio is None:
        raise StreamError("a prompt warm start needs the ground-truth accompaniment (prompt_audio)")

    engine = ChunkEngine(acc, codec, category, temperature=temperature, top_k=top_k, seed=seed,
                         generator_kwargs=generator_kwargs, compile_codec=compile_codec,
                         notify=(generator_kwargs or {}).get("notify"), clock=clock)
    warm_up_s = engine.warm_up()

    def source(first: int, stop: int) -> np.ndarray:
        return x[first * hop : min(stop, n_in) * hop]

    out_codes: list[torch.Tensor] = []
    out_audio: list[np.ndarray] = []
    if prompt:
        y = _as_mono(prompt_audio, sr, "prompt audio")
        if len(y) < prompt * hop:
            raise StreamError(f"prompt audio is shorter than the {prompt_seconds} s prompt")
        truth = codec.encode(torch.from_numpy(y[: prompt * hop])[None, None], n_q=engine.n_q)[0]
        out_audio.append(engine.prompt(truth, source))
        out_codes.append(truth.cpu())

    records: list[ChunkRecord] = []
    t = prompt
    with tqdm(total=math.ceil((n_out - prompt) / spec.k), desc="streaming", unit="chunk", disable=not progress) as bar:
        while t < n_out:
            k = min(spec.k, n_out - t)
            chunk, audio, record = engine.chunk(t, k, source)
            record.index = len(records)
            record.jitter_s = float(jitter(len(records))) if jitter else 0.0
            records.append(record)
            out_codes.append(chunk)
            out_audio.append(audio)
            t += k
            bar.update()
    schedule(records, spec.tf, timing, delay=lag)
    return StreamResult(
        spec=spec,
        sample_rate=sr,
        accompaniment=np.concatenate(out_audio).astype(np.float32),
        codes=torch.cat(out_codes, dim=-1).long(),
        input_audio=x[: n_in * hop],
        records=records,
        timing=timing,
        category=int(category),
        prompt_frames=prompt,
        info={"delay_pattern_frames": lag, "temperature": temperature, "top_k": top_k, "seed": seed,
              "jitter_mean_s": getattr(jitter, "mean_s", None) if jitter else 0.0,
              **engine_info(engine, warm_up_s)},
    )


def engine_info(engine: ChunkEngine, warm_up_s: float) -> dict:
    """What the timing report says about the engine: ``decode_path`` (plain / fast, compiled or eager),
    ``codec_steps`` (compiled or eager), the warm-up seconds before the clock and the torch threads."""
    gen = engine.gen
    path = "plain" if not hasattr(gen, "warm_up") else "fast, compiled" if gen.compiled else "fast, eager"
    codec = "compiled" if getattr(engine.enc, "step", None) is not None and engine.enc.step.compiled else "eager"
    return {"decode_path": path, "codec_steps": codec, "warm_up_s": warm_up_s, "torch_threads": torch.get_num_threads(),
            "guidance": getattr(gen, "guidance", 1.0)}


# ----------------------------------------------------------------------------- threads


@dataclass(frozen=True)
class ThreadChoice:
    """Torch threads for a stream, chosen by ``choose_threads``: the count, what was measured
    (threads -> compute seconds per output frame) and why, in words."""

    threads: int
    measured: dict[int, float]
    reason: str


def free_cores(cores: int | None = None, load: float | None = None) -> tuple[int, int, float]:
    """``(free, cores, load)``: the cores this process may use (its CPU affinity), the 1-minute load
    average, and how many of the cores that load leaves free (at least one)."""
    import os

    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    load = os.getloadavg()[0] if load is None else load
    return max(1, min(cores, cores - int(load + 0.5))), cores, load


def choose_threads(measure: Callable[[int], float], cores: int | None = None, load: float | None = None,
                   tolerance: float = 0.1) -> ThreadChoice:
    """The thread count for a stream, from a measurement and never more than the free cores.

    ``measure(n)`` sets ``n`` threads, streams a little and returns compute seconds per output frame.
    Every count from 1 to the free cores (``free_cores``) is measured once; more threads must be
    faster by ``tolerance`` (10 %) to win -- on a small model the second thread mostly adds
    synchronisation, and a core that another process needs makes OpenMP threads wait for each other.
    """
    free, cores, load = free_cores(cores, load)
    busy = f"load average {load:.1f} on {cores} core{'s' if cores > 1 else ''}"
    if free == 1:
        measured = {1: measure(1)}
        why = "one core" if cores == 1 else f"{busy} leaves one core free"
        return ThreadChoice(1, measured, f"1 thread: {why}")
    measured = {n: measure(n) for n in range(1, free + 1)}
    best = 1
    for n in range(2, free + 1):
        if measured[n] < (1 - tolerance) * measured[best]:
            best = n
    times = ", ".join(f"{n}: {1e3 * v:.1f} ms" for n, v in measured.items())
    return ThreadChoice(best, measured, f"{best} thread{'s' if best > 1 else ''}: measured compute per frame "
                                        f"with {times} ({busy})")


def set_threads(threads: int | str, measure: Callable[[int], float]) -> ThreadChoice:
    """``torch.set_num_threads``: ``threads`` as given, or ``"auto"``: ``choose_threads(measure)``."""
    if threads == "auto":
        choice = choose_threads(measure)
    else:
        choice = ThreadChoice(int(threads), {}, f"{threads} thread{'s' if int(threads) > 1 else ''}: as asked")
    torch.set_num_threads(choice.threads)
    return choice


def thread_probe(acc, codec, audio: np.ndarray, category: int, seconds: float = 1.0,
                 **stream_kwargs) -> Callable[[int], float]:
    """A ``measure`` for ``choose_threads``: stream the first ``seconds`` of ``audio`` with ``n``
    threads (the decode path's warm-up outside the clock) and return compute seconds per frame."""
    n = min(len(audio), int(seconds * codec.sample_rate) + (max(acc.spec.tf, 0) + acc.cfg.n_q) * codec.hop)
    kwargs = {k: v for k, v in stream_kwargs.items() if k in ("generator_kwargs", "compile_codec", "temperature",
                                                                 "top_k")}

    def measure(threads: int) -> float:
        torch.set_num_threads(threads)
        result = stream(acc, codec, audio[:n], category, **kwargs)
        return result.compute_s / max(result.streamed_frames, 1)

    return measure


# ----------------------------------------------------------------------------- files and checkpoints


DEFAULT_CATEGORY = "Piano"  # what a model trained on every target plays unless told otherwise


def guidance_note(acc, generator_kwargs: dict | None) -> str | None:
    """One line for the user when ``generator_kwargs`` leave the guidance scale to the model (``None``) and its
    default guides (``default_guidance``); None otherwise."""
    from streamlib.model.accompanist import default_guidance

    if (generator_kwargs or {}).get("guidance", 1.0) is not None or default_guidance(acc) == 1.0:
        return None
    return (f"classifier-free guidance {default_guidance(acc):g}, this model's default: it was trained with input "
            "dropout (--guidance 1 turns it off)")


def default_category(acc) -> int:
    """What ``acc`` plays unless told otherwise: its one trained target (``train --targets Bass``), else Piano."""
    from streamlib.model.accompanist import trained_targets

    targets = trained_targets(acc)
    return targets[0] if len(targets) == 1 else parse_category(DEFAULT_CATEGORY)


def parse_category(value: str | int) -> int:
    """A category id from its name ("Bass", case-insensitive) or its number."""
    from streamlib.tokens.categories import CATEGORIES, TARGET_CATEGORIES, category_id

    cat = int(value) if isinstance(value, int) or str(value).strip().isdigit() else category_id(str(value))
    if cat not in TARGET_CATEGORIES:
        raise StreamError(f"category {value!r} is not a generation target; choose one of "
                          f"{[CATEGORIES[c] for c in TARGET_CATEGORIES]}")
    return cat


def stream_file(
    input_path: str | Path,
    checkpoint: str | Path,
    *,
    tf: float | str | None = None,
    k: float | str | None = None,
    category: str | int | None = None,
    out: str | Path | None = None,
    codec_path: str | Path | None = None,
    input_tracks: Sequence[np.ndarray] | None = None,
    notify: Callable[[str], None] | None = None,
    threads: int | str | None = None,
    **kwargs,
) -> tuple[StreamResult, dict[str, Path]]:
    """Stream any audio file (resampled to the codec's rate, downmixed) through a checkpoint.

    ``tf``/``k`` (seconds or unit strings) must equal the checkpoint's own, if given; ``category`` defaults to
    the model's instrument (``default_category``). Before streaming,
    ``notify`` (if given) gets one line for each thing done to the input or wrong with it (resampled,
    down-mixed, silent); the report keeps them as ``notes``. ``threads``: a torch thread count or
    ``"auto"`` (``choose_threads`` on the first second of the input); None leaves torch's setting.
    Writes the accompaniment, the mix and ``timing.json`` into ``out`` (if given). ``kwargs`` go to ``stream``.
    """
    from streamlib.audio import input_notes, load_audio
    from streamlib.codec import codec_for
    from streamlib.config import to_frames
    from streamlib.model import load_accompanist
    from streamlib.tokens.categories import CATEGORIES

    acc = load_accompanist(checkpoint)
    cat = default_category(acc) if category is None else parse_category(category)
    check_spec(acc.spec, None if tf is None else to_frames(tf, name="tf"),
               None if k is None else to_frames(k, name="k"), what=str(checkpoint))
    codec = codec_for(acc, codec_path)
    audio, _ = load_audio(input_path, codec.sample_rate)
    notes = input_notes(input_path, audio, codec.sample_rate)
    if notify:
        for note in [*notes, guidance_note(acc, kwargs.get("generator_kwargs"))]:
            if note:
                notify(note)
    choice = None if threads is None else set_threads(threads, thread_probe(acc, codec, audio, cat, **kwargs))
    result = stream(acc, codec, audio, cat, **kwargs)
    result.info.update(input=str(input_path), checkpoint=str(checkpoint), category_name=CATEGORIES[cat], notes=notes)
    if choice is not None:
        result.info["threads"] = choice.reason
    paths = result.save(out, input_tracks) if out is not None else {}
    return result, paths


def summary(result: StreamResult) -> str:
    """One paragraph for the command line."""
    r = result.report()
    return (
        f"t_f = {r['tf_seconds']:g} s, k = {r['k_seconds']:g} s: {r['streamed_seconds']:.2f} s streamed in "
        f"{r['chunks']} chunks, compute {r['compute_s']:.2f} s ({r['x_real_time']:.2f}x real time); chunk latency p50 "
        f"{r['chunk_latency_p50_s'] * 1e3:.1f} ms, p99 {r['chunk_latency_p99_s'] * 1e3:.1f} ms; "
        f"{r['late_chunks']} late, {r['unsafe_chunks']} inside the jitter margin "
        f"(tau_sys {r['tau_sys_s'] * 1e3:.0f} ms, tau_jitter {r['tau_jitter_s'] * 1e3:.0f} ms)"
    )


# ----------------------------------------------------------------------------- shipped checkpoints and the demo


@dataclass(frozen=True)
class ModelEntry:
    """One system of the sweep: a checkpoint and where it sits in the (t_f, k) plane (frames)."""

    label: str
    kind: str  # "streaming", "offline_prefix" or "offline_masked" (chapter 12)
    path: Path | None
    tf: int | None
    k: int | None
    accompanist: object = field(default=None, compare=False, repr=False)  # preloaded (else loaded from path)

    def load(self):
        """The accompanist: the preloaded one, or ``load_accompanist(path)`` (``load_masked`` for the masked model)."""
        if self.accompanist is not None:
            return self.accompanist
        if self.kind == "offline_masked":
            from streamlib.model.masked import load_masked

            return load_masked(self.path)
        from streamlib.model import load_accompanist

        return load_accompanist(self.path)


def shipped_models(root: str | Path | None = None, prefix: str = "book") -> list[ModelEntry]:
    """The shipped checkpoints ``<root>/models/<prefix>_tf<+-N>_k<M>.safetensors`` (+ the offline prefix decoder
    and the masked model, ``<prefix>_offline_prefix`` and ``<prefix>_masked``)."""
    folder = Path(root) if root is not None else checkpoint_dir()
    folder = folder / "models" if (folder / "models").is_dir() else folder
    entries = []
    for path in sorted(folder.glob(f"{prefix}_*.safetensors")):
        m = _TAG.match(path.stem.replace(prefix, "book", 1))
        if m:
            tf, k = int(m.group(1)), int(m.group(2))
            entries.append(ModelEntry(f"t_f={to_seconds(tf):g}s k={to_seconds(k):g}s", "streaming", path, tf, k))
        elif path.stem == f"{prefix}_offline_prefix":
            entries.append(ModelEntry("offline prefix", "offline_prefix", path, None, None))
        elif path.stem == f"{prefix}_masked":
            entries.append(ModelEntry("offline masked", "offline_masked", path, None, None))
    order = ("streaming", "offline_prefix", "offline_masked")
    entries.sort(key=lambda e: (order.index(e.kind), e.k or 0, e.tf or 0))
    return entries


def is_streaming_card(card: dict) -> bool:
    """A card of a streaming accompanist (chapter 8), as opposed to an offline one: the prefix decoder
    (``offline: true``) or the masked model (``kind: masked``, whose card has no ``offline`` key)."""
    return card.get("kind") == "accompanist" and not card.get("offline", False)


def model_cards_by_hash() -> dict[str, dict]:
    """Every accompanist card by its weights hash: the shipped models' and the archived ones
    (``ARCHIVED_CARDS``: models replaced since committed results were made from them); a shipped card wins."""
    cards: dict[str, dict] = {}
    for path in [*sorted((checkpoint_dir() / "models").glob("*.json")), *sorted(ARCHIVED_CARDS.glob("*.json"))]:
        card = json.loads(path.read_text())
        cards.setdefault(card.get("weights_sha256"), card)
    return cards


def find_model_card(weights_sha256: str) -> dict | None:
    """The card of the accompanist whose weights hash is ``weights_sha256`` (``model_cards_by_hash``); None if
    no shipped or archived card has it."""
    return model_cards_by_hash().get(weights_sha256)


def smallest_lead(entries: Sequence[ModelEntry]) -> ModelEntry:
    """The streaming entry with the largest t_f (the smallest lead when all are negative), then the smallest k."""
    return max(entries, key=lambda e: (e.tf, -e.k))


@dataclass
class BookModels:
    """Accompanists by (tf, k) frames, each with the codec it was trained with (the shipped set may mix
    codecs); ``trained`` False means random debug weights."""

    codecs: dict[tuple[int, int], object]
    models: dict[tuple[int, int], object]
    trained: bool
    note: str


FALLBACK_SPECS = ((-10, 5), (-5, 1), (0, 1), (5, 1), (10, 5))


def book_models(specs: Sequence[tuple[int, int]] | None = None, *, checkpoints: str | Path | None = None) -> BookModels:
    """The shipped accompanists and their codecs when they exist (optionally only ``specs``), otherwise tiny
    randomly initialised ``debug`` models and codec at ``FALLBACK_SPECS`` -- with a note saying so: their
    output is noise-like and says nothing about the paper's trade-offs."""
    from streamlib.codec import CausalCodec, codec_for
    from streamlib.codec.codec import default_checkpoint
    from streamlib.config import get_preset, seed_everything
    from streamlib.model import Accompanist, load_accompanist

    shipped = [e for e in shipped_models(checkpoints) if e.kind == "streaming"]
    if specs is not None:
        shipped = [e for e in shipped if (e.tf, e.k) in set(specs)]
    if shipped and default_checkpoint().exists():
        models = {(e.tf, e.k): load_accompanist(e.path) for e in shipped}
        loaded: dict[str, object] = {}  # each codec once, by the hash the cards name
        for m in models.values():
            if m.card["codec_sha256"] not in loaded:
                loaded[m.card["codec_sha256"]] = codec_for(m)
        codecs = {spec: loaded[m.card["codec_sha256"]] for spec, m in models.items()}
        return BookModels(codecs, models, True,
                          f"shipped checkpoints: {len(models)} streaming models on {len(loaded)} codec(s)")
    seed_everything(0)
    preset = get_preset("debug")
    codec = CausalCodec(preset.codec)
    tables = codec.codebook_tables(preset.model.n_q)
    models = {}
    for tf, k in specs or FALLBACK_SPECS:
        models[(tf, k)] = Accompanist(preset.model, tables, StreamSpec(tf=tf, k=k, window=preset.model.max_frames // 2)).eval()
    return BookModels({spec: codec for spec in models}, models, False, (
        "NOTE: no shipped checkpoints found -- using tiny RANDOMLY INITIALISED debug models and codec. "
        "They show the mechanics (timing, visibility) only; their audio is noise, not music."))


def demo_stream(example: str = "test_clip", *, checkpoint: str | Path | None = None, target: str | None = None,
                out: str | Path | None = None, codec_path: str | Path | None = None,
                category: str | int | None = None, threads: int | str | None = None,
                **kwargs) -> tuple[StreamResult, dict[str, Path]]:
    """Stream a bundled example clip (``data/examples/NAME``): one stem held out, the others mixed
    as the input; the model plays the held-out stem's instrument (or ``category``). ``checkpoint``
    defaults to the shipped streaming model with the smallest lead (t_f < 0 closest to 0, smallest k).
    ``threads`` as in ``stream_file``. ``kwargs`` go to ``stream`` (a ``prompt_seconds`` warm start
    uses the held-out stem)."""
    from streamlib.codec import codec_for
    from streamlib.data.examples import load_example
    from streamlib.model import load_accompanist
    from streamlib.model.accompanist import trained_targets
    from streamlib.tokens.categories import CATEGORIES, TARGET_CATEGORIES

    clip = load_example(example)
    if checkpoint is None:
        ready = [e for e in shipped_models() if e.kind == "streaming"]
        if not ready:
            raise StreamError(f"no shipped checkpoints in {checkpoint_dir() / 'models'} (pass --checkpoint)")
        checkpoint = smallest_lead([e for e in ready if e.tf < 0] or ready).path
    names = list(clip.stems)
    acc = load_accompanist(checkpoint)
    if target is None:  # the model's own instrument if the clip has it, else the first non-drum target
        own = [s for s in names if [clip.categories[s]] == trained_targets(acc)]
        target = own[0] if own else next(
            (s for s in names if clip.categories[s] in TARGET_CATEGORIES and clip.categories[s] != 14), names[0])
    if target not in clip.stems:
        raise StreamError(f"{example} has stems {names}, not {target!r}")
    inputs = [s for s in names if s != target]
    cat = clip.categories[target] if category is None else parse_category(category)
    codec = codec_for(acc, codec_path)
    if clip.sample_rate != codec.sample_rate:
        raise StreamError(f"example at {clip.sample_rate} Hz, codec at {codec.sample_rate} Hz")
    tracks = [clip.stems[s] for s in inputs]
    if kwargs.get("prompt_seconds"):
        kwargs.setdefault("prompt_audio", clip.stems[target])
    mix = np.sum(tracks, axis=0)
    notify = (kwargs.get("generator_kwargs") or {}).get("notify")
    if notify and (said := guidance_note(acc, kwargs.get("generator_kwargs"))):
        notify(said)
    choice = None if threads is None else set_threads(threads, thread_probe(acc, codec, mix, cat, **kwargs))
    result = stream(acc, codec, mix, cat, **kwargs)
    result.info.update(example=example, input_stems=inputs, target_stem=target, category_name=CATEGORIES[cat],
                       checkpoint=str(checkpoint))
    if choice is not None:
        result.info["threads"] = choice.reason
    paths = result.save(out, tracks) if out is not None else {}
    return result, paths


# ----------------------------------------------------------------------------- figure


def timeline_figure(result: StreamResult, max_chunks: int = 400, title: str | None = None):
    """Plotly timeline: one bar per chunk from compute start to audible, its deadline as a tick;
    green when safe, orange inside the jitter margin, red when late."""
    import plotly.graph_objects as go

    recs = result.records[:max_chunks]
    colour = ["#d62728" if r.late else "#ff7f0e" if r.unsafe else "#2ca02c" for r in recs]
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            y=[r.index for r in recs],
            x=[r.audible_s - r.compute_start_s for r in recs],
            base=[r.compute_start_s for r in recs],
            orientation="h",
            marker_color=colour,
            name="compute + tau_sys",
            customdata=[[r.start, r.frames, r.input_visible, r.compute_s * 1e3, r.slack_s * 1e3] for r in recs],
            hovertemplate=(
                "chunk %{y}: frames %{customdata[0]}+%{customdata[1]}, sees %{customdata[2]} input frames"
                "<br>compute %{customdata[3]:.1f} ms, slack %{customdata[4]:.1f} ms<extra></extra>"
            ),
        )
    )
    fig.add_trace(
        go.Scatter(
            y=[r.index for r in recs], x=[r.deadline_s for r in recs], mode="markers",
            marker=dict(symbol="line-ns-open", size=12, color="black"), name="deadline (play time)",
        )
    )
    rep = result.report()
    fig.update_layout(
        title=title or (
            f"t_f = {result.spec.tf_seconds:g} s, k = {result.spec.k_seconds:g} s: "
            f"{rep['x_real_time']:.2f}x real time, "
            f"{rep['late_chunks']} late / {rep['unsafe_chunks']} inside the margin of {len(result.records)} chunks"
        ),
        xaxis_title="simulated wall time (s)",
        yaxis_title="chunk",
        barmode="overlay",
        height=420,
    )
    return fig


__all__ = [
    "is_streaming_card",
    "StreamError",
    "Timing",
    "ExponentialJitter",
    "ChunkRecord",
    "schedule",
    "StreamResult",
    "check_spec",
    "fed_input_count",
    "ChunkEngine",
    "engine_info",
    "stream",
    "ThreadChoice",
    "free_cores",
    "choose_threads",
    "set_threads",
    "thread_probe",
    "parse_category",
    "stream_file",
    "summary",
    "ModelEntry",
    "shipped_models",
    "find_model_card",
    "model_cards_by_hash",
    "smallest_lead",
    "BookModels",
    "book_models",
    "demo_stream",
    "timeline_figure",
]
