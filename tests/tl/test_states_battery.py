"""benchmarks/states_battery.py: README's generator tables are aggregated as README states them."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import hcctme
from benchmarks import states_battery
from benchmarks.states_battery import ari_intervals, frames, pair_of, parent_table, runs, state_table


def _result(setting: str, seed: int, ece: float, ari: dict[str, float], states: dict[str, tuple[int, float, float]],
            hidden: tuple[str, ...] = ()) -> dict:
    """A cohort's evaluation as :func:`benchmarks.states_battery.cohort` returns it (state -> n_called, recall,
    precision; the ``hidden`` states' shared genes not induced)."""
    table = pd.DataFrame([(s, 10, n, r, p, 0.0 if s in hidden else 1.0) for s, (n, r, p) in states.items()],
                         columns=["state", "n_true", "n_called", "recall", "precision", "shared_induced"])
    table = table.set_index("state")
    return {"setting": setting, "seed": seed, "ece": ece, "ari": pd.Series(ari, name="ARI"), "states": table}


def test_agreement_table_splits_the_state_calls_at_the_warning_line():
    states = pd.DataFrame({"state": ["A", "B", "C", "D", "E"], "n_true": 10, "n_called": [8, 9, 5, 0, 4],
                           "recall": [0.9, 0.8, 0.3, 0.0, 0.5], "precision": [0.8, 1.0, 0.6, 0.0, 0.8],
                           "seeding_agreement": [1.0, 0.95, 0.5, np.nan, np.nan], "setting": "10x", "seed": 200})
    table = states_battery.agreement_table(states)  # D is not called, E was seeded once: neither is read
    assert table.loc["not warned", "state calls"] == 2 and table.loc["warned", "state calls"] == 1
    assert table.loc["not warned", "mean recall"] == pytest.approx(0.85)
    assert table.loc["not warned", "mean precision"] == pytest.approx(0.9)
    assert table.loc["not warned", "share on target"] == pytest.approx(0.5)  # B; A's precision 0.8 is under 0.85
    assert table.loc["warned", "mean agreement"] == pytest.approx(0.5)
    assert table.loc["warned", "share on target"] == 0.0


def test_pair_of_names_the_first_seed():
    assert [pair_of(s, [200, 202, 300]) for s in (200, 201, 202, 203, 301)] == [200, 200, 202, 202, 300]


def test_parent_table_means_over_pairs_and_names_the_worst_pair():
    results = [_result("10x", 200, 0.01, {"T": 0.5}, {}), _result("10x", 201, 0.03, {"T": 0.7}, {}),
               _result("10x", 300, 0.05, {"T": 0.9}, {}), _result("10x", 301, 0.09, {"T": 0.1}, {}),
               _result("noisy", 200, 0.02, {"T": 0.2}, {}), _result("noisy", 201, 0.02, {"T": 0.4}, {})]
    table = parent_table(frames(results)[0], [200, 300])
    assert list(table.index) == ["10x", "noisy"]  # the settings in the order run
    assert list(table.columns) == ["T", "ECE", "ECE highest pair", "its pair"]
    assert table.loc["10x", "T"] == pytest.approx(0.55)
    assert table.loc["10x", "ECE"] == pytest.approx(0.045)
    assert table.loc["10x", "ECE highest pair"] == pytest.approx(0.07)
    assert table.loc["10x", "its pair"] == 300
    assert table.loc["noisy", "T"] == pytest.approx(0.3)


def test_state_table_reads_precision_only_where_the_state_is_called():
    results = [_result("10x", 200, 0.0, {}, {"A": (5, 0.9, 0.9), "B": (0, 0.0, 0.0)}),
               _result("10x", 201, 0.0, {}, {"A": (5, 0.75, 0.82), "B": (4, 0.5, 1.0)}),
               _result("10x", 300, 0.0, {}, {"A": (5, 0.9, 0.9), "B": (0, 0.0, 0.0)}),
               _result("10x", 301, 0.0, {}, {"A": (5, 0.9, 0.95), "B": (0, 0.0, 0.0)})]
    table = state_table(frames(results)[1], [200, 300])
    a, b = table.loc["A"], table.loc["B"]
    assert a["runs"] == 2 and a["runs without a call"] == 0
    # pair 200: recall 0.825, precision 0.86 (on target); pair 300: recall 0.9, precision 0.925
    assert a["mean recall"] == pytest.approx(0.8625) and a["mean precision"] == pytest.approx(0.8925)
    assert a["lowest pair precision"] == pytest.approx(0.86) and a["runs on target"] == 2
    # B: seed 200 calls nothing (its precision 0 is no precision), seed 201 precision 1.0; pair 300 calls nothing
    assert b["mean recall"] == pytest.approx(0.125)
    assert b["mean precision"] == pytest.approx(1.0) and b["lowest pair precision"] == pytest.approx(1.0)
    assert b["runs without a call"] == 1 and b["runs on target"] == 0
    assert a["seeds hidden"] == 0 and a["recall where seen"] == pytest.approx(a["mean recall"])


def test_state_table_reads_recall_apart_where_the_shared_genes_were_not_induced():
    results = [_result("10x", 200, 0.0, {}, {"A": (0, 0.0, 0.0)}, hidden=("A",)),
               _result("10x", 201, 0.0, {}, {"A": (9, 0.9, 1.0)}),
               _result("10x", 300, 0.0, {}, {"A": (7, 0.7, 1.0)})]
    row = state_table(frames(results)[1], [200, 300]).loc["A"]
    assert row["seeds hidden"] == 1
    assert row["mean recall"] == pytest.approx(0.575)  # pairs 0.45 and 0.7 (seed 301 absent)
    assert row["recall where seen"] == pytest.approx(0.8)


def test_overlapping_pairs_are_refused(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["states_battery.py", "--pairs", "200", "201"])
    with pytest.raises(SystemExit):
        states_battery.main()
    assert "--pairs 200 and 201 overlap" in capsys.readouterr().err


def test_runs_evaluates_both_seeds_of_each_pair():
    results = runs(["10x"], [100], cells=80, patients=4, jobs=1)
    assert [(r["setting"], r["seed"]) for r in results] == [("10x", 100), ("10x", 101)]
    parents, states = frames(results)
    table = parent_table(parents, [100])
    assert "CD8+ T cells" in table.columns and np.isfinite(table.loc["10x", "ECE"])
    states = state_table(states, [100])
    assert (states["runs"] == 1).all() and "TREG" in states.index
    # the generator records the genes it left out: MME, NEU_CD10_ALPL's one gene shared with the library, is
    # induced in seed 100 and not in seed 101
    assert states.loc["NEU_CD10_ALPL", "seeds hidden"] == 1


def test_generator_records_the_genes_it_left_out_without_changing_the_cohort():
    from tests.tl._state_generator import PROGRAMMES, generate, shared_induced

    adata = generate("10x", seed=101, n_patients=4, cells_per_patient=80)
    left_out = adata.uns["state_generator"]["not_induced"]
    assert "MME" in left_out["NEU_CD10_ALPL"] and set(left_out["NEU_CD10_ALPL"]) <= set(PROGRAMMES["NEU_CD10_ALPL"])
    assert shared_induced(adata, "NEU_CD10_ALPL") == 0.0  # MME is the one gene it shares with MME / ALPL / NTRK1
    assert shared_induced(adata, "ENDO_ONCOFETAL_PLVAP") == 1.0  # PLVAP induced
    # the not-induced genes are those without a programme effect: their counts do not follow the state
    mme = adata[:, "MME"].X.toarray().ravel()
    neutrophils = adata.obs["cell_type"].astype(str).to_numpy() == "Neutrophils"
    state = adata.obs["programme"].astype(str).to_numpy() == "NEU_CD10_ALPL"
    assert mme[neutrophils & state].mean() < 2 * mme[neutrophils & ~state].mean() + 0.5
    del adata.uns["state_generator"]["not_induced"]
    assert np.isnan(shared_induced(adata, "NEU_CD10_ALPL"))


def test_load_aggregates_what_save_wrote(tmp_path, monkeypatch, capsys):
    results = [_result("10x", 200, 0.01, {"T": 0.5}, {"A": (5, 0.9, 0.9)}),
               _result("10x", 201, 0.03, {"T": 0.7}, {"A": (5, 0.7, 0.8)}),
               _result("noisy_10x", 200, 0.02, {"T": 0.2}, {"A": (5, 0.5, 0.5)}),
               _result("noisy_10x", 201, 0.02, {"T": 0.4}, {"A": (5, 0.5, 0.5)})]
    parents, states = frames(results)
    parents.to_csv(tmp_path / "parents.csv", index=False)
    states.to_csv(tmp_path / "states.csv", index=False)
    monkeypatch.setattr(sys, "argv", ["states_battery.py", "--load", str(tmp_path), "--settings", "10x",
                                      "--pairs", "200", "--markdown"])
    states_battery.main()
    out = capsys.readouterr().out
    assert "per state over the 1 (setting, pair) runs" in out and "noisy_10x" not in out
    assert "0.600" in out and "0.020" in out  # 10x: ARI mean of 0.5 and 0.7, ECE mean of 0.01 and 0.03


def test_load_names_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["states_battery.py", "--load", str(tmp_path)])
    with pytest.raises(FileNotFoundError, match=r"parents\.csv"):
        states_battery.main()
    frames([_result("10x", 200, 0.01, {"T": 0.5}, {})])[0].to_csv(tmp_path / "parents.csv", index=False)
    monkeypatch.setattr(sys, "argv", ["states_battery.py", "--load", str(tmp_path), "--pairs", "300"])
    with pytest.raises(ValueError, match="no cohort"):
        states_battery.main()


def test_ari_intervals_are_parent_table_means_with_their_spread_over_pairs():
    """Identical pairs leave no spread; a setting whose pairs straddle 0.8 holds it inside; the means are
    :func:`parent_table`'s."""
    flat = {"A": 0.9, "B": 0.5}
    results = [_result("10x", seed, 0.01, flat, {}) for seed in (200, 201, 202, 203)]
    results += [_result("smartseq", seed, 0.01, {"A": a, "B": 0.81}, {})
                for seed, a in ((200, 0.72), (201, 0.72), (202, 0.9), (203, 0.9))]
    # seeds that differ within each pair but not between pairs: the pairs' means are both 0.81, no spread over pairs
    results += [_result("deep_10x", seed, 0.01, {"A": a, "B": 0.5}, {})
                for seed, a in ((200, 0.72), (201, 0.9), (202, 0.72), (203, 0.9))]
    parents = frames(results)[0]
    intervals = ari_intervals(parents, [200, 202], draws=500)
    means = parent_table(parents, [200, 202])
    for (setting, parent), row in intervals.iterrows():
        assert row["mean"] == pytest.approx(means.loc[setting, parent]) and row["pairs"] == 2
        assert row["low"] <= row["mean"] <= row["high"]
    ten_a, ten_b = intervals.loc[("10x", "A")], intervals.loc[("10x", "B")]
    assert ten_a["low"] == ten_a["high"] == pytest.approx(0.9) and ten_a["reading"] == "interval over"
    assert ten_b["reading"] == "interval under"
    smart_a = intervals.loc[("smartseq", "A")]  # pairs at 0.72 and 0.9: mean 0.81, the interval spans both
    assert smart_a["low"] == pytest.approx(0.72) and smart_a["high"] == pytest.approx(0.9)
    assert smart_a["reading"] == "at or above, 0.8 inside"
    assert intervals.loc[("smartseq", "B"), "reading"] == "interval over"  # 0.81 in every pair
    deep_a = intervals.loc[("deep_10x", "A")]  # resampling seeds instead of pairs would straddle 0.8 here
    assert deep_a["low"] == deep_a["high"] == pytest.approx(0.81) and deep_a["reading"] == "interval over"
    missing = parents.assign(C=np.where(parents["setting"] == "10x", np.nan, 0.9))  # a parent 10x never has
    with_missing = ari_intervals(missing, [200, 202], draws=100)
    assert with_missing.loc[("10x", "C"), "reading"] == "no pairs" and with_missing.loc[("10x", "C"), "pairs"] == 0
    assert with_missing.loc[("smartseq", "C"), "pairs"] == 2
    pd.testing.assert_frame_equal(intervals, ari_intervals(parents, [200, 202], draws=500))


RECORDED = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "states_battery_2.39"
README_LABELS = {"10x": "10x (3,000 UMI)", "smartseq": "Smart-seq (60,000 reads)", "noisy_10x": "noisy shallow 10x",
                 "stress_high": "high stress (25 %)", "deep_10x": "held out: deep_10x (8,000 UMI)",
                 "mid_10x": "held out: mid_10x (2,200 UMI, more noise and stress)",
                 "doublets_10x": "held out: doublets_10x (12 % doublets, 12 % ambient)",
                 "transitional_10x": "held out: transitional_10x (continua, 25 % of programme genes dropped)",
                 "shallow_smartseq": "held out: shallow_smartseq (20,000 reads, 15 % stress)"}


def test_readme_generator_tables_are_the_recorded_battery():
    """README's generator tables (per setting, per state) are the recorded ``states_battery.py --save`` run's output."""
    readme = (RECORDED.parents[2] / "README.md").read_text()
    parents = pd.read_csv(RECORDED / "parents.csv")
    states = pd.read_csv(RECORDED / "states.csv")
    assert len(parents) == 126 and set(parents["setting"]) == set(README_LABELS)
    table = parent_table(parents, list(states_battery.PAIRS))
    for setting, row in table.iterrows():
        line = readme_parent_row(str(setting), row)
        assert line in readme, line
    for state, row in state_table(states, list(states_battery.PAIRS)).iterrows():
        seen = int(((states["state"] == state) & (states["shared_induced"] != 0)).sum())
        line = readme_state_row(str(state), row, seen)
        assert line in readme, line


def test_readme_ari_intervals_are_the_recorded_battery():
    """README's count of per-parent ARI intervals over, holding and under 0.8 is the recorded run's."""
    readme = " ".join((RECORDED.parents[2] / "README.md").read_text().split())
    intervals = ari_intervals(pd.read_csv(RECORDED / "parents.csv"), list(states_battery.PAIRS))
    counts = intervals["reading"].value_counts()
    assert counts.to_dict() == {"interval over": 27, "interval under": 17, "below, 0.8 inside": 5,
                                "at or above, 0.8 inside": 5}
    named = {reading: set(rows.index) for reading, rows in intervals.groupby("reading")}
    # the README's lists, in its words
    assert named["at or above, 0.8 inside"] == {("stress_high", "CAFs"), ("deep_10x", "Neutrophils"),
                                                ("mid_10x", "CD8+ T cells"), ("transitional_10x", "CD8+ T cells"),
                                                ("doublets_10x", "CAFs")}
    assert named["below, 0.8 inside"] == {("10x", "Neutrophils"), ("smartseq", "Neutrophils"),
                                          ("doublets_10x", "Neutrophils"), ("shallow_smartseq", "Neutrophils"),
                                          ("noisy_10x", "CD4+ T cells")}
    assert named["interval under"] == ({(s, "Endothelial cells") for s in README_LABELS}
                                       | {("noisy_10x", p) for p in ("CD8+ T cells", "Macrophages", "Neutrophils",
                                                                     "CAFs")}
                                       | {(s, "Neutrophils") for s in ("stress_high", "mid_10x", "transitional_10x")}
                                       | {("mid_10x", "CAFs")})
    assert "27 intervals lie over 0.8 and 17 under it" in readme
    assert "10 hold it: five means at or above" in readme and "and five below" in readme


def test_readme_agreement_line_is_the_recorded_battery():
    """README's figures of the seedings' agreement on the generator are the recorded run's :func:`agreement_table`."""
    readme = (RECORDED.parents[2] / "README.md").read_text()
    table = states_battery.agreement_table(pd.read_csv(RECORDED / "states.csv"))
    assert readme_agreement_line(table) in " ".join(readme.split()), readme_agreement_line(table)


def readme_agreement_line(table: pd.DataFrame) -> str:
    """README's sentence of the generator's warned and not-warned state calls from :func:`agreement_table`."""
    warned, kept = table.loc["warned"], table.loc["not warned"]
    total = int(warned["state calls"] + kept["state calls"])
    return (f"{int(warned['state calls'])} of the {total:,} (state, cohort) calls are warned of (mean agreement "
            f"{warned['mean agreement']:.2f}, recall {warned['mean recall']:.2f}, precision "
            f"{warned['mean precision']:.2f}, {warned['share on target']:.0%} on target), the others read "
            f"{kept['mean agreement']:.2f}, {kept['mean recall']:.2f}, {kept['mean precision']:.2f} and "
            f"{kept['share on target']:.0%}")


def readme_parent_row(setting: str, row: pd.Series) -> str:
    """README's per-setting table row of ``setting`` from its :func:`parent_table` row."""
    columns = ["CD8+ T cells", "CD4+ T cells", "Macrophages", "Neutrophils", "CAFs", "Endothelial cells"]
    worst = f"{row['ECE highest pair']:.3f}"
    if row["ECE highest pair"] > 0.05:  # README marks a pair over the ECE target
        worst = f"**{worst}**, seeds {int(row['its pair'])}-{int(row['its pair']) + 1}"
    figures = " | ".join(f"{row[c]:.3f}" for c in columns)
    return f"| {README_LABELS[setting]} | {figures} | {row['ECE']:.3f} ({worst}) |"


def readme_state_row(state: str, row: pd.Series, seen: int) -> str:
    """README's per-state table row of ``state`` from its :func:`state_table` row (``seen``: its cohorts that
    induced a gene its programme shares with the library's list)."""
    from tests.tl._state_generator import PROGRAMMES

    recall = f"{row['mean recall']:.2f}"
    if row["seeds hidden"]:
        shared = ", ".join(sorted(set(hcctme.sig.get(state).genes_up) & set(PROGRAMMES[state])))
        recall += f"; {row['recall where seen']:.2f} in the {seen} cohorts that induced {shared}"
    silent = ""
    if row["runs without a call"]:
        silent = f"; no call in either seed of {row['runs without a call']:.0f} pair" + (
            "s" if row["runs without a call"] > 1 else "")
    return (f"| {state} | {recall} | {row['mean precision']:.2f} ({row['lowest pair precision']:.2f}){silent} | "
            f"{row['runs on target']:.0f} |")


def test_cohort_moves_count_each_figures_moves_and_name_the_largest():
    base = pd.DataFrame({"setting": ["10x", "10x", "noisy"], "seed": [200, 201, 200], "ECE": [0.02, 0.02, 0.05],
                         "T": [0.5, 0.8, 0.3]})
    new = base.assign(ECE=[0.02, 0.03, 0.05], T=[0.6, 0.7, 0.31])
    moves = states_battery.cohort_moves(new, base)
    assert list(moves.index) == ["ECE", "T"]
    t = moves.loc["T"]
    assert t["mean change"] == pytest.approx((0.1 - 0.1 + 0.01) / 3)
    assert (t["up"], t["down"]) == (1, 1)  # 0.01 is within the 0.02 threshold
    assert t["largest fall"] == pytest.approx(-0.1) and t["fall cohort"] == "10x 201"
    assert t["largest rise"] == pytest.approx(0.1) and t["rise cohort"] == "10x 200"
    assert moves.loc["ECE", "up"] == 0 and moves.loc["ECE", "largest rise"] == pytest.approx(0.01)
    # only the cohorts both runs hold are compared; none in common is an error, not an empty table
    assert states_battery.cohort_moves(new.iloc[:1], base).loc["T", "up"] == 1
    with pytest.raises(ValueError, match="no cohort"):
        states_battery.cohort_moves(new.assign(seed=[300, 301, 300]), base)


def test_against_prints_the_moves_from_another_saved_run(tmp_path, monkeypatch, capsys):
    for name, shift in (("old", 0.0), ("new", 0.1)):
        folder = tmp_path / name
        folder.mkdir()
        results = [_result("10x", seed, 0.01, {"T": 0.5 + shift * (seed == 200)}, {"A": (5, 0.9, 0.9)})
                   for seed in (200, 201)]
        parents, states = frames(results)
        parents.to_csv(folder / "parents.csv", index=False)
        states.to_csv(folder / "states.csv", index=False)
    monkeypatch.setattr(sys, "argv", ["states_battery.py", "--load", str(tmp_path / "new"), "--against",
                                      str(tmp_path / "old"), "--settings", "10x", "--pairs", "200"])
    states_battery.main()
    out = capsys.readouterr().out
    assert "per cohort against" in out and "10x 200" in out
