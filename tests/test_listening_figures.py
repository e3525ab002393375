"""The controlled listening runs as chapter 7 shows them (``streamlib.listening_figures``): the committed CSVs
merged run by run, the table of docs/listening_experiments.md, and the reliance figure."""

import csv

import pytest

from streamlib.listening_figures import RELIANCE_TYPES, listening_runs, listening_table, reliance_figure

PLAY_COLUMNS = ("system", "kind", "metric", "value", "ci_low", "ci_high")


def _write(path, columns, rows):
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, columns)
        w.writeheader()
        w.writerows(rows)


def _arm(root, arm: str, onset: float, harmony: float) -> None:
    model = f"exp_{arm}_s0"
    _write(root / f"exp_{arm}_compare.csv", ("model", "seed", "steps", "common_loss"),
           [{"model": model, "seed": 0, "steps": 10, "common_loss": 3.5}])
    _write(root / f"exp_{arm}_frame_types.csv", ("model", "type", "level", "tokens", "reliance", "share"),
           [{"model": model, "type": t, "level": level, "tokens": 5, "reliance": onset if t == "onset" else 0.001,
             "share": 0.5} for t in RELIANCE_TYPES for level in ("all", 0)])
    rows = []
    for metric in ("harmonic_agreement", "beat_f1_song"):
        rows += [{"system": "ground truth", "kind": "ground_truth", "metric": metric, "value": 0.7, "ci_low": 0.6,
                  "ci_high": 0.8},
                 {"system": "random pairing", "kind": "random_floor", "metric": metric, "value": 0.3, "ci_low": 0.25,
                  "ci_high": 0.35},
                 {"system": model, "kind": "streaming", "metric": metric, "value": harmony, "ci_low": harmony - 0.02,
                  "ci_high": harmony + 0.02},
                 {"system": f"{model} (another song's input)", "kind": "random_input", "metric": metric,
                  "value": 0.3, "ci_low": 0.28, "ci_high": 0.32}]
    _write(root / f"exp_{arm}_play_along.csv", PLAY_COLUMNS, rows)


def test_runs_merge_the_three_files_of_each_arm(tmp_path):
    _arm(tmp_path, "a", onset=0.002, harmony=0.31)
    _arm(tmp_path, "b", onset=0.02, harmony=0.5)
    runs = listening_runs(("a", "b"), tmp_path)
    assert [r["run"] for r in runs] == ["a_s0", "b_s0"] and [r["arm"] for r in runs] == ["a", "b"]
    a, b = runs
    assert a["reliance"]["onset"] == 0.002 and b["reliance"]["onset"] == 0.02
    assert set(a["reliance"]) == set(RELIANCE_TYPES)
    assert a["val_loss"] == 3.5 and a["steps"] == 10 and a["seed"] == 0
    assert a["play_along"]["harmonic_agreement"] == pytest.approx((0.31, 0.29, 0.33))
    assert a["control"]["beat_f1_song"] == 0.3 and a["floor"]["beat_f1_song"] == (0.3, 0.25, 0.35)
    assert a["above_floor"] == {"harmonic_agreement": False, "beat_f1_song": False}   # 0.29: inside the floor's CI
    assert b["above_floor"] == {"harmonic_agreement": True, "beat_f1_song": True}
    header, rows = listening_table(runs)
    assert len(rows) == 4 and all(len(row) == len(header) for row in rows)   # two runs, one ceiling, one floor (shared)
    assert rows[-2][0] == "ground truth" and rows[-1][0] == "random pairing" and rows[0][3] == "+0.0020"
    fig = reliance_figure(runs)
    assert [t.name for t in fig.data] == ["a_s0", "b_s0"] and list(fig.data[1].x) == list(RELIANCE_TYPES)
    assert fig.data[1].y[1] == 0.02 and fig.data[0].marker.color != fig.data[1].marker.color


def test_a_missing_file_names_the_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="streamlib compare"):
        listening_runs(("nope",), tmp_path)


def test_the_committed_runs_are_the_documented_ones():
    """results/listening (docs/listening_experiments.md, chapter 7): two arms x two seeds at 1,000 steps; history
    noise relies more on the input at onsets and chord changes in both seeds; nothing is above the floor."""
    runs = listening_runs()
    assert [r["run"] for r in runs] == ["paper_s0", "paper_s1", "noise30_s0", "noise30_s1"]
    at = {(r["arm"], r["seed"]): r for r in runs}
    assert at["paper", 0]["reliance"]["onset"] == pytest.approx(0.004691462963819504)
    assert at["noise30", 1]["val_loss"] == pytest.approx(3.6155693158507347)
    for seed in (0, 1):
        for t in ("onset", "chord change"):
            assert at["noise30", seed]["reliance"][t] > 2 * at["paper", seed]["reliance"][t]
    assert not any(any(r["above_floor"].values()) for r in runs) and all(len(r["above_floor"]) == 2 for r in runs)
    assert len({tuple(r["floor"].items()) for r in runs}) == 1   # the same clips, the same floor for every arm


def test_the_gap_table_reads_the_paired_rows(tmp_path):
    from streamlib.listening_figures import gap_table
    from streamlib.sweep import write_csv

    def row(system, kind, value, low, high, note="mean over clips"):
        return {"system": system, "kind": kind, "metric": "harmonic_agreement", "value": value, "ci_low": low,
                "ci_high": high, "n": 22, "note": note}

    prompt = "continuation after a 2 s true-stem prompt; "
    write_csv([row("random pairing", "random_floor", 0.28, 0.25, 0.33, prompt),
               row("ground truth through the codec (4 levels)", "codec_ceiling", 0.42, 0.38, 0.46, prompt),
               row("m", "streaming", 0.36, 0.32, 0.40, prompt), row("m (another song's input)", "random_input",
                                                                   0.34, 0.30, 0.38, prompt),
               row("m (own input minus another song's)", "listening_gap", 0.019, 0.003, 0.035, prompt + "paired"),
               row("old", "streaming", 0.3, 0.2, 0.4)], tmp_path / "p.csv")  # no gap row: left out
    header, rows = gap_table([tmp_path / "p.csv"])
    assert len(header) == len(rows[0]) == 7
    assert rows == [("m", "continued after a 2 s true-stem prompt", "0.360 [0.320, 0.400]", "0.340 [0.300, 0.380]",
                     "+0.019 [+0.003, +0.035]", "0.280 [0.250, 0.330]", "0.420 [0.380, 0.460]")]
    from streamlib.listening_figures import listening_gaps

    assert listening_gaps([tmp_path / "p.csv"]) == {"m": (0.019, 0.003, 0.035)}
    assert listening_gaps([tmp_path / "p.csv"], metric="beat_f1_song") == {}


def test_the_committed_bass_runs_listen_in_generation():
    """docs/listening_experiments.md, "One instrument": on the same bass windows and clips, the bass-only models
    rely on their input more than twice as much as the all-instrument ones, and their paired beat-F1 gap is clear
    of zero in both seeds; nothing is above the floor yet."""
    from streamlib.listening_figures import LISTENING_DIR, listening_gaps

    runs = {(r["arm"], r["seed"]): r for r in listening_runs(("bass", "noise30_onbass"), experiment="c3k")}
    files = [LISTENING_DIR / f"c3k_{arm}_play_along.csv" for arm in ("bass", "noise30_onbass")]
    beat = listening_gaps(files, metric="beat_f1_song")
    for seed in (0, 1):
        bass, every = runs["bass", seed], runs["noise30_onbass", seed]
        assert bass["reliance"]["all"] > 2 * every["reliance"]["all"]
        assert bass["val_loss"] < every["val_loss"] - 0.2
        assert beat[f"c3k_bass_noise30_s{seed}"][1] > 0 >= beat[f"c3k_noise30_s{seed}"][1]
        assert not any(bass["above_floor"].values())
