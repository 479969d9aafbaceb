"""signatures/VALIDATION.md is generated from the real labelled datasets under tests/data and stays true."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest

from tests.sig import validation as v


@pytest.fixture(scope="module")
def results() -> v.Results:
    return v.run()


def test_table_is_regenerated_by_the_suite(results):
    committed = v.TABLE_PATH.read_text()
    assert v.render(results) == committed, f"signatures/VALIDATION.md is out of date: run `{v.REGENERATE}`"


def test_signatures_marked_validated_reach_the_bar(results):
    best = results.best_auroc()
    claimed = [s.id for s in results.library if getattr(s, "validated", None) is True]
    below = {i: (None if i not in best.index else round(float(best[i]), 3)) for i in claimed
             if i not in best.index or not best[i] >= v.AUROC_PASS}
    assert below == {}, f"signatures marked validated without AUROC >= {v.AUROC_PASS} on a real dataset: {below}"


def test_states_validated_in_the_committed_table_still_reach_the_bar(results):
    marked = v.validated_in_table(v.TABLE_PATH.read_text())
    assert marked, "the committed table marks no state as validated"
    best = results.best_auroc()
    dropped = {i: (round(float(best[i]), 3) if i in best.index else None) for i in sorted(marked)
               if i not in best.index or not best[i] >= v.AUROC_PASS}
    assert dropped == {}, f"validated in signatures/VALIDATION.md but now below AUROC {v.AUROC_PASS}: {dropped}"


def test_every_dataset_has_provenance_and_known_labels(results):
    assert results.scored, "no dataset under tests/data has a mapping.yaml"
    library_ids = set(results.library.ids)
    for scored in results.scored:
        ds = scored.dataset
        assert (ds.path.parent / "PROVENANCE.md").is_file(), ds.name
        assert ds.path.stat().st_size < 5_000_000, f"{ds.path} is too large to ship"
        assert set(ds.contexts) == set(scored.labels.unique()), f"{ds.name}: mapping.yaml must list every label"
        unknown = {s.signature for s in ds.states} - library_ids
        assert unknown == {sig for name, sig in results.not_in_library() if name == ds.name}


def test_auroc_matches_the_pairwise_definition():
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(1, 1, 40), rng.normal(0, 1, 30)
    pos[:5] = neg[:5]  # ties count one half
    pairs = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    assert v.auroc(pos, neg) == pytest.approx(pairs, abs=1e-12)
    assert v.auroc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0
    assert v.auroc(np.array([0.0]), np.array([1.0])) == 0.0


def test_validated_in_table_reads_only_the_state_section():
    text = "\n".join([
        v.STATE_HEADING, "", "| signature | dataset | AUROC | x |", "|---|---|---|---|",
        "| A | d | 0.900 | yes |", "| B | d | 0.700 | no |", "", "## Next", "| C | d | 0.9 | yes |",
    ])
    assert v.validated_in_table(text) == {"A"}


def test_own_labels_follow_the_context_hierarchy():
    contexts = {"CD8 T": "cd8_t", "Treg": "cd4_t", "Myeloid": "myeloid", "Mast": None}
    assert v.own_labels("t_cell", contexts) == ["CD8 T", "Treg"]
    assert v.own_labels("cd8_t", contexts) == ["CD8 T"]
    assert v.own_labels("macrophage", contexts) == ["Myeloid"]  # only a coarser label exists
    assert v.own_labels("fibroblast", contexts) == []


def test_expected_states_lists_every_mapped_cluster():
    ds = v.load_dataset(v.DATA_DIR / "sadefeldman2018_melanoma")
    table = v.expected_states(ds)
    tex = table[table["signature"] == "CD8_TEX_TERMINAL"]
    assert sorted(tex["cluster"]) == ["Exhausted Cd8+ cells", "Exhausted/HS Cd8+ cells"]
    assert set(table["signature"]) == {s.signature for s in ds.states}


def test_comparisons_with_too_few_cells_are_shown_but_do_not_count(results):
    states = results.states
    small = states[states[["n_cluster", "n_siblings"]].min(axis=1) < v.STATE_MIN_CELLS]
    assert not small["counted"].astype(bool).any()
    assert states.loc[~states.index.isin(small.index), "counted"].astype(bool).all()
    pdc = states[(states["signature"] == "DC_PDC") & (states["dataset"] == "zilionis2019_nsclc")].iloc[0]
    assert (pdc["n_cluster"], pdc["n_siblings"], bool(pdc["counted"])) == (5, 5, False)
    assert "DC_PDC" not in results.best_auroc().index
    assert "| DC_PDC | zilionis2019_nsclc |" in v.render(results)


def test_gene_names_are_mapped_to_current_symbols_before_scoring(results):
    tnbc = next(s for s in results.scored if s.dataset.name == "wu2021_tnbc")
    genes = set(ad.read_h5ad(tnbc.dataset.path, backed="r").var_names)
    assert {"WISP2", "SEPT11"} <= genes and not {"CCN5", "SEPTIN11"} & genes
    # CCN5 (WISP2 in the data) and SEPTIN11 (SEPT11) count as measured
    assert tnbc.measured["CAF_WOUND_MYCAF"] == (34, 34)
    assert tnbc.measured["CAF_ECM_MYCAF"] == (40, 40)
