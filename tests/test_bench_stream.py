"""``python -m streamlib bench stream``: the busy-core helper starts and stops its process; tiling."""

import os

import numpy as np
import pytest

from streamlib.bench import stream as bench


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs two cores and CPU affinity")
def test_busy_core_runs_on_another_core_and_stops():
    before = os.sched_getaffinity(0)
    with bench.BusyCore() as busy:
        assert busy.proc.poll() is None  # running
        mine, its = os.sched_getaffinity(0), os.sched_getaffinity(busy.proc.pid)
        assert len(mine) == 1 and len(its) == 1 and mine != its
    assert busy.proc.poll() is not None and os.sched_getaffinity(0) == before


def test_tiled_input_covers_the_stream():
    x = bench._tiled(np.arange(100, dtype=np.float32), 2.0, sample_rate=60)
    assert len(x) == 150 and np.array_equal(x[100:], np.arange(50))
