"""signatures/VALIDATION.md is generated from the real labelled datasets under tests/data and stays true."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import yaml

from hcctme.sig import Signature
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


# Peak share of the cell-context signatures on the HCC/liver datasets, as measured after the lineage rule of
# library 2.1 (16/24 at 2.0 on he2020_liver): the check fails when a dataset falls below it. The target is
# v.PEAK_TARGET (90%), reached on neither he2020_liver (healthy adult liver) nor lu2022_hcc (primary HCC tumours,
# the first 5,000 genes of the authors' matrix: many signatures are not scored there).
HCC_PEAK_FLOOR = {"he2020_liver": 18 / 24, "lu2022_hcc": 21 / 28}


def test_hcc_peak_share_does_not_drop(results):
    hcc = [s.dataset.name for s in results.scored if s.dataset.hcc]
    assert sorted(hcc) == sorted(HCC_PEAK_FLOOR), "record the measured peak share of every HCC/liver dataset"
    assert results.peak_datasets()[: len(hcc)] == sorted(hcc), "HCC/liver datasets are reported first"
    shares = {name: results.peak_share(name) for name in hcc}
    below = {name: f"{n_pass}/{n_checked}" for name, (n_pass, n_checked) in shares.items()
             if n_checked == 0 or n_pass / n_checked < HCC_PEAK_FLOOR[name] - 1e-9}
    assert below == {}, f"fewer cell-context signatures peak in their own context than measured: {below}"


def _toy(other_types: tuple[str, ...] = ("Smooth muscle", "Mast")) -> tuple[v.Scored, list[Signature]]:
    sizes = {"CD8 a": 6, "CD8 b": 4, "Treg": 5, "Mac": 5, "Smooth muscle": 5, "NK/T": 5, "Mast": 3}
    contexts = {"CD8 a": "cd8_t", "CD8 b": "cd8_t", "Treg": "cd4_t", "Mac": "macrophage", "Smooth muscle": None,
                "NK/T": None, "Mast": None}
    labels = pd.Series([lab for lab, n in sizes.items() for _ in range(n)])
    level = {  # mean score of each signature per label
        "CD8": {"CD8 a": 1.0, "CD8 b": 0.5, "Treg": 0.2, "Mac": 0.0, "Smooth muscle": 0.0, "NK/T": 2.0, "Mast": 0.0},
        "CD4": {"CD8 a": 0.9, "CD8 b": 0.9, "Treg": 0.8, "Mac": 0.0, "Smooth muscle": 0.0, "NK/T": 0.0, "Mast": 0.0},
        "MAC": {"CD8 a": 0.0, "CD8 b": 0.0, "Treg": 0.0, "Mac": 0.5, "Smooth muscle": 0.9, "NK/T": 0.0, "Mast": 5.0},
    }
    scores = pd.DataFrame({sig: labels.map(means).to_numpy() for sig, means in level.items()})
    sigs = [Signature("CD8", ("A",), cell_context="cd8_t"), Signature("CD4", ("A",), cell_context="cd4_t"),
            Signature("MAC", ("A",), cell_context="macrophage"), Signature("NEU", ("A",), cell_context="neutrophil"),
            Signature("ANY", ("A",))]
    ds = v.Dataset(name="toy", path=Path("toy.h5ad"), title="toy", citation="", label_key="label", contexts=contexts,
                   states=(), other_types=other_types)
    measured = {s.id: (1, 1) for s in sigs}
    return v.Scored(dataset=ds, labels=labels, scores=scores, n_genes=1, measured=measured), sigs


def test_peak_check_compares_library_contexts():
    scored, sigs = _toy()
    assert v.peak_groups(scored.dataset) == {"CD8 a": "cd8_t", "CD8 b": "cd8_t", "Treg": "cd4_t",
                                             "Mac": "macrophage", "Smooth muscle": "Smooth muscle", "Mast": "Mast"}
    rows = {r["signature"]: r for r in v.peak_rows(scored, sigs)}
    assert set(rows) == {"CD8", "CD4", "MAC", "NEU"}  # cell_context "any" is not peak-checked
    # CD8 clusters pooled: (6 x 1.0 + 4 x 0.5) / 10 = 0.8 > Treg 0.2; the NK/T mixture (null) is left out;
    # the label named at the peak is the one of its labels with the highest mean and >= PEAK_MIN_CELLS cells
    assert (rows["CD8"]["peak"], rows["CD8"]["peak_label"], rows["CD8"]["in_own"]) == ("cd8_t", "CD8 a", True)
    assert rows["CD8"]["own"] == "cd8_t (10)"
    # pooled cd8_t mean 0.9 beats the Treg cluster's 0.8: the CD4 signature peaks in another context
    assert (rows["CD4"]["peak"], rows["CD4"]["in_own"]) == ("cd8_t", False)
    # other_types labels compete; Mast (3 cells, below PEAK_MIN_CELLS) cannot be the peak but is in the rest
    assert (rows["MAC"]["peak"], rows["MAC"]["peak_label"], rows["MAC"]["in_own"]) == ("Smooth muscle",
                                                                                     "Smooth muscle", False)
    assert rows["MAC"]["auroc"] == pytest.approx(15 / 23)  # beats the 15 zeros, loses to 5 x 0.9 and 3 x 5.0
    # no neutrophils: not checkable, and not counted
    assert (rows["NEU"]["checkable"], rows["NEU"]["in_own"], rows["NEU"]["peak"]) == (False, None, None)


def test_peak_check_leaves_out_labels_not_listed_as_other_types():
    scored, sigs = _toy(other_types=())
    rows = {r["signature"]: r for r in v.peak_rows(scored, sigs)}
    assert (rows["MAC"]["peak"], rows["MAC"]["in_own"]) == ("macrophage", True)
    assert rows["MAC"]["auroc"] == 1.0


def test_other_types_must_be_labels_without_context(tmp_path):
    spec = {"name": "x", "file": "x.h5ad", "title": "x", "citation": "x", "label_key": "c",
            "contexts": {"A": "t_cell", "B": None}, "other_types": ["A"]}
    (tmp_path / "mapping.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(ValueError, match="other_types must be labels mapped to null"):
        v.load_dataset(tmp_path)
    spec["other_types"] = ["B"]
    (tmp_path / "mapping.yaml").write_text(yaml.safe_dump(spec))
    assert v.load_dataset(tmp_path).other_types == ("B",)


def test_comparisons_with_too_few_cells_are_shown_but_do_not_count(results):
    states = results.states
    small = states[states[["n_cluster", "n_siblings"]].min(axis=1) < v.STATE_MIN_CELLS]
    assert not small["counted"].astype(bool).any()
    supporting = states["supporting_only"].astype(bool)
    assert states.loc[~states.index.isin(small.index) & ~supporting, "counted"].astype(bool).all()
    pdc = states[(states["signature"] == "DC_PDC") & (states["dataset"] == "zilionis2019_nsclc")].iloc[0]
    assert (pdc["n_cluster"], pdc["n_siblings"], bool(pdc["counted"])) == (5, 5, False)
    # DC_PDC counts only where both sides have enough cells (villani2017_dc), never through the 5 vs 5 comparison
    counted_pdc = states[(states["signature"] == "DC_PDC") & states["counted"].astype(bool)]
    assert list(counted_pdc["dataset"]) == ["villani2017_dc"]
    assert results.best_auroc()["DC_PDC"] == counted_pdc["auroc"].max()
    assert "| DC_PDC | zilionis2019_nsclc |" in v.render(results)


def test_gene_names_are_mapped_to_current_symbols_before_scoring(results):
    tnbc = next(s for s in results.scored if s.dataset.name == "wu2021_tnbc")
    genes = set(ad.read_h5ad(tnbc.dataset.path, backed="r").var_names)
    assert {"WISP2", "SEPT11"} <= genes and not {"CCN5", "SEPTIN11"} & genes
    # CCN5 (WISP2 in the data) and SEPTIN11 (SEPT11) count as measured
    assert tnbc.measured["CAF_WOUND_MYCAF"] == (34, 34)
    assert tnbc.measured["CAF_ECM_MYCAF"] == (40, 40)


def _diagnosis_data() -> tuple[ad.AnnData, v.Dataset]:
    """Five cells per label; SEPT11 is stored under its old name with the current symbol in var."""
    labels = ["A"] * 5 + ["B"] * 5 + ["Mix"] * 5 + ["Few"] * 3
    values = np.array([
        # GENE1: cluster A = 1, 2, 3, 4, 5; siblings B = 0, 0, 1, 0, 0
        [1, 2, 3, 4, 5, 0, 0, 1, 0, 0, 9, 9, 9, 9, 9, 0, 0, 0],
        # SEPT11 (current SEPTIN11): detected only in B
        [0, 0, 0, 0, 0, 3, 3, 3, 3, 3, 0, 0, 0, 0, 0, 0, 0, 0],
        # GENE1 again under a second column: the first column is the one read
        [7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7],
    ], dtype=float).T
    adata = ad.AnnData(values, obs=pd.DataFrame({"label": labels}, index=[f"c{i}" for i in range(18)]),
                       var=pd.DataFrame({"hcctme_symbol": ["GENE1", "SEPTIN11", "GENE1"]},
                                        index=["GENE1", "SEPT11", "GENE1_dup"]))
    ds = v.Dataset(name="toy", path=Path("toy.h5ad"), title="toy", citation="", label_key="label",
                   contexts={"A": "cd8_t", "B": "cd4_t", "Mix": None, "Few": "nk"},
                   states=(v.StateMap(signature="SIG", cluster=("A",), siblings=("B",), parent="t_cell"),),
                   other_types=())
    return adata, ds


def test_gene_values_reads_current_symbols_and_leaves_out_unmeasured_genes():
    adata, _ = _diagnosis_data()
    values = v.gene_values(adata, ["SEPTIN11", "GENE1", "ABSENT", "GENE1"])
    assert list(values.columns) == ["SEPTIN11", "GENE1"]
    assert values["GENE1"].tolist()[:5] == [1, 2, 3, 4, 5]  # the first column mapped to GENE1, not GENE1_dup
    assert values["SEPTIN11"].sum() == 15


def test_gene_table_gives_each_genes_own_auroc_in_the_mapped_comparison():
    adata, ds = _diagnosis_data()
    sig = Signature("SIG", ("GENE1", "ABSENT"), genes_down=("SEPTIN11",), cell_context="cd8_t")
    table = v.gene_table(adata, ds, sig).set_index("gene")
    assert list(table.index) == ["GENE1", "SEPTIN11"]
    # GENE1: 1..5 against 0, 0, 1, 0, 0: 24 wins and one tie of 25 pairs
    assert table.loc["GENE1", "auroc"] == pytest.approx(24.5 / 25)
    assert (table.loc["GENE1", "detected_cluster"], table.loc["GENE1", "detected_siblings"]) == (1.0, 0.2)
    assert (table.loc["SEPTIN11", "direction"], table.loc["SEPTIN11", "auroc"]) == ("down", 0.0)
    other = Signature("OTHER", ("GENE1",), cell_context="cd8_t")
    assert v.gene_table(adata, ds, other).empty  # not mapped in this dataset


def test_gene_context_means_use_the_peak_check_groups():
    adata, ds = _diagnosis_data()
    sig = Signature("SIG", ("GENE1", "SEPTIN11"), cell_context="cd8_t")
    means = v.gene_context_means(adata, ds, sig)
    # Mix (null, not an other_type) is left out; Few has 3 < PEAK_MIN_CELLS cells
    assert sorted(means.columns) == ["cd4_t", "cd8_t"]
    assert means.loc["GENE1", "cd8_t"] == pytest.approx(np.log1p([1, 2, 3, 4, 5]).mean())
    assert means.loc["SEPTIN11", "cd4_t"] == pytest.approx(np.log1p(3))
    no_peak = v.Dataset(**{**ds.__dict__, "peak_check": False})
    assert v.gene_context_means(adata, no_peak, sig).empty


def test_gene_diagnosis_names_an_unknown_signature():
    with pytest.raises(KeyError, match="not a library signature"):
        v.print_gene_diagnosis("NOT_A_SIGNATURE")


def test_supporting_only_datasets_are_shown_but_never_validate(results):
    states = results.states
    zheng = states[states["dataset"] == "zheng2017_hcc_cd8"].set_index("signature")
    assert set(zheng.index) == {"CD8_TEFF", "CD8_TEX_TERMINAL"}
    assert zheng["supporting_only"].astype(bool).all() and not zheng["counted"].astype(bool).any()
    # the preselected-gene dataset separates the effector cluster well, but the library's best counted AUROC
    # (and so the validated verdict) comes from whole-transcriptome datasets only
    assert zheng.loc["CD8_TEFF", "auroc"] >= v.AUROC_PASS
    counted_teff = states[(states["signature"] == "CD8_TEFF") & states["counted"].astype(bool)]
    assert results.best_auroc()["CD8_TEFF"] == counted_teff["auroc"].max() < v.AUROC_PASS
    assert "CD8_TEFF" not in results.validated()
    text = v.render(results)
    assert "| CD8_TEFF | zheng2017_hcc_cd8 | 0.966 |" in text and "| supporting only |" in text
    assert "Supporting evidence only, not counted (zheng2017_hcc_cd8:" in text


def test_supporting_only_is_read_from_the_mapping(tmp_path):
    spec = {"name": "x", "file": "x.h5ad", "title": "x", "citation": "x", "label_key": "c",
            "contexts": {"A": "t_cell"}}
    (tmp_path / "mapping.yaml").write_text(yaml.safe_dump(spec))
    assert v.load_dataset(tmp_path).supporting_only == ""
    spec["supporting_only"] = "genes preselected"
    (tmp_path / "mapping.yaml").write_text(yaml.safe_dump(spec))
    assert v.load_dataset(tmp_path).supporting_only == "genes preselected"
