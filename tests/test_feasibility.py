"""Deployability (paper 3.4): latency and throughput conditions on the (t_f, k) plane."""

import pytest

from streamlib.config import ConfigError
from streamlib.feasibility import (
    check,
    feasibility_figure,
    feasibility_grid,
    linear_t_gen,
    max_deployable_tf,
    table_t_gen,
)

FAST = linear_t_gen(0.0, 0.001)  # 1 ms per frame: throughput always fine


def test_latency_condition_uses_the_lead():
    # tau_sys + tau_jitter = 0.15 s = 7.5 frames -> need -tf >= 7.5, i.e. tf <= -8
    assert check(-8, 1, 0.1, 0.05, FAST).latency_ok
    assert not check(-7, 1, 0.1, 0.05, FAST).latency_ok
    assert max_deployable_tf(0.1, 0.05) == -8
    assert max_deployable_tf(0.1, 0.1) == -10  # exactly on a frame boundary
    for tf in (0, 1, 50):  # synchronous and lookahead are never real-time deployable
        assert not check(tf, 1, 0.001, 0.0, FAST).latency_ok


def test_throughput_condition():
    t_gen = linear_t_gen(0.05, 0.01)  # 50 ms per call + 10 ms per frame (20 ms of audio)
    assert not check(-50, 2, 0.1, 0.0, t_gen).throughput_ok  # 70 ms > 40 ms
    assert check(-50, 5, 0.1, 0.0, t_gen).throughput_ok  # 100 ms <= 100 ms
    assert check(-50, 10, 0.1, 0.0, t_gen).throughput_ok


def test_gen_in_latency_adds_the_chunk_time():
    t_gen = linear_t_gen(0.0, 0.01)
    c = check(-10, 10, 0.1, 0.0, t_gen)
    assert c.latency_ok and c.required_lead_s == pytest.approx(0.1)
    c = check(-9, 10, 0.1, 0.0, t_gen, gen_in_latency=True)
    assert not c.latency_ok and c.required_lead_s == pytest.approx(0.2)


def test_grid_pairs_status_and_reasons():
    g = feasibility_grid(range(-20, 6, 5), [1, 2, 5, 10], 0.1, 0.05, linear_t_gen(0.02, 0.005))
    assert g.feasible.shape == (4, 6)
    assert set(g.pairs()) == {(tf, k) for tf in (-20, -15, -10) for k in (2, 5, 10)}
    assert g.status[0][0] == "throughput" and g.status[0][-1] == "both" and g.status[-1][-1] == "latency"
    assert g.reasons[0][0].startswith("throughput") and g.reasons[-1][0].startswith("feasible")
    assert "latency" in g.reasons[-1][-1]
    fig = feasibility_figure(g)
    assert len(fig.data) == 1 and len(fig.data[0].z) == 4


def test_table_t_gen_interpolates_and_refuses_to_extrapolate():
    t_gen = table_t_gen({1: 0.03, 5: 0.07})
    assert t_gen(3) == pytest.approx(0.05) and t_gen(5) == pytest.approx(0.07)
    with pytest.raises(ConfigError):
        t_gen(6)


@pytest.mark.parametrize(
    "args",
    [(-10, 0, 0.1, 0.0), (-10, 1, 0.0, 0.0), (-10, 1, 0.1, -0.1), (0.5, 1, 0.1, 0.0), (-10, 1, float("nan"), 0.0)],
)
def test_bad_inputs_raise(args):
    with pytest.raises(ConfigError):
        check(*args, FAST)


def test_bad_t_gen_raises():
    with pytest.raises(ConfigError):
        check(-10, 1, 0.1, 0.0, lambda k: -1.0)
    with pytest.raises(ConfigError):
        linear_t_gen(-0.1, 0.0)
