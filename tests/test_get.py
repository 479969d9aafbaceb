"""hcctme.get: every stored result read back by key, with a KeyError naming the tool to run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from anndata import AnnData

import hcctme as ht
from hcctme._constants import Keys, Suffix


def _cells(n: int = 40, n_genes: int = 30, seed: int = 0) -> AnnData:
    rng = np.random.default_rng(seed)
    adata = AnnData(np.log1p(rng.poisson(2.0, (n, n_genes))).astype(np.float32))
    adata.var_names = [f"G{i}" for i in range(n_genes)]
    adata.obs_names = [f"c{i}" for i in range(n)]
    return adata


def _table(**columns) -> pd.DataFrame:
    return pd.DataFrame(columns)


# -- on real tool outputs --------------------------------------------------------------------------
def test_scores_and_params_of_tl_score():
    adata = _cells()
    sigs = {"A": [f"G{i}" for i in range(8)], "B": [f"G{i}" for i in range(10, 20)]}
    ht.tl.score(adata, sigs, key_added="s")
    scores = ht.get.scores(adata, "s")
    assert list(scores.columns) == ["A", "B"] and scores.index.equals(adata.obs_names)
    scores.iloc[0, 0] = -1.0  # a copy: the stored scores are untouched
    assert adata.obsm["s"].iloc[0, 0] >= 0
    params = ht.get.params(adata, "s")
    assert params["tool"] == "hcctme.tl.score" and params["method"] == "ucell"
    assert params["genes_used"]["A"] == sigs["A"] and params["coverage"] == {"A": 1.0, "B": 1.0}
    assert params["library_version"] == "user" or params["library_version"].startswith(ht.__version__)
    assert "s" not in adata.uns  # the contract: parameters under key + "_params", nothing under the key
    params["dropped"].append("X")  # sweep 61: a shallow copy; nested lists and dicts were the stored ones
    params["genes_used"]["A"].append("X")
    params["coverage"]["A"] = 0.0
    again = ht.get.params(adata, "s")
    assert again["dropped"] == [] and again["genes_used"]["A"] == sigs["A"] and again["coverage"]["A"] == 1.0


def test_params_of_pseudobulk():
    adata = _cells()
    adata.layers["counts"] = np.round(np.expm1(adata.X)).astype(np.float32)
    adata.obs["patient"] = pd.Categorical(np.repeat(["P1", "P2"], 20))
    pdata = ht.tl.pseudobulk(adata, sample_key="patient", min_cells=1)
    params = ht.get.params(pdata, Keys.PSEUDOBULK)
    assert params["tool"] == "hcctme.tl.pseudobulk"
    assert params["params"] == {"sample_key": "patient", "groupby": None, "layer": "counts", "mode": "sum",
                                "min_cells": 1, "chunk_size": None}


def test_states_reads_every_column_call_states_writes():
    adata = _cells(4)
    adata.obs["hcctme_state"] = pd.Categorical(["TAM2_SPP1", "unassigned", "CD8_TEX_TERMINAL", "unassigned"])
    adata.obs["hcctme_state_confidence"] = [0.9, 0.0, 0.7, 0.1]
    adata.obs["hcctme_state_context"] = ["macrophage", "macrophage", "cd8_t", "cd8_t"]
    states = ht.get.states(adata)
    assert list(states.columns) == ["state", "confidence", "context"]
    assert states["state"].tolist() == ["TAM2_SPP1", "unassigned", "CD8_TEX_TERMINAL", "unassigned"]
    assert states["confidence"].tolist() == [0.9, 0.0, 0.7, 0.1]
    with pytest.raises(KeyError, match="call_states"):
        ht.get.states(adata, "other_state")


def test_states_refuses_a_column_call_states_did_not_write():
    """Any obs column read as state calls (sweep 57: get.states(adata, "cluster") returned the authors' labels)."""
    adata = _cells(4)
    adata.obs["cluster"] = ["a", "b", "a", "b"]
    with pytest.raises(TypeError, match=r"no calls of hcctme\.tl\.call_states"):
        ht.get.states(adata, "cluster")
    adata.obs["cluster_confidence"] = 0.5
    adata.uns["cluster_params"] = {"tool": "hcctme.tl.tib"}
    with pytest.raises(TypeError, match=r"its record names hcctme\.tl\.tib"):
        ht.get.states(adata, "cluster")


# -- on hand-built entries in the contract layout --------------------------------------------------
TOOLS = [
    # getter call, where the table is stored, tool named in the error
    (lambda a: ht.get.compare(a), Keys.COMPARE, "tl.compare"),
    (lambda a: ht.get.compare(a, values=True), Keys.COMPARE + Suffix.VALUES, "tl.compare"),
    (lambda a: ht.get.enrich(a), Keys.ENRICH, "tl.enrich"),
    (lambda a: ht.get.ta_response(a), Keys.TA_RESPONSE, "tl.ta_response"),
    (lambda a: ht.get.ta_response(a, per_sample=True), Keys.TA_RESPONSE + Suffix.PER_SAMPLE, "tl.ta_response"),
    (lambda a: ht.get.crosstalk(a), Keys.CROSSTALK, "tl.crosstalk"),
    (lambda a: ht.get.crosstalk(a, differential=True), Keys.CROSSTALK + Suffix.DIFF, "tl.crosstalk"),
    (lambda a: ht.get.tib(a), Keys.TIB, "tl.tib"),
    (lambda a: ht.get.profile(a), Keys.PROFILE, "tl.resistance_profile"),
    (lambda a: ht.get.profile(a, summary=True), Keys.PROFILE + Suffix.SUMMARY, "tl.resistance_profile"),
]


@pytest.mark.parametrize(("read", "where", "tool"), TOOLS)
def test_each_getter_reads_its_key_and_names_the_tool(read, where, tool):
    adata = _cells(2)
    with pytest.raises(KeyError, match=tool):
        read(adata)
    table = _table(feature=["a", "b"], padj=[0.01, 0.5])
    adata.uns[where] = table
    got = read(adata)
    pd.testing.assert_frame_equal(got, table)
    got.loc[0, "padj"] = 1.0  # a copy
    assert adata.uns[where].loc[0, "padj"] == 0.01
    adata.uns[where] = {"not": "a table"}
    with pytest.raises(TypeError, match=tool):  # a dict without a table (sweep 55: a KeyError listing the key)
        read(adata)
    adata.uns[where] = np.arange(3)
    with pytest.raises(TypeError, match="not a results table"):
        read(adata)


def test_getters_take_the_key_added():
    adata = _cells(2)
    adata.uns["cmp_genes"] = _table(feature=["x"])
    adata.uns["cmp_genes_params"] = {"tool": "hcctme.tl.compare", "params": {"features": "genes"},
                                     "library_version": "v"}
    assert ht.get.compare(adata, "cmp_genes")["feature"].tolist() == ["x"]
    assert ht.get.params(adata, "cmp_genes")["params"] == {"features": "genes"}
    with pytest.raises(KeyError, match="hcctme_compare"):
        ht.get.compare(adata)


def test_params_errors():
    adata = _cells(2)
    with pytest.raises(KeyError, match="'nothing_params'"):
        ht.get.params(adata, "nothing")
    adata.uns["x_params"] = "text"
    with pytest.raises(TypeError, match="not a dict"):
        ht.get.params(adata, "x")
    adata.uns["log1p"] = {"base": None}  # sweep 61: any dict under the key was read as hcctme 0.1's record
    adata.uns["truth"] = {"params": {"n": 1}, "effects": [1]}
    for key in ("log1p", "truth"):
        with pytest.raises(KeyError, match=f"no hcctme tool wrote a result under key {key!r}"):
            ht.get.params(adata, key)
    with pytest.raises(TypeError, match="AnnData"):
        ht.get.params(pd.DataFrame(), "x")


# -- results written by hcctme 0.1 -----------------------------------------------------------------
def test_reads_the_layouts_of_hcctme_0_1():
    adata = _cells(2)
    pooled, diff = _table(ligand=["SPP1"]), _table(ligand=["SPP1"], padj=[0.01])
    conditions = _table(sample=["P1"], condition=["resistor"])
    adata.uns["hcctme_crosstalk"] = {"table": pooled, "skipped": "none", "params": {"groupby": "ct",
                                                                                     "library_version": "v"}}
    adata.uns["hcctme_crosstalk_diff"] = {"table": diff, "conditions": conditions, "params": {"groupby": "ct"}}
    per_sample, compared = _table(sample=["P1"]), _table(feature=["TA_TEFF"])
    adata.uns["hcctme_ta_response"] = {"per_sample": per_sample, "compare": compared, "params": {"reference": "r"}}
    adata.uns["hcctme_scores"] = {"method": "mean", "params": {"layer": "X"}, "library_version": "v"}
    pd.testing.assert_frame_equal(ht.get.crosstalk(adata), pooled)
    pd.testing.assert_frame_equal(ht.get.crosstalk(adata, differential=True), diff)
    pd.testing.assert_frame_equal(ht.get.ta_response(adata), compared)
    pd.testing.assert_frame_equal(ht.get.ta_response(adata, per_sample=True), per_sample)
    crosstalk = ht.get.params(adata, "hcctme_crosstalk")
    assert crosstalk["params"] == {"groupby": "ct", "library_version": "v"} and crosstalk["library_version"] == "v"
    assert crosstalk["skipped"] == "none"
    pd.testing.assert_frame_equal(crosstalk["conditions"], conditions)
    assert ht.get.params(adata, "hcctme_ta_response")["params"] == {"reference": "r"}
    assert ht.get.params(adata, "hcctme_scores")["method"] == "mean"


# -- the call record: get.params(...)["params"] repeats the call ------------------------------------
def _replayed(tool, adata, key, **kwargs):
    """Run ``tool`` on a copy, then again on another copy with the recorded arguments; both copies.

    ``key_added`` is where the record sits, not one of its arguments: it is given again.
    """
    first, second = adata.copy(), adata.copy()
    tool(first, **kwargs)
    tool(second, **ht.get.params(first, key)["params"], **{k: v for k, v in kwargs.items() if k == "key_added"})
    return first, second


def test_every_tools_recorded_arguments_repeat_the_call(tmp_path):
    """Stand-ins for None ("X", "", -1, 0, "none"), arguments left out (ta_response's scores_key) and constants
    recorded as arguments (score's w_neg) made the replay fail or differ; it must work after an h5ad round trip."""
    import warnings

    import anndata as ad

    warnings.simplefilter("ignore")
    adata = ht.datasets.simulate_cohort(6, 120, n_genes=800, spatial=True, random_state=2)
    adata.obs["cell_type"] = adata.obs["cell_type"].astype(str).replace({"Macrophages": "Mono/Mac"})
    ht.tl.score(adata, ["TAM2_SPP1", "TAM1_FOLR2", "KUPFFER", "TREG", "CD8_TEX_TERMINAL", "CD8_TEFF"],
                key_added="mine")
    first, second = _replayed(ht.tl.score, adata, "mine", signatures=["TAM2_SPP1", "TREG"], method="mean",
                              layer=None, chunk_size=None, key_added="mine")
    pd.testing.assert_frame_equal(ht.get.scores(first, "mine"), ht.get.scores(second, "mine"))
    first, _ = _replayed(ht.tl.score, adata, "set", signatures=ht.sig.load(["TREG"]), key_added="set")
    assert ht.get.params(first, "set")["params"]["signatures"] == ["TREG"]  # a set of library signatures: its ids
    own = {"OWN": ["CD8A", "CD8B", "GZMB"], "SIGNED": {"up": ["SPP1", "CD68", "APOE"], "down": ["FOLR2", "LYVE1"]}}
    first, second = _replayed(ht.tl.score, adata, "own", signatures=own, key_added="own")
    pd.testing.assert_frame_equal(ht.get.scores(first, "own"), ht.get.scores(second, "own"))  # sets kept as a net
    first.write_h5ad(tmp_path / "own.h5ad")
    back = ad.read_h5ad(tmp_path / "own.h5ad")  # a list of ids, and the net, come back from the file as given
    ht.tl.score(back, **ht.get.params(back, "own")["params"], key_added="again")
    pd.testing.assert_frame_equal(ht.get.scores(back, "again"), ht.get.scores(first, "own"))
    ht.tl.score(back, **ht.get.params(back, "mine")["params"], key_added="ids")
    pd.testing.assert_frame_equal(ht.get.scores(back, "ids"), ht.get.scores(back, "mine"))
    first, second = _replayed(ht.tl.call_states, adata, Keys.STATE, cell_type_key="cell_type", scores_key="mine",
                              context_map={"Mono/Mac": "macrophage", "B cells": None}, sample_key=None)
    pd.testing.assert_frame_equal(ht.get.states(first), ht.get.states(second))
    adata.write_h5ad(tmp_path / "a.h5ad")
    ht.tl.call_states(adata, cell_type_key="cell_type", scores_key="mine", context_map={"Mono/Mac": "macrophage"})
    adata.write_h5ad(tmp_path / "states.h5ad")
    back = ad.read_h5ad(tmp_path / "states.h5ad")  # the record survives the file
    assert ht.get.params(back, Keys.STATE)["params"]["context_map"] == {"Mono/Mac": "macrophage"}
    assert ht.get.params(back, Keys.STATE)["params"]["sample_key"] is None
    cases = [
        (ht.tl.compare, Keys.COMPARE, dict(condition_key="response", sample_key="patient", reference="responder",
                                           features="genes", groupby="cell_type", layer="counts")),
        (ht.tl.crosstalk, Keys.CROSSTALK, dict(groupby="cell_type", sample_key="patient", n_perms=None)),
        (ht.tl.tib, Keys.TIB, dict(sample_key="patient", radius=None, label_key=None)),
        (ht.tl.ta_response, Keys.TA_RESPONSE, dict(sample_key="patient", aggregate="mean", scores_key="mine",
                                                   score_method="mean")),
        (ht.tl.resistance_profile, Keys.PROFILE, dict(sample_key="patient", scores_key="mine", layer=None)),
    ]
    for tool, key, kwargs in cases:
        first, second = _replayed(tool, adata, key, **kwargs)
        for suffix in ("", Suffix.PER_SAMPLE):
            if key + suffix in first.uns:
                pd.testing.assert_frame_equal(first.uns[key + suffix], second.uns[key + suffix], obj=key + suffix)
    ht.tl.compare(adata, **cases[0][2])
    first, second = _replayed(ht.tl.enrich, adata, Keys.ENRICH, group=None, contrast=None, permutation_num=50)
    pd.testing.assert_frame_equal(ht.get.enrich(first), ht.get.enrich(second))
    bulk = ht.tl.pseudobulk(adata, sample_key="patient", groupby=None, layer="counts")
    again = ht.tl.pseudobulk(adata, **ht.get.params(bulk, Keys.PSEUDOBULK)["params"])
    np.testing.assert_array_equal(np.asarray(bulk.X), np.asarray(again.X))


def test_profile_evidence_is_read_through_get_and_slashed_keys_are_refused():
    """The long evidence table had no reader; a key_added holding "/" wrote nested h5ad groups (read back
    elsewhere, or not at all)."""
    adata = ht.datasets.simulate_cohort(4, 60, n_genes=600, random_state=1)
    ht.tl.score(adata)
    ht.tl.resistance_profile(adata, sample_key="patient", key_added="prof")
    evidence = ht.get.profile(adata, "prof", evidence=True)
    assert list(evidence.columns) == ["sample", "axis", "evidence", "feature", "value", "z", "source"]
    with pytest.raises(ValueError, match="not both"):
        ht.get.profile(adata, "prof", summary=True, evidence=True)
    with pytest.raises(ValueError, match="holds '/'"):
        ht.tl.score(adata, key_added="ucell/v2")


def test_a_key_holding_something_else_than_a_table_is_a_type_error():
    """Sweep 55: a dict under the key read as 0.1's wrapper: the KeyError said the key was absent, then listed it."""
    adata = AnnData(np.zeros((2, 2), dtype=np.float32))
    adata.uns["hcctme_compare"] = {"note": "not a table"}
    with pytest.raises(TypeError, match=r"uns\['hcctme_compare'\] is a dict, not a results table"):
        ht.get.compare(adata)


def test_a_reader_refuses_another_tools_table():
    """Sweep 58: get.ta_response / get.tib returned tl.compare's composition table as their own."""
    adata = AnnData(np.zeros((2, 2), dtype=np.float32))
    table = pd.DataFrame({"feature": ["a"], "pvalue": [0.5]})
    adata.uns["hcctme_compare"] = table
    adata.uns["hcctme_compare_params"] = {"tool": "hcctme.tl.compare"}
    for read in (ht.get.ta_response, ht.get.tib, ht.get.profile, ht.get.enrich, ht.get.crosstalk):
        with pytest.raises(TypeError, match=r"holds a result of hcctme.tl.compare, not of"):
            read(adata, "hcctme_compare")
    pd.testing.assert_frame_equal(ht.get.compare(adata), table)
    adata.uns["hcctme_compare_params"] = {"tool": "hcctme.tl.ta_response"}  # its comparison has compare's columns
    pd.testing.assert_frame_equal(ht.get.compare(adata), table)
