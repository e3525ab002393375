"""The engine's compiled codec streams (chapter 8): the same codes and audio as the codec's own stream
encoder and decoder over any chunking, compiled or eager; a compiler failure falls back with a note."""

import dataclasses

import pytest
import torch
from torch._dynamo.utils import counters

from streamlib import fastcodec
from streamlib.codec import CausalCodec
from streamlib.config import get_preset
from streamlib.fastcodec import FrameDecoder, FrameEncoder
from streamlib.model.fast import compile_settings


@pytest.fixture(scope="module", params=["dac", "spectral", "spectral-oscillators-low-window"])
def codec(request):
    """The waveform DAC and the frame-rate codec (small, with the shipped codec's 4-hop synthesis window; and
    with semitone oscillators and the encoder's low-band window, both given random weights so that they act)."""
    torch.manual_seed(0)
    cfg = get_preset("debug").codec
    if request.param.startswith("spectral"):
        cfg = dataclasses.replace(cfg, arch="spectral", width=16, encoder_blocks=2, decoder_blocks=3, latent=16,
                                  analysis_fft=1024, decoder_overlap=4)
    if request.param == "spectral-oscillators-low-window":
        cfg = dataclasses.replace(cfg, oscillators=48, analysis_low_fft=4096)
    codec = CausalCodec(cfg)
    if cfg.arch == "spectral" and cfg.oscillators:
        torch.nn.init.normal_(codec.model.decoder.osc_net.out.weight, std=0.5)
        torch.nn.init.normal_(codec.model.encoder.net.extra.weight, std=0.5)
    return codec


@pytest.mark.parametrize("dilation", [1, 2, 4])
def test_a_frame_conv_written_as_taps_equals_the_convolution(dilation):
    """What the compiled steps trace instead of the depth-wise convolution (``FrameConv.taps``)."""
    from streamlib.codec.spectral import FrameConv

    torch.manual_seed(0)
    conv = FrameConv(8, 3, dilation)
    buf = torch.randn(2, 8, conv.context + 5)
    torch.testing.assert_close(conv.taps(buf), conv.conv(buf))


def streamed(codec, enc, dec, audio, cuts):
    codes, out = [], []
    for a, b in zip(cuts[:-1], cuts[1:]):
        c = enc.push(audio[a:b])
        codes.append(c)
        out.append(dec.push(c))
    return torch.cat(codes, -1), torch.cat(out, -1)


@pytest.mark.parametrize("compile", [False, True])
def test_frame_streams_equal_the_codec_streams(codec, compile):
    audio = 0.3 * torch.randn(codec.hop * 23, generator=torch.Generator().manual_seed(1))
    cuts = [0, 5, codec.hop, codec.hop * 3 + 7, codec.hop * 10, codec.hop * 23]  # partial frames wait
    ref = streamed(codec, codec.stream_encoder(1, 4), codec.stream_decoder(1), audio, cuts)
    graphs = counters["stats"]["unique_graphs"]
    with compile_settings():
        enc, dec = FrameEncoder(codec, 4, compile=compile), FrameDecoder(codec, compile=compile)
        got = streamed(codec, enc, dec, audio, cuts)
    assert enc.step.compiled == compile and dec.step.compiled == compile
    # pushes of any length reuse the step's graphs: at most two per step (the zero state's strides and the
    # steady state's), not one more per push length (a frame sliced from a longer push keeps its strides)
    assert counters["stats"]["unique_graphs"] - graphs <= (4 if compile else 0)
    assert torch.equal(got[0], ref[0]) and got[0].shape == (1, 4, 23)
    assert torch.allclose(got[1], ref[1], atol=1e-5)


def test_a_compiler_failure_falls_back_to_the_eager_steps(codec, monkeypatch):
    def broken(*args):
        raise RuntimeError("inductor exploded")

    monkeypatch.setattr(fastcodec, "compiled_steps", lambda c: (broken, broken))
    notes = []
    enc, dec = FrameEncoder(codec, 4, notify=notes.append), FrameDecoder(codec, notify=notes.append)
    audio = 0.3 * torch.randn(codec.hop * 4, generator=torch.Generator().manual_seed(2))
    got = streamed(codec, enc, dec, audio, [0, codec.hop * 4])
    ref = streamed(codec, codec.stream_encoder(1, 4), codec.stream_decoder(1), audio, [0, codec.hop * 4])
    assert torch.equal(got[0], ref[0]) and not enc.step.compiled and not dec.step.compiled
    assert notes == ["torch.compile failed for the codec's encoder step (RuntimeError: inductor exploded); it runs "
                     "eagerly", "torch.compile failed for the codec's decoder step (RuntimeError: inductor exploded); "
                     "it runs eagerly"]


def test_bench_codec_reports_the_compiled_frame_steps_next_to_the_plain_streams(codec):
    """``bench codec`` (and the codec card's speed) measure the engine's compiled steps in the same run."""
    from streamlib.bench.codec import measure

    speeds = measure(codec, seconds=0.2, chunks=[1], repeats=1)
    for row in ("enc+dec stream 1f", "encode fast 1f", "decode fast 1f", "enc+dec fast 1f"):
        assert speeds[row] > 0
    te, td = 1 / speeds["encode fast 1f"], 1 / speeds["decode fast 1f"]
    assert speeds["enc+dec fast 1f"] == pytest.approx(1 / (te + td))
