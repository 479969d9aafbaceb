"""tl.enrich: preranked GSEA on a genes comparison, offline gene sets only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from anndata import AnnData

import hcctme as hc
from hcctme._constants import Keys

from ._compare_data import cohort

KW = dict(condition_key="response", sample_key="patient", reference="responder")


@pytest.fixture(scope="module")
def genes_result():
    adata = cohort(n_per=4, cells=80, n_genes=120, seed=2, gene_fold=3.0)
    hc.tl.compare(adata, features="genes", **KW)
    return adata, hc.get.compare(adata)


def _holding(table: pd.DataFrame) -> AnnData:
    """An AnnData holding ``table`` where tl.compare stores it (tl.enrich reads it from there)."""
    adata = AnnData(np.zeros((1, 1), dtype=np.float32))
    adata.uns["hcctme_compare"] = table
    return adata


def _enrich(table: pd.DataFrame, *args, **kwargs) -> pd.DataFrame:
    """Run tl.enrich on ``table`` (it returns None) and read its result through hcctme.get."""
    adata = _holding(table)
    assert hc.tl.enrich(adata, *args, **kwargs) is None
    return hc.get.enrich(adata)


GENE_SETS = {
    "PLANTED": ["G0", "G1", "G2", "G3", "G50", "G51", "G52"],
    "RANDOM": [f"G{i}" for i in range(60, 90)],
}


def test_planted_set_enriched_up(genes_result):
    _, table = genes_result
    out = _enrich(table, GENE_SETS, permutation_num=200, random_state=1)
    assert list(out.columns[:4]) == ["term", "group", "contrast", "es"]
    row = out.set_index("term").loc["PLANTED"]
    assert row["nes"] > 0 and row["direction"] == "up"
    assert row["pvalue"] < 0.05
    assert row["n_genes"] == 7 and row["set_size"] == 7
    assert set(row["lead_genes"].split(";")) >= {"G0", "G1", "G2", "G3"}
    assert out.set_index("term").loc["PLANTED", "pvalue"] <= out.set_index("term").loc["RANDOM", "pvalue"]


def test_a_permutation_p_value_is_never_zero(genes_result):
    """Sweep 55: a set no permutation reaches read p = 0 and padj = 0 (gseapy's NOM p-val); the smallest p a
    permutation test can give is 1 / (permutations + 1) (Phipson & Smyth 2010)."""
    _, table = genes_result
    out = _enrich(table, GENE_SETS, permutation_num=50, random_state=1)
    assert out["pvalue"].min() >= 1 / 51 and out["padj"].min() > 0
    assert out.set_index("term").loc["PLANTED", "pvalue"] == pytest.approx(1 / 51)


def test_reproducible_with_seed(genes_result):
    _, table = genes_result
    a = _enrich(table, GENE_SETS, permutation_num=100, random_state=3)
    b = _enrich(table, GENE_SETS, permutation_num=100, random_state=3)
    pd.testing.assert_frame_equal(a, b)
    c = _enrich(table, GENE_SETS, permutation_num=100, random_state=4)
    assert not np.array_equal(a["pvalue"].to_numpy(), c["pvalue"].to_numpy())


def test_anndata_in_uns_out(genes_result, tmp_path):
    adata, _ = genes_result
    a = adata.copy()
    assert hc.tl.enrich(a, GENE_SETS, permutation_num=50) is None
    params = hc.get.params(a, "hcctme_enrich")
    assert params["tool"] == "hcctme.tl.enrich" and params["params"]["permutation_num"] == 50
    assert params["library_version"] == hc.sig.library().library_version
    fresh = adata.copy()
    copied = hc.tl.enrich(fresh, GENE_SETS, permutation_num=50, copy=True)
    assert "hcctme_enrich" not in fresh.uns
    pd.testing.assert_frame_equal(hc.get.enrich(copied), hc.get.enrich(a))


def test_gmt_file(genes_result, tmp_path):
    _, table = genes_result
    path = tmp_path / "sets.gmt"
    path.write_text("".join(f"{k}\tdesc\t" + "\t".join(v) + "\n" for k, v in GENE_SETS.items()))
    out = _enrich(table, str(path), permutation_num=50)
    assert set(out["term"]) == set(GENE_SETS)


def test_group_and_contrast_filters(genes_result):
    _, table = genes_result
    out = _enrich(table, GENE_SETS, group="all", contrast="resistor vs responder", permutation_num=50)
    assert set(out["group"]) == {"all"}
    with pytest.raises(ValueError, match="group"):
        _enrich(table, GENE_SETS, group="nope")


def test_errors_and_offline(genes_result):
    adata, table = genes_result
    with pytest.raises(ValueError, match="downloads"):
        _enrich(table, "KEGG_2021_Human")
    with pytest.raises(ValueError, match="min_size"):
        _enrich(table, {"TINY": ["G0", "G1"]}, min_size=5)
    with pytest.raises(KeyError, match="statistic"):
        _enrich(table.drop(columns="statistic"), GENE_SETS)
    scores = table.assign(method="mannwhitney")
    with pytest.raises(ValueError, match="features='genes'"):
        _enrich(scores, GENE_SETS)
    with pytest.raises(TypeError, match="AnnData"):
        hc.tl.enrich(table, GENE_SETS)
    bare = adata.copy()
    del bare.uns["hcctme_compare"]
    with pytest.raises(KeyError, match=r"tl\.compare"):
        hc.tl.enrich(bare, GENE_SETS)


def test_library_by_default():
    """With signatures=None the curated library is used (offline)."""
    try:
        lib = hc.sig.library()
    except FileNotFoundError:  # pragma: no cover - library not installed
        pytest.skip("signature library missing")
    genes = list(dict.fromkeys(g for s in lib for g in s.genes_up))
    rng = np.random.default_rng(0)
    stat = rng.normal(size=len(genes))
    table = pd.DataFrame({"feature": genes, "group": "all", "contrast": "b vs a", "statistic": stat,
                          "method": "deseq2"})
    out = _enrich(table, permutation_num=20)
    assert set(out["term"]) <= set(lib.ids) and len(out) > 10


def test_genes_are_ranked_by_their_harmonised_symbols(genes_result):
    """Sweep 58: tl.compare names genes by var_names; after harmonize_genes (Ensembl ids) nothing matched."""
    adata, table = genes_result
    by_id = adata.copy()
    symbols = pd.Series(by_id.var_names.astype(str), index=[f"ENSG{i:011d}" for i in range(by_id.n_vars)])
    by_id.var_names = symbols.index
    by_id.var[Keys.SYMBOL] = symbols.to_numpy()  # as pp.harmonize_genes writes it
    hc.tl.compare(by_id, features="genes", **KW)
    assert hc.get.compare(by_id)["feature"].str.startswith("ENSG").all()
    hc.tl.enrich(by_id, GENE_SETS, permutation_num=200, random_state=1)
    pd.testing.assert_frame_equal(hc.get.enrich(by_id), _enrich(table, GENE_SETS, permutation_num=200,
                                                                 random_state=1))


def test_gene_set_files_are_read_as_sig_load_reads_them(tmp_path, monkeypatch):
    """Sweep 61: enrich's check for Enrichr names refused a GMT file with an upper-case suffix and a relative
    folder of YAML files, both of which sig.load reads."""
    rng = np.random.default_rng(0)
    genes = hc.sig.library().genes()[:400]
    stat = rng.normal(size=len(genes))
    adata = AnnData(np.zeros((2, len(genes)), np.float32), var=pd.DataFrame(index=genes))
    adata.uns["hcctme_compare"] = pd.DataFrame({
        "feature": genes, "group": "all", "contrast": "R vs NR", "effect": stat, "statistic": stat, "pvalue": 0.5,
        "padj": 0.5, "method": "limma-trend"})
    monkeypatch.chdir(tmp_path)
    sets = {"S1": genes[:20], "S2": genes[100:140]}
    hc.sig.to_gmt(sets, "sets.GMT")
    (tmp_path / "mysigs").mkdir()
    hc.sig.to_yaml(sets, "mysigs/sets.yaml")
    for source, key in (("sets.GMT", "e_gmt"), ("mysigs", "e_dir")):
        hc.tl.enrich(adata, source, permutation_num=20, key_added=key)
        assert sorted(adata.uns[key]["term"]) == ["S1", "S2"]
    with pytest.raises(ValueError, match="Enrichr names are not accepted"):
        hc.tl.enrich(adata, "KEGG_2021_Human", permutation_num=20, key_added="e_enrichr")
    (tmp_path / "config.yaml").write_text("threads: 4\n")  # review 61: "" read the working directory
    with pytest.raises(ValueError, match="signatures is an empty string"):
        hc.tl.enrich(adata, "", permutation_num=20, key_added="e_empty")


@pytest.mark.parametrize("rank_by", ["pvalue", "padj", "feature", "method"])
def test_rank_by_takes_a_signed_numeric_column(genes_result, rank_by):
    """Sweep 63: any column was taken: rank_by="pvalue" ranked the genes most higher in resistors last (their set
    came out "down"), and a text column failed with a bare KeyError or a float conversion error."""
    _, table = genes_result
    with pytest.raises(ValueError, match=rf"rank_by={rank_by!r} is not supported; choose one of \['statistic', "
                                         r"'effect'\]"):
        _enrich(table, GENE_SETS, rank_by=rank_by, permutation_num=10)


def test_a_set_no_permutation_of_its_sign_reaches_gets_the_floor():
    """Sweep 63: where no permutation had the observed sign, gseapy reported p 1 (and NES +-1), which passed through:
    the most extreme set got p 1 while its mirror got the documented floor 1/(permutation_num + 1). Real gseapy, one
    permutation: a set at the end of the ranking is beyond it whatever its sign, so both get the floor at every seed."""
    from hcctme.tl import _enrich as enrich_module

    ranking = pd.Series(np.linspace(3, -3, 100), index=[f"G{i}" for i in range(100)])
    # ES near but not +-1 (one gene mid-list): gseapy's NES is +-1 there, not ES
    sets = {"TOP": [*(f"G{i}" for i in range(9)), "G40"], "BOTTOM": [*(f"G{i}" for i in range(91, 100)), "G60"]}
    unreached = 0
    for seed in range(8):
        out = enrich_module._prerank(ranking, sets, min_size=5, max_size=500, permutation_num=1,
                                     seed=seed).set_index("term")
        assert out["pvalue"].tolist() == [0.5, 0.5], (seed, out)
        assert out.loc["BOTTOM", "direction"] == "down" and out.loc["TOP", "direction"] == "up"
        unreached += int(out["nes"].isna().sum())
    assert unreached >= 4  # the case arose: NaN NES where no permutation had the observed sign


def test_the_record_repeats_a_call_on_the_users_gene_sets(genes_result):
    """Sweep 63: the record left out `signatures`, so a call repeated from get.params tested the whole library."""
    adata, _ = genes_result
    adata = adata.copy()
    hc.tl.enrich(adata, {**GENE_SETS, "UNMEASURED": ["NOPE1", "NOPE2", "NOPE3", "NOPE4", "NOPE5"]},
                 permutation_num=20)
    first = hc.get.enrich(adata)
    params = hc.get.params(adata, "hcctme_enrich")["params"]
    assert {k: list(v) for k, v in params["signatures"].items()} == GENE_SETS  # a set no list tests: not kept
    hc.tl.enrich(adata, **params)
    pd.testing.assert_frame_equal(hc.get.enrich(adata), first, check_exact=True)
