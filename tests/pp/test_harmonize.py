"""hcctme.pp.harmonize_genes, hcctme.pp.check_input and the gene-id helpers of hcctme.sig._genes."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata import AnnData

import hcctme as ht
from hcctme import _validate
from hcctme._constants import Keys
from hcctme.sig import _genes


def make(names, *, var=None, X=None, seed=0) -> AnnData:
    rng = np.random.default_rng(seed)
    X = rng.poisson(2.0, size=(8, len(names))).astype(np.float32) if X is None else X
    frame = pd.DataFrame(index=pd.Index([str(n) for n in names])) if var is None else var
    return AnnData(X, var=frame)


# --------------------------------------------------------------------------------------------------
# Routes
# --------------------------------------------------------------------------------------------------
def test_aliases_and_previous_symbols():
    names = ["CD10", "PD-L1", "TIM-3", "2B4", "CD66b", "CD15", "VISTA", "CD155", "IL8", "SEPT11",
             "C19ORF53", "CD8A", "GZMB"]
    adata = make(names)
    ht.pp.harmonize_genes(adata)
    got = adata.var[Keys.SYMBOL].tolist()
    assert got == ["MME", "CD274", "HAVCR2", "CD244", "CEACAM8", "FUT4", "VSIR", "PVR", "CXCL8",
                   "SEPTIN11", "C19orf53", "CD8A", "GZMB"]
    report = adata.uns[Keys.SYMBOL]
    assert report["species_used"] == "human"
    assert report["routes"]["current"] == 2 and report["routes"]["alias"] == 11
    assert report["n_unmapped"] == 0 and report["n_collisions"] == 0
    aliases = report["examples"]["alias"]
    assert dict(zip(aliases["from"], aliases["to"], strict=True))["CD10"] == "MME"
    assert list(adata.var_names) == names  # var_names are never changed


def test_ensembl_ids_versioned_and_not_from_a_var_column():
    var = pd.DataFrame(
        {"gene_ids": ["ENSG00000153563.16", "ENSG00000120217", "ENSG00000118785.14", "ENSG99999999999"]},
        index=["a", "b", "c", "d"],
    )
    adata = make(var.index, var=var)
    ht.pp.harmonize_genes(adata, gene_symbols="gene_ids")
    symbols = adata.var[Keys.SYMBOL]
    assert symbols.iloc[:3].tolist() == ["CD8A", "CD274", "SPP1"]
    assert pd.isna(symbols.iloc[3])
    report = adata.uns[Keys.SYMBOL]
    assert report["source"] == "var['gene_ids']"
    assert report["detected"]["id_type"] == "ensembl"
    assert report["routes"]["ensembl"] == 3
    assert report["unmapped_examples"] == ["ENSG99999999999"]


def test_mouse_ensembl_ids_map_to_human():
    adata = make(["ENSMUSG00000053977.9", "ENSMUSG00000016496"])
    ht.pp.harmonize_genes(adata)
    assert adata.var[Keys.SYMBOL].tolist() == ["CD8A", "CD274"]
    assert adata.uns[Keys.SYMBOL]["species_used"] == "mouse"


def test_mouse_symbols_through_orthologs_not_case():
    names = ["Cd8a", "Cd274", "H2-Ab1", "Spp1", "Fam172a", "NotAMouseGene1"]
    adata = make(names)
    ht.pp.harmonize_genes(adata, species="mouse")
    table = _genes.mouse_to_human()
    got = adata.var[Keys.SYMBOL]
    assert got.iloc[:2].tolist() == ["CD8A", "CD274"]
    assert got.iloc[2] == table["H2-Ab1"] != "H2-AB1"
    assert got.iloc[4] == table["Fam172a"] != "FAM172A"
    assert pd.isna(got.iloc[5])
    report = adata.uns[Keys.SYMBOL]
    assert report["routes"]["ortholog"] == 5 and report["n_unmapped"] == 1


def test_mouse_only_genes_are_not_mapped_onto_another_genes_human_ortholog():
    # HCOP predicts LY6H for the mouse-only Ly6a / Ly6c1 / Ly6g (neutrophil and stem-cell markers) and RPL36
    # for a pseudogene; LY6H and RPL36 are Ly6h's and Rpl36's one-to-one orthologs
    adata = make(["Ly6g", "Ly6a", "Ly6c1", "Rpl36-ps12", "Ly6h", "Rpl36"])
    ht.pp.harmonize_genes(adata, species="mouse")
    got = adata.var[Keys.SYMBOL]
    assert got.iloc[:4].isna().all(), got.tolist()
    assert got.iloc[4:].tolist() == ["LY6H", "RPL36"]
    # a weak pair that many resources support stays: Agtr1a (Ensembl low confidence, 10 HCOP resources) beside Agtr1b
    assert _genes.mouse_to_human()["Agtr1a"] == _genes.mouse_to_human()["Agtr1b"] == "AGTR1"


def test_curated_orthologs_overrule_ensembls_export_and_name_ties():
    """Sweep 59c: the table sent Cxcl1 to CXCL2 (and Cxcl3 to CXCL1), Hspa1b to HSPA1A, H3f3b to H3-3A, Kxd1 to
    UBA52, Tmsb4x to TMSB4Y and Sp100 to SP140, and left Lyz2, Abcg2 and Cldn4 unmapped: the pairs HGNC or NCBI
    curate now come first, and among equal candidates the human gene of the mouse gene's name."""
    table = _genes.mouse_to_human()
    expected = {"Cxcl1": "CXCL1", "Cxcl2": "CXCL2", "Cxcl3": "CXCL3", "Hspa1b": "HSPA1B", "Hspa1a": "HSPA1A",
                "H3f3a": "H3-3A", "H3f3b": "H3-3B", "Kxd1": "KXD1", "Lhb": "LHB", "Tmsb4x": "TMSB4X",
                "Sp100": "SP100", "Set": "SET", "Ifitm2": "IFITM2", "Fpr2": "FPR2", "Lyz2": "LYZ", "Abcg2": "ABCG2",
                "Cldn4": "CLDN4", "Cxadr": "CXADR", "Cyp21a1": "CYP21A2", "Agtr1a": "AGTR1", "Agtr1b": "AGTR1"}
    assert {m: table.get(m) for m in expected} == expected
    assert _genes.human_to_mouse()["GZMB"] == "Gzmb" and _genes.human_to_mouse()["CXCL1"] == "Cxcl1"


@pytest.mark.parametrize("names", [["Gzme", "Gzmb", "Cxcl1"], ["Cxcl1", "Gzmb", "Gzme"]])
def test_a_collision_keeps_the_human_genes_own_mouse_ortholog_in_any_order(names):
    """Gzme's curated pair is GZMB too; Gzmb keeps GZMB whichever column comes first (the first column won)."""
    adata = make(names)
    ht.pp.harmonize_genes(adata, species="mouse")
    got = dict(zip(names, adata.var[Keys.SYMBOL], strict=True))
    assert got["Gzmb"] == "GZMB" and pd.isna(got["Gzme"]) and got["Cxcl1"] == "CXCL1"
    assert adata.uns[Keys.SYMBOL]["collisions"]["GZMB"][0] == "Gzmb"


@pytest.mark.parametrize("names", [["ENSMUSG00000022156", "ENSMUSG00000015437"], [" Gzme", " Gzmb"]])
def test_a_collision_of_mouse_ensembl_ids_or_padded_symbols_keeps_the_preferred_ortholog(names):
    """Review of sweep 59c: Gzme's Ensembl id (first) kept GZMB over Gzmb's, and padded symbols were not matched."""
    adata = make(names)
    ht.pp.harmonize_genes(adata, species="mouse")
    assert pd.isna(adata.var[Keys.SYMBOL].iloc[0]) and adata.var[Keys.SYMBOL].iloc[1] == "GZMB"


def test_loricrin_previous_symbol():
    adata = make(["LOR", "CD8A"])
    ht.pp.harmonize_genes(adata)
    assert adata.var[Keys.SYMBOL].tolist() == ["LORICRIN", "CD8A"]


def test_human_mode_never_upper_cases_mouse_symbols():
    adata = make(["Cd8a", "Sirpa", "CD8A", "SIRPa"])
    ht.pp.harmonize_genes(adata, species="human")
    got = adata.var[Keys.SYMBOL]
    assert pd.isna(got.iloc[0]) and pd.isna(got.iloc[1])
    assert got.iloc[2] == "CD8A" and got.iloc[3] == "SIRPA"


@pytest.mark.parametrize(
    ("names", "species", "id_type"),
    [
        (["CD8A", "CD3E", "SPP1", "Cd8a"], "human", "symbol"),
        (["Cd8a", "Cd3e", "Spp1", "CD8A"], "mouse", "symbol"),
        (["ENSG00000153563", "ENSG00000120217.1", "SPP1"], "human", "ensembl"),
        (["ENSMUSG00000053977", "ENSMUSG00000016496", "ENSG00000153563"], "mouse", "ensembl"),
    ],
)
def test_auto_species_detection(names, species, id_type):
    info = _genes.gene_id_type(names)
    assert info["species"] == species and info["id_type"] == id_type
    adata = make(names)
    ht.pp.harmonize_genes(adata)
    assert adata.uns[Keys.SYMBOL]["species_used"] == species
    assert adata.var[Keys.SYMBOL].iloc[0] in _genes.known_human_symbols()


def test_auto_detection_fails_clearly_on_unknown_names(digest):
    adata = make(["foo", "bar", "baz"])
    before = digest(adata)
    with pytest.raises(ValueError, match="species='human' or 'mouse'"):
        ht.pp.harmonize_genes(adata)
    assert digest(adata) == before


def test_collisions_are_reported_and_resolved():
    names = ["PD-L1", "CD274", "ENSG00000153563", "CD8A", "ENSG00000120217"]
    adata = make(names)
    ht.pp.harmonize_genes(adata, species="human")
    got = adata.var[Keys.SYMBOL]
    # the current symbol wins over the alias and the Ensembl id; losers are left unmapped
    assert pd.isna(got["PD-L1"]) and got["CD274"] == "CD274"
    assert pd.isna(got["ENSG00000153563"]) and got["CD8A"] == "CD8A"
    assert pd.isna(got["ENSG00000120217"])
    report = adata.uns[Keys.SYMBOL]
    assert report["n_collisions"] == 2
    assert list(report["collisions"]["CD274"]) == ["CD274", "PD-L1", "ENSG00000120217"]
    assert list(report["collisions"]["CD8A"]) == ["CD8A", "ENSG00000153563"]
    assert report["routes"]["collision"] == 3
    assert got.dropna().is_unique


def test_collision_between_equal_routes_keeps_the_first():
    adata = make(["ENSG00000153563.1", "ENSG00000153563.2"])
    ht.pp.harmonize_genes(adata)
    got = adata.var[Keys.SYMBOL]
    assert got.iloc[0] == "CD8A" and pd.isna(got.iloc[1])


def test_unmapped_are_nan_and_reported(caplog):
    adata = make(["CD8A", "NOTAGENE1", "NOTAGENE2"])
    with caplog.at_level(logging.INFO, logger="hcctme"):
        ht.pp.harmonize_genes(adata)
    assert adata.var[Keys.SYMBOL].isna().tolist() == [False, True, True]
    report = adata.uns[Keys.SYMBOL]
    assert report["n_unmapped"] == 2 and report["unmapped_examples"] == ["NOTAGENE1", "NOTAGENE2"]
    assert report["n_mapped"] == 1 and report["n_vars"] == 3
    lines = [r for r in caplog.records if "harmonised" in r.getMessage()]
    assert len(lines) == 1 and "2 unmapped" in lines[0].getMessage()


def test_names_of_which_none_maps_for_the_given_species_are_refused(digest):
    """Human symbols given species='mouse' all mapped to NaN: every step ran, then anndata could not write the
    all-NaN column ("Can't implicitly convert non-string objects to strings")."""
    adata = make(["CD8A", "CD3E", "SPP1", "PTPRC"])
    before = digest(adata)
    with pytest.raises(ValueError, match=r"none of the 4 gene names in var_names maps .* species='mouse'"):
        ht.pp.harmonize_genes(adata, species="mouse")
    assert digest(adata) == before
    ht.pp.harmonize_genes(adata, species="auto")
    assert adata.var[Keys.SYMBOL].tolist() == ["CD8A", "CD3E", "SPP1", "PTPRC"]


def test_missing_values_in_symbol_column():
    var = pd.DataFrame({"sym": ["CD8A", None, np.nan]}, index=["g1", "g2", "g3"])
    adata = make(var.index, var=var)
    ht.pp.harmonize_genes(adata, gene_symbols="sym")
    assert adata.var[Keys.SYMBOL].isna().tolist() == [False, True, True]


# --------------------------------------------------------------------------------------------------
# Errors leave the input untouched; copy semantics
# --------------------------------------------------------------------------------------------------
def test_bad_gene_symbols_column_is_a_key_error(digest):
    adata = make(["CD8A", "CD3E"], var=pd.DataFrame({"gene_ids": ["x", "y"]}, index=["CD8A", "CD3E"]))
    before = digest(adata)
    with pytest.raises(KeyError, match=r"no column 'symbols'.*gene_ids"):
        ht.pp.harmonize_genes(adata, gene_symbols="symbols")
    assert digest(adata) == before
    assert Keys.SYMBOL not in adata.var and Keys.SYMBOL not in adata.uns


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [({"species": "rat"}, ValueError), ({"gene_symbols": 3}, TypeError), ({"copy": "yes"}, TypeError)],
)
def test_bad_arguments(digest, kwargs, error):
    adata = make(["CD8A", "CD3E"])
    before = digest(adata)
    with pytest.raises(error):
        ht.pp.harmonize_genes(adata, **kwargs)
    assert digest(adata) == before


def test_not_an_anndata():
    with pytest.raises(TypeError, match="AnnData"):
        ht.pp.harmonize_genes(pd.DataFrame({"CD8A": [1]}))


def test_copy_semantics(digest):
    adata = make(["PD-L1", "CD8A"])
    before = digest(adata)
    out = ht.pp.harmonize_genes(adata, copy=True)
    assert isinstance(out, AnnData) and out is not adata
    assert out.var[Keys.SYMBOL].tolist() == ["CD274", "CD8A"]
    assert digest(adata) == before and Keys.SYMBOL not in adata.var
    assert ht.pp.harmonize_genes(adata) is None
    assert adata.var[Keys.SYMBOL].tolist() == ["CD274", "CD8A"]


def test_rerun_is_idempotent_and_result_writes_to_h5ad(tmp_path):
    adata = make(["PD-L1", "CD8A", "NOTAGENE1"])
    ht.pp.harmonize_genes(adata)
    first = adata.var[Keys.SYMBOL].copy()
    ht.pp.harmonize_genes(adata)
    pd.testing.assert_series_equal(adata.var[Keys.SYMBOL], first)
    path = tmp_path / "h.h5ad"
    adata.write_h5ad(path)
    import anndata

    back = anndata.read_h5ad(path)
    assert _validate.gene_names(back).tolist() == ["CD274", "CD8A", "NOTAGENE1"]
    assert back.uns[Keys.SYMBOL]["n_unmapped"] == 1


# --------------------------------------------------------------------------------------------------
# gene_names: how tools read the harmonised symbols
# --------------------------------------------------------------------------------------------------
def test_gene_names_falls_back_to_original():
    adata = make(["PD-L1", "CD8A", "NOTAGENE1"])
    assert _validate.gene_names(adata, adata.var_names).tolist() == ["PD-L1", "CD8A", "NOTAGENE1"]
    ht.pp.harmonize_genes(adata)
    assert _validate.gene_names(adata, adata.var_names).tolist() == ["CD274", "CD8A", "NOTAGENE1"]
    assert _validate.gene_names(adata).tolist() == ["CD274", "CD8A", "NOTAGENE1"]


def test_gene_names_for_raw_and_subsets():
    adata = make(["PD-L1", "CD8A", "TIM-3"])
    adata.raw = adata.copy()
    ht.pp.harmonize_genes(adata)
    raw_names = adata.raw.var_names
    assert _validate.gene_names(adata, raw_names).tolist() == ["CD274", "CD8A", "HAVCR2"]
    subset = adata[:, ["TIM-3", "PD-L1"]]
    assert _validate.gene_names(subset, subset.var_names).tolist() == ["HAVCR2", "CD274"]
    # names of a wider raw that the harmonised var lacks keep their own names
    assert _validate.gene_names(subset, pd.Index(["TIM-3", "OTHER"])).tolist() == ["HAVCR2", "OTHER"]


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_the_genes_of_raw_are_harmonised_too():
    """Sweep 54: scanpy's layout (every gene in .raw, the variable ones in .X) kept .raw's Ensembl ids, which the
    tools read by default: after harmonize_genes, tl.score found no signature and check_input still asked for
    harmonize_genes."""
    import anndata as ad

    lu = ad.read_h5ad("tests/data/lu2022_hcc/lu2022_hcc.h5ad")
    to_ensembl = {}
    for ensembl, symbol in _genes.ensembl_to_symbol().items():
        to_ensembl.setdefault(symbol, ensembl)
    ids = lu.copy()
    ids.var_names = [to_ensembl.get(g, g) for g in lu.var_names]
    ids.raw = ids
    ids = ids[:, ids.var_names[:300]].copy()  # .X: a gene subset, .raw: all genes
    assert "Ensembl" in " ".join(ht.pp.check_input(ids)["issues"])
    ht.pp.harmonize_genes(ids)
    issues = ht.pp.check_input(ids)["issues"]  # Lu 2022 as shipped holds counts: the one issue left
    assert [i[:21] for i in issues] == ["raw holds raw counts;"] and ids.raw.var[Keys.SYMBOL].notna().mean() > 0.8
    ht.tl.score(ids)
    ht.tl.score(lu)
    pd.testing.assert_frame_equal(ht.get.scores(ids), ht.get.scores(lu))


def test_duplicated_names_are_refused_with_the_fix_that_works():
    adata = make(["CD8A", "CD8A", "PD-L1"])
    ht.pp.harmonize_genes(adata)
    with pytest.raises(ValueError, match=r"var_names_make_unique\(\) first \(harmonising the names does not"):
        _validate.unique_genes(_validate.gene_names(adata))
    adata.var_names_make_unique()
    assert ht.pp.check_input(adata)["n_duplicated_genes"] == 0


def test_ensembl_base():
    assert _genes.ensembl_base("ENSG00000153563.16") == "ENSG00000153563"
    assert _genes.ensembl_base("ENSMUSG00000053977") == "ENSMUSG00000053977"
    assert _genes.ensembl_base("CD8A") is None
    assert _genes.ensembl_base(None) is None


# --------------------------------------------------------------------------------------------------
# check_input
# --------------------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:Variable names are not unique")
def test_check_input_counts_symbols(digest):
    adata = make(["CD8A", "CD3E", "SPP1", "CD8A"])
    adata.layers["counts"] = adata.X.copy()
    before = digest(adata)
    report = ht.pp.check_input(adata)
    assert digest(adata) == before
    assert report["kind"] == "counts" and report["matrix"] == "X"
    assert report["gene_id_type"] == "symbol" and report["species"] == "human"
    assert report["n_duplicated_genes"] == 1 and report["duplicated_genes"] == ["CD8A"]
    assert report["counts_layer"] is True and report["harmonised"] is False
    assert report["has_nan"] is False
    assert any("var_names_make_unique" in issue for issue in report["issues"])
    # sweep 63 (Lu 2022 as shipped): counts in X, which hcctme run then refused, were no issue; the fix named is the
    # matrix's own (copying X into layers['counts'] would overwrite a counts layer or save log values as counts)
    fixes = {which: [i for i in ht.pp.check_input(adata, **kw)["issues"] if "holds raw counts" in i]
             for which, kw in (("X", {}), ("layer", {"layer": "counts"}))}
    assert fixes["X"] == [i for i in report["issues"] if "holds raw counts" in i]
    assert fixes["X"][0].startswith("X holds raw counts; crosstalk and the resistance profile (and hcctme run) need "
                                    "log-normalised values: keep the counts as a layer")
    assert fixes["layer"][0].endswith("values: pass layer= naming the log-normalised matrix, or layer=None to read X")


def test_check_input_lognorm_scaled_nan_sparse():
    counts = np.random.default_rng(1).poisson(2.0, size=(8, 3)).astype(np.float32)
    lognorm = np.log1p(counts / 3.0)
    adata = make(["CD8A", "CD3E", "SPP1"], X=sp.csr_matrix(lognorm))
    report = ht.pp.check_input(adata)
    assert report["kind"] == "lognorm" and report["sparse"] is True
    scaled = make(["CD8A", "CD3E", "SPP1"], X=lognorm - lognorm.mean(0))
    report = ht.pp.check_input(scaled)
    assert report["kind"] == "scaled" and any("scaled" in issue for issue in report["issues"])
    bad = lognorm.copy()
    bad[0, 0] = np.nan
    report = ht.pp.check_input(make(["CD8A", "CD3E", "SPP1"], X=bad))
    assert report["has_nan"] is True and any("NaN" in issue for issue in report["issues"])


def test_check_input_layer_raw_and_species():
    adata = make(["ENSMUSG00000053977", "ENSMUSG00000016496"])
    adata.layers["norm"] = np.log1p(adata.X)
    report = ht.pp.check_input(adata, layer="norm")
    assert report["matrix"] == "layers['norm']" and report["kind"] == "lognorm"
    assert report["gene_id_type"] == "ensembl" and report["species"] == "mouse"
    assert any("harmonize_genes" in issue for issue in report["issues"])
    adata.raw = adata.copy()
    assert ht.pp.check_input(adata)["matrix"] == "raw"
    assert ht.pp.check_input(adata, use_raw=False)["matrix"] == "X"
    with pytest.raises(KeyError, match="layers has no 'missing'"):
        ht.pp.check_input(adata, layer="missing")
    mouse = ht.pp.check_input(make(["Cd8a", "Cd3e", "Spp1"]))
    assert mouse["species"] == "mouse" and mouse["gene_id_type"] == "symbol"


def test_the_call_is_recorded_as_every_tool_records_it():
    """It wrote its report only (uns["hcctme_symbol"]); get.params read it through the 0.1 fallback."""
    var = pd.DataFrame({"ids": ["ENSG00000153563", "ENSG00000167286"]}, index=["a", "b"])
    adata = make(var.index, var=var)
    ht.pp.harmonize_genes(adata, gene_symbols="ids")
    record = ht.get.params(adata, Keys.SYMBOL)
    assert record["tool"] == "hcctme.pp.harmonize_genes"
    assert record["params"] == {"gene_symbols": "ids", "species": "auto"}
    again = make(var.index, var=var.copy())
    ht.pp.harmonize_genes(again, **record["params"])
    assert again.var[Keys.SYMBOL].tolist() == adata.var[Keys.SYMBOL].tolist() == ["CD8A", "CD3D"]


def test_a_name_column_raw_lacks_is_warned():
    """Sweep 55: the docstring's "a warning says so" was a log line no default session shows; the tools then read
    .raw under its unmapped names."""
    adata = AnnData(np.ones((3, 2), dtype=np.float32), var=pd.DataFrame({"sym": ["CD8A", "CD3E"]}, index=["g1", "g2"]))
    adata.raw = adata.copy()
    del adata.raw.var["sym"]
    with pytest.warns(UserWarning, match="adata.raw.var has no column 'sym'"):
        ht.pp.harmonize_genes(adata, gene_symbols="sym")
    assert "hcctme_symbol" not in adata.raw.var


def test_a_symbol_held_only_as_an_older_name_is_a_previous_symbol():
    """Sweep 57: every symbol the tables listed for an Ensembl id counted as current (TDGF1 beside CRIPTO), so
    TDGF1-named data stayed TDGF1 while the same genes by id became CRIPTO, and the library check accepted it."""
    assert "TDGF1" not in _genes.known_human_symbols() and "CRIPTO" in _genes.known_human_symbols()
    assert _genes.previous_symbols()["FAM172A"] == "ARB2A" and _genes.current_symbol("TDGF1") == "CRIPTO"
    by_name = make(["TDGF1", "FAM172A", "GAPDH"])
    ids = _genes.human_genes().set_index("symbol")["ensembl_id"]
    by_id = make([ids["CRIPTO"], ids["ARB2A"], ids["GAPDH"]])
    for adata in (by_name, by_id):
        ht.pp.harmonize_genes(adata)
    assert list(by_name.var[Keys.SYMBOL]) == list(by_id.var[Keys.SYMBOL]) == ["CRIPTO", "ARB2A", "GAPDH"]


def test_a_users_previous_symbol_reads_the_harmonised_gene():
    """After harmonize_genes the data say CXCL8; a gene set written with IL8 lost the gene without a word."""
    rng = np.random.default_rng(0)
    names = ["IL8", "G0S2", "CXCR2", "S100A8", "S100A9", "FCN1", "GAPDH", "ACTB"]
    adata = make(names, X=rng.poisson(3.0, size=(40, len(names))).astype(np.float32))
    before = ht.tl.score(adata, {"neut": ["IL8", "G0S2", "CXCR2", "S100A8", "S100A9", "FCN1"]}, copy=True, n_jobs=1)
    ht.pp.harmonize_genes(adata)
    after = ht.tl.score(adata, {"neut": ["IL8", "G0S2", "CXCR2", "S100A8", "S100A9", "FCN1"]}, copy=True, n_jobs=1)
    assert ht.get.params(after, "hcctme_scores")["genes_used"]["neut"][0] == "CXCL8"
    assert np.allclose(before.obsm["hcctme_scores"]["neut"], after.obsm["hcctme_scores"]["neut"])



def test_pbmc68k_reduced_hgnc_previous_symbols_reach_the_library():
    """scanpy's pbmc68k_reduced (hg19-era names): HGNC previous symbols stayed unmapped (the tables held 41 older
    names), so AMICA1 lost DC_CDC2 its gene JAML. HGNC's previous symbols (previous_symbols.tsv.gz) map them."""
    sc = pytest.importorskip("scanpy")
    adata = sc.datasets.pbmc68k_reduced()
    ht.pp.harmonize_genes(adata)
    symbols = adata.var[Keys.SYMBOL]
    previous = {"AMICA1": "JAML", "IGJ": "JCHAIN", "ATP5B": "ATP5F1B", "PHB": "PHB1", "H2AFY": "MACROH2A1",
                "TCEB2": "ELOB", "ADRBK1": "GRK2", "UFD1L": "UFD1"}
    assert {old: symbols[old] for old in previous} == previous
    assert adata.uns[Keys.SYMBOL]["n_unmapped"] <= 14 and adata.uns[Keys.SYMBOL]["n_collisions"] == 0
    assert "JAML" in ht.sig.get("DC_CDC2").genes
    ht.tl.score(adata, ["DC_CDC2"], use_raw=True, min_coverage=0, n_jobs=1)
    assert "JAML" in ht.get.params(adata, "hcctme_scores")["genes_used"]["DC_CDC2"]


def test_a_previous_symbol_ambiguous_in_hgnc_is_not_mapped():
    """ACSM2, AK3L1 and ALDH4 are HGNC previous symbols of two approved genes each; RAGE is a previous symbol of
    MOK but an alias of AGER, CCBP2 one of ACKR2 but an alias of ACKR4: none names one gene, none is mapped."""
    ambiguous = ["ACSM2", "AK3L1", "ALDH4", "RAGE", "CCBP2"]
    for name in ambiguous:
        assert name not in _genes.previous_symbols() and _genes.current_symbol(name) is None, name
    adata = make([*ambiguous, "AMICA1"])
    ht.pp.harmonize_genes(adata)
    assert adata.var[Keys.SYMBOL].iloc[:-1].isna().all() and adata.var[Keys.SYMBOL].iloc[-1] == "JAML"
    assert adata.uns[Keys.SYMBOL]["n_unmapped"] == len(ambiguous)


def test_the_previous_symbol_table_keeps_one_gene_names_only():
    """The build rules of hcctme/sig/_build_previous.py on a small HGNC-like table."""
    from hcctme.sig._build_previous import previous_symbols

    hgnc = pd.DataFrame({
        "symbol": ["JAML", "ACSM2A", "ACSM2B", "MOK", "AGER", "CD8B", "GAPDH", "NOTKNOWN1", "OLD"],
        "status": ["Approved"] * 8 + ["Entry Withdrawn"],
        "prev_symbol": ["AMICA1", "ACSM2", '"ACSM2|X1"', "RAGE", "", "cd8a", "", "OLDNAME", "GONE"],
        "alias_symbol": ["", "", "", "", "rage", "", "amica2", "", ""],
    })
    table = previous_symbols(hgnc, known=frozenset({"JAML", "ACSM2A", "ACSM2B", "MOK", "AGER", "CD8A", "CD8B",
                                                    "GAPDH"}), taken=set())
    # ACSM2: two genes; RAGE: also an alias (any case) of AGER; cd8a: CD8A in another case; OLDNAME: its gene is
    # unknown here; GONE: not an approved gene's
    assert dict(zip(table["previous"], table["symbol"], strict=True)) == {"AMICA1": "JAML", "X1": "ACSM2B"}
    assert list(table.columns) == ["previous", "symbol"]


def test_a_previous_symbol_spelled_like_a_current_symbol_is_not_folded(monkeypatch):
    """_alias_rows' case rule holds for previous symbols: an old name that differs from a current symbol only by case
    (here a made-up Cd8a -> CD8B) is never matched case-insensitively, so CD8A and a mouse Cd8a keep their meaning."""
    real = _genes.previous_symbols()
    upper_known = {s.upper() for s in _genes.known_human_symbols()}
    assert not any(old.upper() in upper_known for old in real)  # the shipped tables hold no such name
    monkeypatch.setattr(_genes, "previous_symbols", lambda: {**real, "Cd8a": "CD8B"})
    _genes._alias_rows.cache_clear()
    try:
        assert "CD8A" not in _genes.aliases()
        assert _genes.current_symbol("CD8A") == "CD8A"
        assert _genes.current_symbol("cd8a") is None and _genes.current_symbol("Cd8a") is None
        assert _genes.current_symbol("amica1") == "JAML"  # a previous symbol no current symbol shares: folded
    finally:
        monkeypatch.undo()
        _genes._alias_rows.cache_clear()


@pytest.mark.parametrize("names", [["AMICA1", "JAML", "CD8A"], ["JAML", "AMICA1", "CD8A"]])
def test_data_with_both_the_previous_and_the_current_symbol_keep_the_current_one(names):
    adata = make(names)
    ht.pp.harmonize_genes(adata)
    symbols = adata.var[Keys.SYMBOL]
    assert symbols["JAML"] == "JAML" and pd.isna(symbols["AMICA1"]) and symbols["CD8A"] == "CD8A"
    report = adata.uns[Keys.SYMBOL]
    assert report["n_collisions"] == 1 and list(report["collisions"]["JAML"]) == ["JAML", "AMICA1"]


def _mouse_with_a_human_apoe() -> AnnData:
    """Mouse macrophage genes (log-normalised) and a gene named APOE: a human transgene beside mouse Apoe."""
    human = ["APOE", "CD68", "C1QB", "C1QC", "CD14", "LYZ", "CSF1R", "SPP1", "TREM2", "APOC1", "GPNMB"]
    to_mouse = _genes.human_to_mouse()
    names = [to_mouse[g] for g in human] + ["APOE"]
    rng = np.random.default_rng(0)
    return AnnData(sp.csr_matrix(np.log1p(rng.poisson(2.0, (60, len(names)))).astype(np.float32)),
                   obs=pd.DataFrame(index=[f"c{i}" for i in range(60)]), var=pd.DataFrame(index=names))


def test_an_unmapped_gene_named_as_another_genes_symbol_is_refused_with_a_fix_that_works(digest):
    """Mouse data with Apoe and a human APOE transgene: Apoe maps to APOE, the transgene stays unmapped and keeps
    its name, so the tools read APOE twice. The message said to call var_names_make_unique(), which changes
    nothing (the var names are unique); it now names both genes and the fix, and following it works."""
    adata = _mouse_with_a_human_apoe()
    ht.pp.harmonize_genes(adata, species="mouse")
    assert "harmonised gene symbol(s) name more than one gene" in " ".join(ht.pp.check_input(adata)["issues"])
    before = digest(adata)
    signature = {"tam": ["APOE", "SPP1", "TREM2", "GPNMB", "APOC1"]}
    with pytest.raises(ValueError, match=r"1 harmonised gene symbol\(s\) name more than one gene \(APOE: 'Apoe', "
                                         r"'APOE'\).*drop or rename one gene"):
        ht.tl.score(adata, signature)
    assert digest(adata) == before
    kept = adata[:, adata.var_names != "APOE"].copy()
    ht.tl.score(kept, signature)
    assert kept.obsm["hcctme_scores"]["tam"].notna().all()


def test_the_clash_fix_named_for_a_raw_layout_works():
    """In a scanpy layout the tools read .raw: the message named a fix on var, which left the clash in .raw."""
    adata = _mouse_with_a_human_apoe()
    adata.raw = adata
    ht.pp.harmonize_genes(adata, species="mouse")
    signature = {"tam": ["APOE", "SPP1", "TREM2", "GPNMB", "APOC1"]}
    with pytest.raises(ValueError, match=r"in adata\.raw, which the tool reads: e\.g\. raw = adata\.raw\.to_adata\(\)"):
        ht.tl.score(adata, signature)
    with pytest.raises(ValueError, match=r"each \(e\.g\. adata = adata\[:, ~adata\.var_names"):  # reading X: fix X
        ht.tl.score(adata, signature, use_raw=False)
    raw = adata.raw.to_adata()
    adata.raw = raw[:, ~raw.var_names.isin(["APOE"])]
    ht.tl.score(adata, signature)
    assert adata.obsm["hcctme_scores"]["tam"].notna().all()


def test_ta_response_and_enrich_refuse_a_symbol_clash_too():
    """Review of sweep 60: ta_response(aggregate="mean") gave the old var_names_make_unique() advice, and enrich
    ranked "APOE" by whichever of Apoe and the transgene had the smaller p-value."""
    to_mouse = _genes.human_to_mouse()
    wanted = ["APOE", "CD68", "C1QB", "C1QC", "CD14", "LYZ", "CSF1R", "SPP1", "TREM2", "APOC1", "GPNMB", "CD74",
              "FCGR3A", "MRC1", "CD163", "MSR1", "MARCO", "VSIG4", "FOLR2", "LYVE1"]
    human = [g for g in wanted if g in to_mouse]
    names = [to_mouse[g] for g in human] + ["APOE"]
    rng = np.random.default_rng(0)
    condition = np.repeat(["R", "N"], 120)
    counts = rng.poisson(5.0, (240, len(names))).astype(np.float32)
    obs = pd.DataFrame({"sample": pd.Categorical(np.repeat([f"s{i}" for i in range(8)], 30)),
                        "cond": pd.Categorical(condition)}, index=[f"c{i}" for i in range(240)])
    adata = AnnData(sp.csr_matrix(counts), obs=obs, var=pd.DataFrame(index=names))
    adata.layers["counts"] = adata.X.copy()
    ht.pp.harmonize_genes(adata, species="mouse")
    clash = r"1 harmonised gene symbol\(s\) name more than one gene \(APOE: "
    lognorm = adata.copy()
    lognorm.X = sp.csr_matrix(np.log1p(counts))
    with pytest.raises(ValueError, match=clash):
        ht.tl.ta_response(lognorm, sample_key="sample", aggregate="mean")
    ht.tl.compare(adata, features="genes", condition_key="cond", sample_key="sample", reference="R")
    with pytest.raises(ValueError, match=clash):
        ht.tl.enrich(adata, signatures={"tam": human[:12]}, min_size=3, permutation_num=100)


def test_a_human_gene_keeps_its_symbol_against_a_mouse_orthologs_id():
    """Sweep 61: the preferred-ortholog tie-break ran on human genes too, which are never a mouse ortholog, so in
    a human+mouse (PDX) reference the mouse Cd8a's Ensembl id took CD8A from the human gene listed before it."""
    ids = {"CD8A": "ENSG00000153563", "CD4": "ENSG00000010610", "PTPRC": "ENSG00000081237",
           "CD3E": "ENSG00000198851", "mm10_Cd8a": "ENSMUSG00000053977"}
    # sweep 63: with the mouse gene listed first, the tie of two Ensembl routes went to the position
    for order in (list(ids), list(reversed(ids))):
        adata = AnnData(np.ones((3, len(ids)), np.float32),
                        var=pd.DataFrame({"gene_ids": [ids[g] for g in order]}, index=order))
        ht.pp.harmonize_genes(adata, gene_symbols="gene_ids")
        assert adata.uns[Keys.SYMBOL]["species_used"] == "human"
        assert adata.var.loc["CD8A", Keys.SYMBOL] == "CD8A" and pd.isna(adata.var.loc["mm10_Cd8a", Keys.SYMBOL])
        assert adata.uns[Keys.SYMBOL]["collisions"]["CD8A"] == ["ENSG00000153563", "ENSMUSG00000053977"]
