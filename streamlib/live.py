"""Jam live: the streaming engine on a real audio clock (chapter 8, "Jam live").

The simulated engine (``streamlib.stream``) reveals input on a clock it computes; here a sound card
(or a stand-in paced by the wall clock) delivers it. An audio callback, called once per block by
PortAudio (``sounddevice``), moves samples in and out of two ``SampleRing`` buffers indexed by absolute
sample position; the engine's loop runs in the main thread with the same ``ChunkEngine`` and the same
rule as the simulation: chunk ``t`` starts once input frames ``x(1 : t + t_f + D)`` have arrived and
the previous chunk is done, and must be in the output ring before the callback plays position ``t``.
Output sample ``p`` goes out in the same callback as input sample ``p`` comes in, so the lead a chunk
has is ``-(t_f + D)`` frames less one block (the callback period); what the listener hears is further
delayed by the device's own input and output latency (``--measure-latency`` measures it).

* An **underrun** is an output sample the engine had not made when the callback needed it: silence
  is played and the chunk is late (the stream keeps its alignment; late audio is dropped). Device
  over/underflows that PortAudio reports (the callback itself too slow) are counted apart.
* ``AudioPort`` is what the session needs from a device: ``SoundDevicePort`` opens a PortAudio stream
  (duplex for a live input, output-only when the input is a file played in real time); ``ClockPort``
  needs no hardware: a thread calls the callback every block, paced by ``time.perf_counter``, and
  feeds each block's output back as the next block's input (a loopback cable one block long).
* ``run_session`` streams until the input ends, ``seconds`` pass or Ctrl-C, then returns a
  ``StreamResult`` whose records carry the *measured* wall-clock times (compute start, ready, the
  callback time that needed the chunk, slack, late); ``info["simulated_late"]`` is what the simulated
  clock (``schedule``) predicts from the same compute times. ``save_session`` writes the input, the
  accompaniment, the mix, what was played and ``timing.json``.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import torch

from streamlib.audio import save_audio
from streamlib.config import FRAME_RATE
from streamlib.stopping import StopRequest
from streamlib.stream import ChunkEngine, ChunkRecord, StreamError, StreamResult, Timing, engine_info, schedule

Callback = Callable[[np.ndarray, np.ndarray, int, object, object], None]  # sounddevice's duplex signature
MIX_INPUT_GAIN = 0.5  # the input's level in a played mix (the accompaniment at 1)


class LiveError(StreamError):
    """The live session cannot run: no sound library, a device that refuses, bad options."""


class SampleRing:
    """Mono float32 samples by absolute position, written in order by one thread and read in order by
    another (the last ``capacity`` samples are kept). ``write`` past what was already read counts the
    overlap as ``late``; ``read`` of samples not yet written returns zeros and counts them ``missing``."""

    def __init__(self, capacity: int):
        self.buf = np.zeros(int(capacity), dtype=np.float32)
        self.filled = 0  # samples written: positions 0 .. filled - 1
        self.read_to = 0  # samples read: positions 0 .. read_to - 1
        self.late = 0
        self.missing = 0
        self.cond = threading.Condition()

    def write(self, start: int, samples: np.ndarray) -> None:
        n, cap = len(samples), len(self.buf)
        with self.cond:
            if start != self.filled:
                raise ValueError(f"writes must follow each other: position {start}, written up to {self.filled}")
            if start + n - self.read_to > cap:
                raise ValueError(f"ring of {cap} samples overrun: writing up to {start + n}, read up to {self.read_to}")
            idx = np.arange(start, start + n) % cap
            self.buf[idx] = samples
            self.late += max(0, min(self.read_to, start + n) - start)
            self.filled = start + n
            self.cond.notify_all()

    def read(self, start: int, n: int) -> np.ndarray:
        """Samples ``start .. start + n - 1`` (zeros where not yet written); marks them read."""
        with self.cond:
            have = max(0, min(self.filled - start, n))
            out = np.zeros(n, dtype=np.float32)
            out[:have] = self.buf[np.arange(start, start + have) % len(self.buf)]
            self.missing += n - have
            self.read_to = max(self.read_to, start + n)
            return out

    def wait_for(self, position: int, timeout: float) -> bool:
        """Block until positions below ``position`` are written (True) or ``timeout`` seconds pass."""
        with self.cond:
            return self.cond.wait_for(lambda: self.filled >= position, timeout=timeout)


class AudioPort(Protocol):
    """A source of audio callbacks: ``open`` returns a stream with ``start``, ``stop`` and ``close``;
    the callback gets ``(indata [block, ch], outdata [block, ch], frames, time_info, status)``."""

    name: str

    def open(self, callback: Callback, sample_rate: int, block: int, with_input: bool): ...


class ClockPort:
    """No sound hardware: a thread calls the callback every ``block`` samples of wall time (paced by
    ``time.perf_counter``); each block's input is the previous block's output (a one-block loopback)."""

    name = "software clock (no device; its input is its own output one block later)"

    def open(self, callback: Callback, sample_rate: int, block: int, with_input: bool) -> "_ClockStream":
        return _ClockStream(callback, sample_rate, block)


class _ClockStream:
    def __init__(self, callback: Callback, sample_rate: int, block: int):
        self.callback, self.period, self.block = callback, block / sample_rate, block
        self.running = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="clock-port", daemon=True)
        self.latency = (0.0, 0.0)

    def _loop(self) -> None:
        loop = np.zeros((self.block, 1), dtype=np.float32)
        due = time.perf_counter()
        while self.running.is_set():
            out = np.zeros((self.block, 1), dtype=np.float32)
            self.callback(loop, out, self.block, None, None)
            loop = out
            due += self.period
            time.sleep(max(0.0, due - time.perf_counter()))

    def start(self) -> None:
        self.running.set()
        self.thread.start()

    def stop(self) -> None:
        self.running.clear()
        if self.thread.is_alive():
            self.thread.join(timeout=5)

    def close(self) -> None:
        self.stop()


class SoundDevicePort:
    """PortAudio through ``sounddevice``: a duplex stream (input device -> callback -> output device),
    or output only when the input is a file. ``input_device`` / ``output_device``: names or indices
    (``python -m streamlib jam --list-devices``; None: the system's default)."""

    def __init__(self, input_device=None, output_device=None, latency: str | float = "low"):
        self.input_device, self.output_device, self.latency = input_device, output_device, latency
        self.name = f"sound device (input {input_device or 'default'}, output {output_device or 'default'})"

    def open(self, callback: Callback, sample_rate: int, block: int, with_input: bool):
        sd = import_sounddevice()
        try:
            if with_input:
                return sd.Stream(samplerate=sample_rate, blocksize=block, channels=(1, 1), dtype="float32",
                                 device=(self.input_device, self.output_device), latency=self.latency,
                                 callback=callback)

            def output_only(outdata, frames, time_info, status):
                callback(np.zeros((frames, 1), dtype=np.float32), outdata, frames, time_info, status)

            return sd.OutputStream(samplerate=sample_rate, blocksize=block, channels=1, dtype="float32",
                                   device=self.output_device, latency=self.latency, callback=output_only)
        except (sd.PortAudioError, ValueError) as error:
            raise LiveError(f"cannot open the sound device at {sample_rate} Hz: {error}") from error


def import_sounddevice():
    """``sounddevice``, or a ``LiveError`` saying how to get PortAudio."""
    try:
        import sounddevice
    except (ImportError, OSError) as error:
        raise LiveError(f"live audio needs sounddevice and the PortAudio library ({error}); on Debian/Ubuntu "
                        f"'apt-get install libportaudio2', then 'pip install -r requirements.txt' -- "
                        f"or run with --no-device") from error
    return sounddevice


def list_devices() -> str:
    """The sound devices PortAudio sees, as ``sounddevice`` prints them."""
    return str(import_sounddevice().query_devices())


# ----------------------------------------------------------------------------- the session


@dataclass
class Session:
    """What the callback and the engine loop share (positions in samples)."""

    block: int
    input_ring: SampleRing
    output_ring: SampleRing
    input_file: np.ndarray | None
    play_mix: bool
    position: int = 0  # samples moved in and out so far
    started: float = 0.0  # perf_counter when the port started: the session's time origin
    reads: list[tuple[float, int]] = field(default_factory=list)  # (callback time, first output position)
    underrun_blocks: int = 0
    device_xruns: int = 0
    captured: list[np.ndarray] = field(default_factory=list)
    played: list[np.ndarray] = field(default_factory=list)
    error: str | None = None  # set by the callback when the engine fell a whole ring behind
    end: int | None = None  # where the session ends (samples): blocks after it are silent and not counted

    @property
    def over(self) -> bool:
        """The clock has played up to ``end``."""
        return self.end is not None and self.position >= self.end

    def callback(self, indata: np.ndarray, outdata: np.ndarray, frames: int, time_info, status) -> None:
        """The audio callback: one block in, one block out (kept short: copies and counters only)."""
        now = time.perf_counter()
        p = self.position
        if self.over:  # the port has not stopped yet
            outdata[:] = 0
            return
        if status:
            self.device_xruns += 1
        if self.input_file is not None:
            x = np.zeros(frames, dtype=np.float32)
            part = self.input_file[p : p + frames]
            x[: len(part)] = part
        else:
            x = indata[:, 0].astype(np.float32)
        try:
            self.input_ring.write(p, x)
        except ValueError as error:  # never raise in PortAudio's thread: the loop reports it
            self.error = str(error)
            outdata[:] = 0
            return
        missing = self.output_ring.missing
        y = self.output_ring.read(p, frames)
        if self.output_ring.missing > missing:
            self.underrun_blocks += 1
        out = np.clip(y + MIX_INPUT_GAIN * x if self.play_mix else y, -1.0, 1.0)
        outdata[:, 0] = out
        outdata[:, 1:] = out[:, None]
        self.reads.append((now, p))
        self.captured.append(x)
        self.played.append(out)
        self.position = p + frames


def run_session(acc, codec, category: int, port: AudioPort, *, input_audio: np.ndarray | None = None,
                seconds: float | None = None, play_mix: bool | None = None, block_frames: int = 1,
                temperature: float = 1.0, top_k: int = 200, seed: int = 0, generator_kwargs: dict | None = None,
                compile_codec: bool = False, progress: Callable[[float], None] | None = None,
                on_start: Callable[[], None] | None = None) -> StreamResult:
    """Accompany live input through ``port`` until the input ends, ``seconds`` pass or Ctrl-C.

    ``input_audio``: a file's samples (``codec.sample_rate``) played as the input in real time; None:
    the port's input device. ``play_mix``: the input mixed into what is played (default: for a file).
    ``block_frames``: callback block in 50 Hz frames. The engine warms up before the port starts, and
    the chunks that need no input yet (t_f + D < 0: predicted ahead) are made before it starts too.
    ``generator_kwargs`` and ``compile_codec`` as for ``stream``; ``progress(seconds streamed)`` is
    called after every chunk; ``on_start()`` once, when the port starts. Returns the session's ``StreamResult``
    (``info``: underruns, device xruns, the simulated clock's prediction, how it stopped).
    """
    spec, sr, hop = acc.spec, codec.sample_rate, codec.hop
    limit = min(len(input_audio) / sr if input_audio is not None else float("inf"),
                float("inf") if seconds is None else seconds)
    stop_reason = "the end of the input" if seconds is None or limit < seconds else f"{seconds:g} s"
    engine = ChunkEngine(acc, codec, category, temperature=temperature, top_k=top_k, seed=seed,
                         generator_kwargs=generator_kwargs, compile_codec=compile_codec,
                         notify=(generator_kwargs or {}).get("notify"))
    n_out = None if limit == float("inf") else int(limit * sr) // hop - max(spec.tf + engine.lag, 0)
    if n_out is not None and n_out < 1:
        raise LiveError(f"{limit:.2f} s of input is too short for t_f = {spec.tf_seconds:g} s")
    warm_up_s = engine.warm_up()
    block = block_frames * hop
    capacity = 30 * sr
    session = Session(block, SampleRing(capacity), SampleRing(capacity), input_audio,
                      input_audio is not None if play_mix is None else play_mix,
                      end=None if n_out is None else int(limit * sr) // hop * hop)  # the input's last frame
    stream = port.open(session.callback, sr, block, with_input=input_audio is None)
    out_audio, out_codes, records = [], [], []
    t = 0

    def source(first: int, stop: int) -> np.ndarray:
        return session.input_ring.read(first * hop, (stop - first) * hop)

    session.started = time.perf_counter()
    running = False
    with StopRequest() as stop:  # Ctrl-C / SIGTERM set a flag checked below (never lost in a finaliser)
        try:
            # a slow engine stops with the clock; a stop request after the chunk in hand
            while (n_out is None or t < n_out) and not session.over and stop.signal is None:
                k = spec.k if n_out is None else min(spec.k, n_out - t)
                if not running and engine.needed(t) > 0:  # chunks that need no input are made before the start
                    running = _start(stream, on_start)
                while not session.input_ring.wait_for(engine.needed(t) * hop, timeout=0.1):
                    if session.error:
                        raise LiveError(f"the engine fell too far behind the input ({session.error})")
                    if session.over or stop.signal is not None:
                        break
                if session.over or stop.signal is not None:
                    break
                started = time.perf_counter()
                chunk, audio, record = engine.chunk(t, k, source)
                session.output_ring.write(t * hop, audio)
                record.index = len(records)
                record.compute_start_s = started - session.started
                record.ready_s = time.perf_counter() - session.started
                records.append(record)
                out_audio.append(audio)
                out_codes.append(chunk)
                t += k
                if progress:
                    progress(t / FRAME_RATE)
            if not running and stop.signal is None:
                running = _start(stream, on_start)
            while not session.over and not session.error and stop.signal is None:  # play what was made
                time.sleep(block / sr / 2)
        except KeyboardInterrupt:  # a second Ctrl-C while a chunk was being made
            stop_reason = "Ctrl-C"
        finally:
            stream.stop()
            stream.close()
    if stop.signal is not None:
        stop_reason = "Ctrl-C" if stop.signal == signal.SIGINT else "SIGTERM"
    result = _result(acc, engine, session, records, out_audio, out_codes, sr, category, stop_reason, warm_up_s, port)
    result.info["unmade_frames"] = 0 if n_out is None or stop_reason in ("Ctrl-C", "SIGTERM") else n_out - t
    return result


def _start(stream, on_start: Callable[[], None] | None) -> bool:
    stream.start()
    if on_start:
        on_start()
    return True


def _result(acc, engine: ChunkEngine, session: Session, records: list[ChunkRecord], out_audio, out_codes,
            sr: int, category: int, stopped: str, warm_up_s: float, port) -> StreamResult:
    """Measured wall-clock fields on every record, the simulated clock's prediction, the counters."""
    hop, block = engine.hop, session.block
    reads = {p: when - session.started for when, p in session.reads}
    block_s = block / sr
    for r in records:
        first = r.start * hop
        due = reads.get(first - first % block)
        r.deadline_s = due if due is not None else r.start * hop / sr  # not played (stopped first)
        r.audible_s = r.ready_s
        r.slack_s = r.deadline_s - r.ready_s
        r.late = r.slack_s < 0
        r.unsafe = r.late
    timing = Timing(tau_sys=block_s)
    simulated = [replace(r) for r in records]
    schedule(simulated, acc.spec.tf, timing, delay=engine.lag)
    captured = np.concatenate(session.captured) if session.captured else np.zeros(0, np.float32)
    accompaniment = np.concatenate(out_audio).astype(np.float32) if out_audio else np.zeros(0, np.float32)
    info = {
        "delay_pattern_frames": engine.lag, "jitter_mean_s": 0.0, "live": True, "port": port.name,
        "block_s": block_s, "stopped_by": stopped, "session_s": session.position / sr,
        "underrun_blocks": session.underrun_blocks, "underrun_samples": session.output_ring.missing,
        "late_samples": session.output_ring.late, "device_xruns": session.device_xruns,
        "simulated_late": sum(r.late for r in simulated),
        "played": np.concatenate(session.played) if session.played else np.zeros(0, np.float32),
        **engine_info(engine, warm_up_s),
    }
    codes = torch.cat(out_codes, dim=-1).long() if out_codes else torch.zeros(engine.n_q, 0, dtype=torch.long)
    return StreamResult(spec=acc.spec, sample_rate=sr, accompaniment=accompaniment, codes=codes,
                        input_audio=captured, records=records, timing=timing, category=int(category), info=info)


def save_session(result: StreamResult, out: str | Path) -> dict[str, Path]:
    """``StreamResult.save`` (input, accompaniment, mix, timing.json) plus ``played.wav``: what went out."""
    played = result.info.pop("played")
    paths = result.save(out)
    paths["played"] = Path(out) / "played.wav"
    save_audio(paths["played"], played, result.sample_rate)
    return paths


# ----------------------------------------------------------------------------- loopback latency


def measure_latency(port: AudioPort, sample_rate: int, *, clicks: int = 5, interval: float = 0.4,
                    block: int = 320) -> dict[str, float]:
    """Round-trip latency with the output routed to the input (a cable, or the device's loopback):
    plays ``clicks`` clicks ``interval`` seconds apart and finds each one's onset in the recorded
    input (first sample above half the loudest). Returns median and spread in seconds."""
    n = int((clicks + 1) * interval * sample_rate)
    click_at = [int((i + 0.5) * interval * sample_rate) for i in range(clicks)]
    pulses = np.zeros(n, dtype=np.float32)
    for c in click_at:
        pulses[c : c + 16] = 0.8
    recorded = np.zeros(n + block, dtype=np.float32)
    done = threading.Event()
    position = [0]

    def callback(indata, outdata, frames, time_info, status):
        p = position[0]
        part = pulses[p : p + frames]
        outdata[:] = 0
        outdata[: len(part), 0] = part
        recorded[p : p + min(frames, n + block - p)] = indata[: max(0, min(frames, n + block - p)), 0]
        position[0] = p + frames
        if position[0] >= n:
            done.set()

    stream = port.open(callback, sample_rate, block, with_input=True)
    stream.start()
    try:
        done.wait(timeout=n / sample_rate + 5)
    finally:
        stream.stop()
        stream.close()
    if not done.is_set():
        raise LiveError("the latency measurement did not finish: is the device running?")
    threshold = 0.5 * float(np.abs(recorded).max())
    if threshold <= 0:
        raise LiveError("no click came back: route the output to the input (a cable or a loopback device)")
    delays = []
    for c in click_at:
        window = np.abs(recorded[c : c + int(interval * sample_rate)])
        hits = np.nonzero(window >= threshold)[0]
        if len(hits):
            delays.append(hits[0] / sample_rate)
    if not delays:
        raise LiveError("no click came back: route the output to the input (a cable or a loopback device)")
    return {"latency_s": float(np.median(delays)), "spread_s": float(np.ptp(delays)), "clicks": len(delays)}


__all__ = ["AudioPort", "ClockPort", "LiveError", "SampleRing", "Session", "SoundDevicePort", "import_sounddevice",
           "list_devices", "measure_latency", "run_session", "save_session"]
