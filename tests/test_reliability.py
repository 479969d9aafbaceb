"""Every public tool refuses bad input with a clear ValueError/KeyError/TypeError/FileNotFoundError
and leaves the AnnData it was given exactly as it was (digest of X, layers, raw, obs, var, obsm, uns).

One table drives the test: (tool call, how the input is broken, expected exception, message fragment).
"""

from __future__ import annotations

import copy
import hashlib
import os
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata import AnnData, read_h5ad

import hcctme as hc
from hcctme._labels import map_from_table

ALLOWED = (ValueError, KeyError, TypeError, FileNotFoundError)
FORBIDDEN = (IndexError, AttributeError, AssertionError, ZeroDivisionError, RuntimeError)
REF = "responder"
KW = {"condition_key": "response", "sample_key": "patient", "reference": REF}


@pytest.fixture(scope="module")
def cohort() -> AnnData:
    """One small spatial cohort: log-normalised X, counts layer, scores and state calls."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adata = hc.datasets.simulate_cohort(6, 80, n_genes=800, spatial=True, random_state=3)
        hc.tl.score(adata)
        hc.tl.call_states(adata, cell_type_key="cell_type", sample_key="patient")
    return adata


# --------------------------------------------------------------------------------------------------
# ways to break the input (each returns the object the tool is given; applied to a deep copy)
# --------------------------------------------------------------------------------------------------
def same(a: AnnData) -> AnnData:
    return a


def empty(a: AnnData) -> AnnData:
    return a[:0].copy()


def as_frame(a: AnnData) -> pd.DataFrame:
    return a.obs


def nan_x(a: AnnData) -> AnnData:
    X = a.X.toarray() if sp.issparse(a.X) else np.array(a.X)
    X[3, :50] = np.nan
    a.X = X
    return a


def nan_counts(a: AnnData) -> AnnData:
    C = a.layers["counts"].toarray().astype(np.float32)
    C[0, 0] = np.nan
    a.layers["counts"] = C
    return a


def inf_x(a: AnnData) -> AnnData:
    X = a.X.toarray() if sp.issparse(a.X) else np.array(a.X)
    X[1, :] = np.inf
    a.X = X
    return a


def scaled_x(a: AnnData) -> AnnData:
    X = a.X.toarray() if sp.issparse(a.X) else np.array(a.X)
    a.X = ((X - X.mean(0)) / (X.std(0) + 1e-6)).astype(np.float32)
    return a


def negative_counts(a: AnnData) -> AnnData:
    C = a.layers["counts"].copy()
    C.data[0] = -3.0
    a.layers["counts"] = C
    return a


def counts_x(a: AnnData) -> AnnData:
    a.X = a.layers["counts"].copy()
    return a


def bool_x(a: AnnData) -> AnnData:
    a.X = (a.X > 0)
    return a


def dup_vars(a: AnnData) -> AnnData:
    names = a.var_names.to_numpy().copy()
    names[1::2] = names[0::2][: len(names[1::2])]
    a.var_names = pd.Index(names)
    return a


def bad_index(a: AnnData, *, value: int | None = None, layer: str | None = None) -> AnnData:
    """A CSR matrix whose column index points past the last gene (a corrupt file)."""
    X = a.layers[layer] if layer else a.X
    X.indices[7] = a.n_vars if value is None else value
    return a


def huge_index(a: AnnData) -> AnnData:
    return bad_index(a, value=2**30)


def bad_count_index(a: AnnData) -> AnnData:
    return bad_index(a, layer="counts")


def bad_indptr(a: AnnData) -> AnnData:
    a.X.indptr[5] = a.X.indptr[6] + 3
    return a


def garbage_genes(a: AnnData) -> AnnData:
    a.var_names = pd.Index([f"xq{i}" for i in range(a.n_vars)])
    return a


def no_scores(a: AnnData) -> AnnData:
    del a.obsm["hcctme_scores"]
    return a


def array_scores(a: AnnData) -> AnnData:
    a.obsm["hcctme_scores"] = a.obsm["hcctme_scores"].to_numpy()
    return a


def nan_scores(a: AnnData) -> AnnData:
    frame = a.obsm["hcctme_scores"].copy()
    frame.iloc[:5, :] = np.nan
    a.obsm["hcctme_scores"] = frame
    return a


def marker_scores_only(a: AnnData) -> AnnData:
    frame = a.obsm["hcctme_scores"]
    a.obsm["hcctme_scores"] = frame[[c for c in frame.columns if c.startswith("MARKER_")]]
    return a


def no_states(a: AnnData) -> AnnData:
    del a.obs["hcctme_state"], a.obs["hcctme_state_context"]
    return a


def no_spatial(a: AnnData) -> AnnData:
    del a.obsm["spatial"]
    return a


def nan_spatial(a: AnnData) -> AnnData:
    xy = np.array(a.obsm["spatial"], dtype=float)
    xy[2, 0] = np.nan
    a.obsm["spatial"] = xy
    return a


def one_level(a: AnnData) -> AnnData:
    a.obs["response"] = "responder"
    return a


def nan_cell_type(a: AnnData) -> AnnData:
    col = a.obs["cell_type"].astype(object)
    col.iloc[0] = np.nan
    a.obs["cell_type"] = col
    return a


def unknown_cell_types(a: AnnData) -> AnnData:
    a.obs["cell_type"] = [f"cluster_{i % 4}" for i in range(a.n_obs)]
    return a


def condition_varies(a: AnnData) -> AnnData:
    resp = a.obs["response"].astype(str).to_numpy().copy()
    first = np.flatnonzero(a.obs["patient"].astype(str).to_numpy() == "P01")[0]
    resp[first] = "resistor" if resp[first] == "responder" else "responder"
    a.obs["response"] = resp
    return a


def one_sample_per_level(a: AnnData) -> AnnData:
    keep = a.obs["patient"].astype(str).isin(["P01", "P02", "P03", "P04"]).to_numpy()
    a = a[keep].copy()
    resp = a.obs["patient"].astype(str).map({"P01": "responder", "P02": "resistor", "P03": "resistor",
                                            "P04": "resistor"})
    a.obs["response"] = resp.to_numpy()
    return a


def gene_table(a: AnnData) -> AnnData:
    """A small genes comparison table (what tl.compare(features='genes') stores) in uns."""
    rng = np.random.default_rng(0)
    genes = a.var_names[:300]
    a.uns["hcctme_compare"] = pd.DataFrame({
        "feature": genes, "group": "all", "contrast": "resistor vs responder",
        "statistic": rng.normal(size=len(genes)), "effect": rng.normal(size=len(genes)),
        "method": "deseq2",
    })
    return a


def scores_table(a: AnnData) -> AnnData:
    a = gene_table(a)
    a.uns["hcctme_compare"]["method"] = "mannwhitney"
    return a


def table_without_statistic(a: AnnData) -> AnnData:
    a = gene_table(a)
    a.uns["hcctme_compare"] = a.uns["hcctme_compare"].drop(columns="statistic")
    return a


# --------------------------------------------------------------------------------------------------
# the table
# --------------------------------------------------------------------------------------------------
class Case(NamedTuple):
    tool: str
    call: Callable[[Any], Any]
    prepare: Callable[[AnnData], Any]
    error: type[BaseException]
    match: str


tl, pp = hc.tl, hc.pp

# a valid call of each tool: used for the generic cases (not an AnnData, empty AnnData)
VALID: dict[str, Callable[[Any], Any]] = {
    "score": lambda a: tl.score(a, ["TAM2_SPP1"]),
    "call_states": lambda a: tl.call_states(a, cell_type_key="cell_type"),
    "pseudobulk": lambda a: tl.pseudobulk(a, sample_key="patient"),
    "compare_scores": lambda a: tl.compare(a, **KW),
    "compare_composition": lambda a: tl.compare(a, **KW, features="composition", groupby="cell_type"),
    "compare_genes": lambda a: tl.compare(a, **KW, features="genes"),
    "ta_response": lambda a: tl.ta_response(a, sample_key="patient"),
    "crosstalk": lambda a: tl.crosstalk(a, groupby="cell_type", axes_only=True, n_perms=None),
    "tib": lambda a: tl.tib(a, sample_key="patient", n_perms=0),
    "resistance_profile": lambda a: tl.resistance_profile(a, sample_key="patient"),
    "harmonize_genes": lambda a: pp.harmonize_genes(a),
}

CASES: dict[str, Case] = {}
for _tool, _call in VALID.items():
    CASES[f"{_tool}-not_anndata"] = Case(_tool, _call, as_frame, TypeError, "AnnData")
    CASES[f"{_tool}-empty"] = Case(_tool, _call, empty, ValueError, "empty")

CASES.update({
    # ---- tl.score -------------------------------------------------------------------------------
    "score-unknown_method": Case("score", lambda a: tl.score(a, method="gsva"), same, ValueError, "method="),
    "score-missing_layer": Case("score", lambda a: tl.score(a, layer="lognorm"), same, KeyError,
                                "layers has no 'lognorm'"),
    "score-layer_not_str": Case("score", lambda a: tl.score(a, layer=1), same, TypeError, "layer must be"),
    "score-raw_missing": Case("score", lambda a: tl.score(a, use_raw=True), same, ValueError, "adata.raw is None"),
    "score-layer_and_raw": Case("score", lambda a: tl.score(a, layer="counts", use_raw=True), same, ValueError,
                                "not both"),
    "score-nan_matrix": Case("score", lambda a: tl.score(a, ["TAM2_SPP1"]), nan_x, ValueError, "NaN"),
    "score-inf_matrix": Case("score", lambda a: tl.score(a, ["TAM2_SPP1"], method="mean"), inf_x, ValueError,
                             "infinite"),
    "score-csr_index_past_last_gene": Case("score", lambda a: tl.score(a, ["TAM2_SPP1"]), bad_index, ValueError,
                                           "corrupt CSR"),
    "score-csr_index_huge": Case("score", lambda a: tl.score(a, ["TAM2_SPP1"], method="mean"), huge_index,
                                 ValueError, "corrupt CSR"),
    "score-csr_indptr_decreasing": Case("score", lambda a: tl.score(a, ["TAM2_SPP1"]), bad_indptr, ValueError,
                                        "indptr"),
    "score-bool_matrix": Case("score", lambda a: tl.score(a, ["TAM2_SPP1"]), bool_x, TypeError, "dtype"),
    "score-duplicated_genes": Case("score", lambda a: tl.score(a, ["TAM2_SPP1", "CD8_TEFF"]), dup_vars,
                                   ValueError, "var_names_make_unique"),
    "score-no_gene_overlap": Case("score", lambda a: tl.score(a), garbage_genes, ValueError, "harmonize_genes"),
    "score-unknown_signature": Case("score", lambda a: tl.score(a, ["NOT_A_SIGNATURE"]), same, KeyError,
                                    "NOT_A_SIGNATURE"),
    "score-missing_gmt": Case("score", lambda a: tl.score(a, "/nonexistent/sets.gmt"), same, FileNotFoundError,
                              "sets.gmt"),
    "score-max_rank_type": Case("score", lambda a: tl.score(a, max_rank="1500"), same, TypeError, "max_rank"),
    "score-min_coverage_range": Case("score", lambda a: tl.score(a, min_coverage=2), same, ValueError,
                                     "min_coverage"),
    "score-chunk_size_zero": Case("score", lambda a: tl.score(a, chunk_size=0), same, ValueError, "chunk_size"),
    "score-n_jobs_type": Case("score", lambda a: tl.score(a, n_jobs="2"), same, TypeError, "n_jobs"),
    "score-key_added_empty": Case("score", lambda a: tl.score(a, key_added=""), same, TypeError, "key_added"),
    "score-copy_type": Case("score", lambda a: tl.score(a, copy="yes"), same, TypeError, "copy"),
    # ---- tl.call_states -------------------------------------------------------------------------
    "call_states-duplicated_genes": Case("call_states", VALID["call_states"], dup_vars, ValueError,
                                         "var_names_make_unique"),
    "call_states-no_scores": Case("call_states", VALID["call_states"], no_scores, KeyError, "tl.score"),
    "call_states-scores_not_frame": Case("call_states", VALID["call_states"], array_scores, TypeError,
                                         "not a DataFrame"),
    "call_states-nan_scores": Case("call_states", VALID["call_states"], nan_scores, ValueError, "NaN"),
    "call_states-no_state_signatures": Case("call_states", VALID["call_states"], marker_scores_only, ValueError,
                                            "no state signature"),
    "call_states-missing_cell_type_key": Case("call_states", lambda a: tl.call_states(a, cell_type_key="celltype"),
                                              same, KeyError, "no column 'celltype'"),
    "call_states-nan_labels": Case("call_states", VALID["call_states"], nan_cell_type, ValueError,
                                   "missing values"),
    "call_states-unmappable_labels": Case("call_states", VALID["call_states"], unknown_cell_types, ValueError,
                                          "maps to a cell_context"),
    "call_states-missing_sample_key": Case("call_states",
                                           lambda a: tl.call_states(a, cell_type_key="cell_type", sample_key="pt"),
                                           same, KeyError, "no column 'pt'"),
    "call_states-min_confidence": Case("call_states",
                                       lambda a: tl.call_states(a, cell_type_key="cell_type", min_confidence=1.5),
                                       same, ValueError, "min_confidence"),
    "call_states-unknown_refine": Case("call_states",
                                       lambda a: tl.call_states(a, cell_type_key="cell_type", refine="louvain"),
                                       same, ValueError, "refine="),
    # ---- tl.pseudobulk --------------------------------------------------------------------------
    "pseudobulk-missing_sample_key": Case("pseudobulk", lambda a: tl.pseudobulk(a, sample_key="donor"), same,
                                          KeyError, "no column 'donor'"),
    "pseudobulk-missing_layer": Case("pseudobulk", lambda a: tl.pseudobulk(a, sample_key="patient", layer="raw"),
                                     same, KeyError, "layers has no 'raw'"),
    "pseudobulk-lognorm_for_sum": Case("pseudobulk", lambda a: tl.pseudobulk(a, sample_key="patient", layer=None),
                                       same, ValueError, "raw integer counts"),
    "pseudobulk-scaled_for_sum": Case("pseudobulk", lambda a: tl.pseudobulk(a, sample_key="patient", layer=None),
                                      scaled_x, ValueError, "scaled"),
    "pseudobulk-nan_counts": Case("pseudobulk", VALID["pseudobulk"], nan_counts, ValueError, "NaN"),
    "pseudobulk-duplicated_genes": Case("pseudobulk", VALID["pseudobulk"], dup_vars, ValueError, "duplicated"),
    "pseudobulk-negative_counts_layer": Case("pseudobulk", VALID["pseudobulk"], negative_counts, ValueError,
                                             "layers['counts'] does not hold raw counts"),
    "pseudobulk-corrupt_counts": Case("pseudobulk", VALID["pseudobulk"], bad_count_index, ValueError,
                                      "layers['counts'] is a corrupt CSR"),
    "pseudobulk-unknown_mode": Case("pseudobulk", lambda a: tl.pseudobulk(a, sample_key="patient", mode="max"),
                                    same, ValueError, "mode="),
    "pseudobulk-groupby_is_sample": Case("pseudobulk",
                                         lambda a: tl.pseudobulk(a, sample_key="patient", groupby="patient"),
                                         same, ValueError, "groupby and sample_key"),
    "pseudobulk-too_few_cells": Case("pseudobulk", lambda a: tl.pseudobulk(a, sample_key="patient", min_cells=10**6),
                                     same, tl.TooFewCellsError, "too few cells"),
    # ---- tl.compare -----------------------------------------------------------------------------
    "compare-single_level": Case("compare_scores", VALID["compare_scores"], one_level, ValueError, "single level"),
    "compare-reference_not_level": Case("compare_scores", lambda a: tl.compare(a, **{**KW, "reference": "CR"}),
                                        same, ValueError, "'CR' is not a level"),
    "compare-missing_condition": Case("compare_scores",
                                      lambda a: tl.compare(a, **{**KW, "condition_key": "outcome"}),
                                      same, KeyError, "no column 'outcome'"),
    "compare-no_scores": Case("compare_scores", VALID["compare_scores"], no_scores, KeyError, "tl.score"),
    "compare-condition_varies": Case("compare_scores", VALID["compare_scores"], condition_varies, ValueError,
                                     "varies within samples"),
    "compare-one_sample_per_level": Case("compare_scores", VALID["compare_scores"], one_sample_per_level,
                                         ValueError, "one sample per group"),
    "compare-unknown_features": Case("compare_scores", lambda a: tl.compare(a, **KW, features="cells"), same,
                                     ValueError, "features="),
    "compare-unknown_method": Case("compare_scores", lambda a: tl.compare(a, **KW, method="anova"), same,
                                   ValueError, "anova"),
    "compare-covariates_type": Case("compare_scores", lambda a: tl.compare(a, **KW, covariates=[1]), same,
                                    TypeError, "covariates"),
    "compare-missing_covariate": Case("compare_scores", lambda a: tl.compare(a, **KW, covariates="bmi"), same,
                                      KeyError, "no column 'bmi'"),
    "compare-composition_no_sample": Case("compare_composition",
                                          lambda a: tl.compare(a, **{**KW, "sample_key": None},
                                                               features="composition", groupby="cell_type"),
                                          same, ValueError, "give sample_key"),
    "compare-composition_missing_groupby": Case("compare_composition",
                                                lambda a: tl.compare(a, **KW, features="composition",
                                                                     groupby="hcctme_stat"),
                                                same, KeyError, "hcctme_stat"),
    "compare-composition_pseudocount": Case("compare_composition",
                                            lambda a: tl.compare(a, **KW, features="composition",
                                                                 groupby="cell_type", pseudocount=-1),
                                            same, ValueError, "pseudocount"),
    "compare-genes_lognorm": Case("compare_genes", lambda a: tl.compare(a, **KW, features="genes", layer=None),
                                  same, ValueError, "counts"),
    "compare-genes_scaled": Case("compare_genes", lambda a: tl.compare(a, **KW, features="genes", layer=None),
                                 scaled_x, ValueError, "counts"),
    "compare-genes_corrupt_counts": Case("compare_genes", VALID["compare_genes"], bad_count_index, ValueError,
                                         "corrupt CSR"),
    "compare-genes_missing_layer": Case("compare_genes",
                                        lambda a: tl.compare(a, **KW, features="genes", layer="umis"),
                                        same, KeyError, "layers has no 'umis'"),
    # ---- tl.enrich ------------------------------------------------------------------------------
    "enrich-not_anndata": Case("enrich", lambda a: tl.enrich(a.uns["hcctme_compare"]), gene_table, TypeError,
                               "AnnData"),
    "enrich-no_comparison": Case("enrich", lambda a: tl.enrich(a), same, KeyError, "run hcctme.tl.compare"),
    "enrich-scores_comparison": Case("enrich", lambda a: tl.enrich(a, permutation_num=10), scores_table,
                                     ValueError, "features='genes'"),
    "enrich-missing_column": Case("enrich", lambda a: tl.enrich(a, permutation_num=10), table_without_statistic,
                                  KeyError, "statistic"),
    "enrich-enrichr_name": Case("enrich", lambda a: tl.enrich(a, "KEGG_2021_Human", permutation_num=10),
                                gene_table, ValueError, "never downloads"),
    "enrich-sizes": Case("enrich", lambda a: tl.enrich(a, min_size=50, max_size=10), gene_table, ValueError,
                         "max_size"),
    "enrich-unknown_group": Case("enrich", lambda a: tl.enrich(a, group="Macrophages", permutation_num=10),
                                 gene_table, ValueError, "group='Macrophages'"),
    # ---- tl.ta_response -------------------------------------------------------------------------
    "ta_response-missing_sample_key": Case("ta_response", lambda a: tl.ta_response(a, sample_key="donor"), same,
                                           KeyError, "no column 'donor'"),
    "ta_response-condition_without_reference": Case(
        "ta_response", lambda a: tl.ta_response(a, sample_key="patient", condition_key="response"), same,
        ValueError, "without reference"),
    "ta_response-reference_without_condition": Case(
        "ta_response", lambda a: tl.ta_response(a, sample_key="patient", reference=REF), same, ValueError,
        "needs condition_key"),
    "ta_response-reference_not_level": Case(
        "ta_response", lambda a: tl.ta_response(a, sample_key="patient", condition_key="response", reference="CR"),
        same, ValueError, "'CR' is not a level"),
    "ta_response-single_level": Case(
        "ta_response", lambda a: tl.ta_response(a, sample_key="patient", condition_key="response", reference=REF),
        one_level, ValueError, "single level"),
    "ta_response-unknown_aggregate": Case(
        "ta_response", lambda a: tl.ta_response(a, sample_key="patient", aggregate="sum"), same, ValueError,
        "aggregate="),
    "ta_response-too_few_cells": Case(
        "ta_response", lambda a: tl.ta_response(a, sample_key="patient", min_cells=10**6), same,
        tl.TooFewCellsError, "too few cells"),
    # ---- tl.crosstalk ---------------------------------------------------------------------------
    "crosstalk-counts": Case("crosstalk", VALID["crosstalk"], counts_x, ValueError, "log-normalised"),
    "crosstalk-scaled": Case("crosstalk", VALID["crosstalk"], scaled_x, ValueError, "negative values"),
    "crosstalk-nan_matrix": Case("crosstalk", VALID["crosstalk"], nan_x, ValueError, "NaN"),
    "crosstalk-corrupt_matrix": Case("crosstalk", VALID["crosstalk"], huge_index, ValueError, "corrupt CSR"),
    "crosstalk-missing_groupby": Case("crosstalk", lambda a: tl.crosstalk(a, groupby="cluster"), same, KeyError,
                                      "no column 'cluster'"),
    "crosstalk-single_group": Case("crosstalk", lambda a: tl.crosstalk(a, groupby="treatment"), same, ValueError,
                                   "at least 2"),
    "crosstalk-condition_without_sample": Case(
        "crosstalk", lambda a: tl.crosstalk(a, groupby="cell_type", condition_key="response", reference=REF),
        same, ValueError, "needs sample_key"),
    "crosstalk-reference_not_level": Case(
        "crosstalk", lambda a: tl.crosstalk(a, groupby="cell_type", **{**KW, "reference": "CR"}), same,
        ValueError, "'CR' is not a level"),
    "crosstalk-unknown_resource": Case("crosstalk", lambda a: tl.crosstalk(a, groupby="cell_type",
                                                                          resource="nonexistent_db"),
                                       same, ValueError, "not a LIANA resource"),
    "crosstalk-resource_type": Case("crosstalk", lambda a: tl.crosstalk(a, groupby="cell_type", resource=42),
                                    same, TypeError, "resource must be"),
    "crosstalk-resource_columns": Case("crosstalk",
                                       lambda a: tl.crosstalk(a, groupby="cell_type",
                                                              resource=pd.DataFrame({"source": ["A"]})),
                                       same, ValueError, "'ligand'"),
    "crosstalk-no_symbols": Case("crosstalk", VALID["crosstalk"], garbage_genes, ValueError, "harmonize_genes"),
    "crosstalk-duplicated_genes": Case("crosstalk", VALID["crosstalk"], dup_vars, ValueError, "duplicated"),
    "crosstalk-unknown_strength": Case("crosstalk", lambda a: tl.crosstalk(a, groupby="cell_type", strength="max"),
                                       same, ValueError, "strength="),
    "crosstalk-expr_prop": Case("crosstalk", lambda a: tl.crosstalk(a, groupby="cell_type", expr_prop=2.0), same,
                                ValueError, "expr_prop"),
    # ---- tl.tib ---------------------------------------------------------------------------------
    "tib-no_spatial": Case("tib", VALID["tib"], no_spatial, KeyError, "spatial"),
    "tib-nan_spatial": Case("tib", VALID["tib"], nan_spatial, ValueError, "NaN"),
    "tib-no_states": Case("tib", VALID["tib"], no_states, KeyError, "call_states"),
    "tib-missing_sample_key": Case("tib", lambda a: tl.tib(a, sample_key="slide"), same, KeyError,
                                   "no column 'slide'"),
    "tib-unknown_mode": Case("tib", lambda a: tl.tib(a, sample_key="patient", mode="pixels"), same, ValueError,
                             "mode="),
    "tib-negative_radius": Case("tib", lambda a: tl.tib(a, sample_key="patient", radius=-1.0), same, ValueError,
                                "radius"),
    "tib-radius_type": Case("tib", lambda a: tl.tib(a, sample_key="patient", radius="50"), same, TypeError,
                            "radius"),
    "tib-no_tumour": Case("tib", lambda a: tl.tib(a, sample_key="patient", label_key="cell_type",
                                                 tumour_labels=["Not a cell type"], n_perms=0),
                          same, ValueError, "tumour"),
    "tib-spots_without_scores": Case("tib", lambda a: tl.tib(a, sample_key="patient", mode="spots", n_perms=0),
                                     no_scores, KeyError, "tl.score"),
    # ---- tl.resistance_profile ------------------------------------------------------------------
    "profile-duplicated_genes": Case("resistance_profile", VALID["resistance_profile"], dup_vars, ValueError,
                                     "var_names_make_unique"),
    "profile-no_scores": Case("resistance_profile", VALID["resistance_profile"], no_scores, KeyError, "tl.score"),
    "profile-unknown_axis": Case("resistance_profile",
                                 lambda a: tl.resistance_profile(a, sample_key="patient", axes=["NO_SUCH_AXIS"]),
                                 same, ValueError, "unknown axis"),
    "profile-reference_not_level": Case("resistance_profile",
                                        lambda a: tl.resistance_profile(a, sample_key="patient",
                                                                        condition_key="response", reference="CR"),
                                        same, ValueError, "'CR' is not a level"),
    "profile-reference_without_condition": Case("resistance_profile",
                                                lambda a: tl.resistance_profile(a, sample_key="patient",
                                                                                reference=REF),
                                                same, ValueError, "without condition_key"),
    "profile-single_level": Case("resistance_profile",
                                 lambda a: tl.resistance_profile(a, sample_key="patient", condition_key="response"),
                                 one_level, ValueError, "at least 2"),
    "profile-condition_varies": Case("resistance_profile",
                                     lambda a: tl.resistance_profile(a, sample_key="patient",
                                                                     condition_key="response"),
                                     condition_varies, ValueError, "varies within samples"),
    "profile-axes_type": Case("resistance_profile", lambda a: tl.resistance_profile(a, sample_key="patient", axes=5),
                              same, TypeError, "axes must be"),
    "profile-threshold_type": Case("resistance_profile",
                                   lambda a: tl.resistance_profile(a, sample_key="patient", active_threshold="high"),
                                   same, TypeError, "active_threshold"),
    # ---- pp.harmonize_genes ---------------------------------------------------------------------
    "harmonize-missing_column": Case("harmonize_genes", lambda a: pp.harmonize_genes(a, gene_symbols="gene_ids"),
                                     same, KeyError, "no column 'gene_ids'"),
    "harmonize-unknown_species": Case("harmonize_genes", lambda a: pp.harmonize_genes(a, species="rat"), same,
                                      ValueError, "species="),
    "harmonize-unknown_names": Case("harmonize_genes", VALID["harmonize_genes"], garbage_genes, ValueError,
                                    "species"),
    "harmonize-copy_type": Case("harmonize_genes", lambda a: pp.harmonize_genes(a, copy=1), same, TypeError,
                                "copy"),
})


def _fingerprint(obj: Any, digest: Callable[[AnnData], str]) -> str:
    if isinstance(obj, AnnData):
        return digest(obj)
    h = hashlib.sha256(pd.util.hash_pandas_object(obj, index=True).values.tobytes())
    h.update(str(list(obj.columns)).encode())
    return h.hexdigest()


def test_public_tools_are_covered():
    tools = {case.tool.split("_")[0] if case.tool.startswith("compare") else case.tool for case in CASES.values()}
    assert tools >= {"score", "call_states", "pseudobulk", "compare", "enrich", "ta_response", "crosstalk", "tib",
                     "resistance_profile", "harmonize_genes"}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_refused_cleanly(name, cohort, digest):
    case = CASES[name]
    obj = case.prepare(copy.deepcopy(cohort))
    before = _fingerprint(obj, digest)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ALLOWED) as info:
            case.call(obj)
    err = info.value
    assert isinstance(err, case.error) and not isinstance(err, FORBIDDEN), (
        f"{name}: expected {case.error.__name__}, got {type(err).__name__}: {err}")
    message = err.args[0] if err.args else ""
    assert re.search(re.escape(case.match), str(message)), f"{name}: message does not say {case.match!r}: {message}"
    assert _fingerprint(obj, digest) == before, f"{name}: the input was modified by a failed call"


# --------------------------------------------------------------------------------------------------
# a tool run again under the same key_added replaces all of its earlier results
# --------------------------------------------------------------------------------------------------
def test_a_rerun_without_a_condition_or_refinement_drops_the_earlier_runs_second_outputs(cohort):
    """get.*, pl.* and the report read the second tables as the current run's: a run that makes none drops them."""
    from hcctme._constants import Keys, Suffix

    adata = cohort.copy()
    keys = dict(sample_key="patient", condition_key="response", reference=REF)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hc.tl.crosstalk(adata, groupby="cell_type", **keys)
        hc.tl.ta_response(adata, **keys)
        hc.tl.resistance_profile(adata, **keys)
        hc.tl.call_states(adata, cell_type_key="cell_type", sample_key="patient", refine="leiden")
        firsts = {Keys.CROSSTALK + Suffix.DIFF, Keys.TA_RESPONSE, Keys.PROFILE + Suffix.SUMMARY}
        assert firsts <= set(adata.uns) and Keys.STATE + Suffix.UNREFINED in adata.obs
        hc.tl.crosstalk(adata, groupby="cell_type", sample_key="patient")
        hc.tl.ta_response(adata, sample_key="patient")
        hc.tl.resistance_profile(adata, sample_key="patient")
        hc.tl.call_states(adata, cell_type_key="cell_type", sample_key="patient")
    assert not firsts & set(adata.uns) and Keys.STATE + Suffix.UNREFINED not in adata.obs
    with pytest.raises(KeyError, match="with condition_key and reference"):
        hc.get.crosstalk(adata, differential=True)
    with pytest.raises(KeyError, match=r"run hcctme\.tl\.ta_response with condition_key and reference"):
        hc.get.ta_response(adata)
    assert hc.get.params(adata, Keys.TA_RESPONSE)["params"].get("condition_key") is None
    assert len(hc.get.ta_response(adata, per_sample=True)) == adata.obs["patient"].nunique()


# --------------------------------------------------------------------------------------------------
# out-of-core input: backed and dask matrices give the in-memory results
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def counts_on_disk(cohort, tmp_path_factory) -> tuple[AnnData, AnnData]:
    """The cohort with counts in X, in memory and read back backed."""
    import anndata as ad

    adata = AnnData(cohort.layers["counts"].copy(), obs=cohort.obs[["patient", "response", "cell_type"]].copy(),
                    var=pd.DataFrame(index=cohort.var_names))
    path = tmp_path_factory.mktemp("backed") / "counts.h5ad"
    adata.write_h5ad(path)
    return adata, ad.read_h5ad(path, backed="r")


@pytest.mark.parametrize("kw", [{}, {"groupby": "cell_type"}, {"mode": "mean", "groupby": "cell_type", "min_cells": 1}],
                         ids=["sum", "sum-by-type", "mean-by-type"])
def test_pseudobulk_of_backed_and_dask_equals_in_memory(counts_on_disk, kw):
    import dask.array as da

    memory, backed = counts_on_disk
    lazy = memory.copy()
    lazy.X = da.from_array(memory.X.toarray(), chunks=(97, memory.n_vars))
    expected = tl.pseudobulk(memory, sample_key="patient", layer=None, **kw)
    for other in (backed, lazy):
        got = tl.pseudobulk(other, sample_key="patient", layer=None, chunk_size=53, **kw)
        np.testing.assert_allclose(got.X, expected.X, rtol=1e-12)
        np.testing.assert_allclose(got.layers["psbulk_props"], expected.layers["psbulk_props"], rtol=1e-12)
        pd.testing.assert_frame_equal(got.obs, expected.obs)
        assert got.var_names.equals(expected.var_names)


def test_backed_median_and_non_counts_are_refused(counts_on_disk, tmp_path):
    import anndata as ad

    memory, backed = counts_on_disk
    with pytest.raises(ValueError, match="mode='sum' or 'mean'"):
        tl.pseudobulk(backed, sample_key="patient", layer=None, mode="median")
    halves = memory.copy()
    halves.X = halves.X.multiply(0.5).tocsr()
    halves.write_h5ad(tmp_path / "halves.h5ad")
    with pytest.raises(ValueError, match="raw integer counts"):
        tl.pseudobulk(ad.read_h5ad(tmp_path / "halves.h5ad", backed="r"), sample_key="patient", layer=None)


def test_chunked_pseudobulk_names_the_layer_it_read():
    """A fractional value the row sample misses is caught chunk by chunk, and the message names the layer."""
    import dask.array as da

    rng = np.random.default_rng(0)
    n_cells = 6000  # more than the 2000 rows the kind check samples
    counts = rng.poisson(2.0, size=(n_cells, 12)).astype(float)
    sampled = np.random.default_rng(0).choice(n_cells, 2000, replace=False)  # the rows the kind check reads
    counts[np.setdiff1d(np.arange(n_cells), sampled)[-1], 0] = 0.5
    lazy = AnnData(np.zeros((n_cells, 12), dtype=np.float32),
                   obs=pd.DataFrame({"patient": np.repeat(["P1", "P2", "P3"], n_cells // 3)}))
    lazy.layers["counts"] = da.from_array(counts, chunks=(997, 12))
    with pytest.raises(ValueError, match=r"raw integer counts.*layers\['counts'\]"):
        tl.pseudobulk(lazy, sample_key="patient", layer="counts", chunk_size=1000)


# --------------------------------------------------------------------------------------------------
# user input shapes, end to end through the command line: every case works or ends in a clear error
# (exit 2, no traceback) before any expensive step, and no input is ever modified
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scored_file(cohort, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("inputs") / "scored.h5ad"
    cohort.write_h5ad(path)
    return path


def _ten_x_h5(path: Path) -> None:
    """A Cell Ranger v3 .h5 layout (matrix group with barcodes, data, indices, indptr, shape, features)."""
    import h5py

    with h5py.File(path, "w") as handle:
        group = handle.create_group("matrix")
        group["barcodes"] = np.array([b"AAAC-1", b"AAAG-1"])
        group["data"] = np.array([1, 2], dtype=np.int32)
        group["indices"] = np.array([0, 1], dtype=np.int64)
        group["indptr"] = np.array([0, 1, 2], dtype=np.int64)
        group["shape"] = np.array([2, 2], dtype=np.int32)
        group.create_group("features")["name"] = np.array([b"CD8A", b"SPP1"])


def _loom(path: Path) -> None:
    import h5py

    with h5py.File(path, "w") as handle:
        handle["matrix"] = np.ones((2, 3), dtype=np.float32)
        handle.create_group("row_attrs")
        handle.create_group("col_attrs")


def _corrupt_h5ad(src: Path, path: Path) -> None:
    """A copy of ``src`` whose X/indices holds an index past the last gene (flipped bytes on disk)."""
    import shutil

    import h5py

    shutil.copyfile(src, path)
    with h5py.File(path, "r+") as handle:
        indices = handle["X"]["indices"]
        indices[11] = 2**30


class CliCase(NamedTuple):
    argv: Callable[[Path, Path], list[str]]  # (input file, tmp folder) -> arguments
    code: int
    match: str
    before_read: bool = False  # the error must come before the input is read


def _in(name: str) -> Callable[[Path, Path], Path]:
    return lambda src, tmp: tmp / name


CLI_CASES: dict[str, CliCase] = {
    # ---- outputs that are inputs --------------------------------------------------------------------
    "crosstalk-out_is_input": CliCase(lambda i, t: ["crosstalk", str(i), "--out", str(i), "--groupby", "cell_type"],
                                      2, "is the input file", True),
    "compare-out_is_input": CliCase(lambda i, t: ["compare", str(i), "--out", str(i)], 2, "is the input file", True),
    "crosstalk-out_links_to_input": CliCase(
        lambda i, t: ["crosstalk", str(i), "--out", str(_link(i, t / "link.tsv")), "--groupby", "cell_type"],
        2, "is the input file", True),
    "score-out_is_hard_link_of_input": CliCase(
        lambda i, t: ["score", str(i), "--out", str(_link(i, t / "hard.h5ad", hard=True))], 2, "is the input file",
        True),
    "run-out_is_input": CliCase(lambda i, t: ["run", str(i), "--out", str(i)], 2, "is the input file", True),
    "run-out_contains_input": CliCase(lambda i, t: ["run", str(i), "--out", str(i.parent)], 2,
                                      "inside the output folder", True),
    # ---- outputs that cannot be written -------------------------------------------------------------
    "run-out_below_a_file": CliCase(lambda i, t: ["run", str(i), "--out", str(_file(t / "f") / "out")], 2,
                                    "is a file, not a folder", True),
    "run-out_is_a_file": CliCase(lambda i, t: ["run", str(i), "--out", str(_file(t / "f"))], 2, "is a file", True),
    "run-out_is_a_user_folder": CliCase(lambda i, t: ["run", str(i), "--out", str(_file(t / "mine" / "notes.txt")
                                                                                    .parent)],
                                        2, "not an hcctme run folder", True),
    "compare-out_is_a_folder": CliCase(lambda i, t: ["compare", str(i), "--out", str(t)], 2, "is a folder", True),
    "states-out_below_a_file": CliCase(lambda i, t: ["states", str(i), "--out", str(_file(t / "f") / "s.h5ad"),
                                                     "--cell-type-key", "cell_type"], 2, "is a file", True),
    # ---- inputs of the wrong format: the right reader is named ---------------------------------------
    "run-cellranger_h5": CliCase(lambda i, t: ["run", str(_make(t / "m.h5", _ten_x_h5)), "--out", str(t / "o")], 2,
                                 "scanpy.read_10x_h5"),
    "score-loom": CliCase(lambda i, t: ["score", str(_make(t / "m.loom", _loom)), "--out", str(t / "o.h5ad")], 2,
                          "scanpy.read_loom"),
    "score-csv": CliCase(lambda i, t: ["score", str(_text(t / "m.csv", "cell,CD8A\nc1,3\n")), "--out",
                                       str(t / "o.h5ad")], 2, "anndata.read_csv"),
    "states-zarr_folder": CliCase(lambda i, t: ["states", str(_file(t / "m.zarr" / ".zgroup").parent), "--out",
                                                str(t / "o.h5ad"), "--cell-type-key", "cell_type"], 2, "read_zarr"),
    "run-corrupt_sparse_file": CliCase(lambda i, t: ["run", str(_make(t / "c.h5ad", lambda p: _corrupt_h5ad(i, p))),
                                                     "--out", str(t / "o")], 2, "X is a corrupt CSR"),
    # ---- gene sets and context maps -----------------------------------------------------------------
    "score-missing_txt_gene_sets": CliCase(lambda i, t: ["score", str(i), "--out", str(t / "o.h5ad"), "--signatures",
                                                         str(t / "my_sets.txt")], 2, "does not exist", True),
    "score-missing_relative_gmt": CliCase(lambda i, t: ["score", str(i), "--out", str(t / "o.h5ad"), "--signatures",
                                                        "no_such_sets.gmt"], 2, "does not exist", True),
    "run-library_ids_as_user_sets": CliCase(lambda i, t: ["run", str(i), "--out", str(t / "o"), "--signatures",
                                                          "TAM2_SPP1"], 2, "added to the library", True),
    "states-missing_context_map": CliCase(lambda i, t: ["states", str(i), "--out", str(t / "o.h5ad"),
                                                        "--cell-type-key", "cell_type", "--context-map",
                                                        str(t / "map.yaml")], 2, "does not exist", True),
    "states-context_map_not_a_mapping": CliCase(lambda i, t: ["states", str(i), "--out", str(t / "o.h5ad"),
                                                              "--cell-type-key", "cell_type", "--context-map",
                                                              str(_text(t / "map.yaml", "- a\n- b\n"))],
                                                2, "YAML mapping", True),
    # ---- pipeline options refused up front ----------------------------------------------------------
    "run-counts_layer_missing": CliCase(lambda i, t: ["run", str(i), "--out", str(t / "o"), "--sample-key", "patient",
                                                      "--counts-layer", "umis"], 2,
                                      "counts_layer='umis' (--counts-layer) is not a layer"),
    "run-crosstalk_on_counts": CliCase(lambda i, t: ["run", str(i), "--out", str(t / "o"), "--layer", "counts"], 2,
                                       "crosstalk needs log-normalised"),
    "run-unknown_gene_symbols_column": CliCase(lambda i, t: ["run", str(i), "--out", str(t / "o"), "--gene-symbols",
                                                             "feature_name"], 2, "no column 'feature_name'"),
}


def _link(src: Path, path: Path, *, hard: bool = False) -> Path:
    (os.link if hard else os.symlink)(src, path)
    return path


def _file(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("user data\n")
    return path


def _text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _make(path: Path, build: Callable[[Path], None]) -> Path:
    build(path)
    return path


@pytest.mark.parametrize("name", list(CLI_CASES))
def test_command_line_input_shapes(name, scored_file, tmp_path, capsys, monkeypatch):
    from hcctme import _files, cli

    case = CLI_CASES[name]
    src = tmp_path / "input.h5ad"
    src.write_bytes(scored_file.read_bytes())
    argv = case.argv(src, tmp_path)
    inputs = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and not p.is_symlink()}
    if case.before_read:
        def no_read(*args, **kwargs):
            raise AssertionError("the input was read before the output/argument checks")

        monkeypatch.setattr(_files, "read_h5ad", no_read)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == case.code, f"{name}: exit {code}, stderr: {err}"
    assert case.match in err, f"{name}: the message does not say {case.match!r}: {err}"
    assert "Traceback" not in err
    for path, content in inputs.items():
        assert path.read_bytes() == content, f"{name}: {path.name} was modified"
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".part")]


def test_global_flags_after_the_command(capsys):
    from hcctme import cli

    assert cli.main(["axes", "--no-progress", "-v"]) == 0
    assert cli.main(["--no-progress", "axes"]) == 0
    assert "SPP1" in capsys.readouterr().out


def test_unwritable_output_folder_is_refused_before_work(scored_file, tmp_path, capsys, monkeypatch):
    from hcctme import _files, cli

    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    monkeypatch.setattr(_files, "read_h5ad", lambda *a, **k: pytest.fail("input read before the output check"))
    try:
        assert cli.main(["run", str(scored_file), "--out", str(locked / "out")]) == cli.EXIT_USAGE
    finally:
        locked.chmod(0o755)
    assert "not writable" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------
# the pipeline: matrices reach every step, problems are found before the first step, a failed run
# leaves the AnnData as it was, steps that cannot run are recorded as skipped
# --------------------------------------------------------------------------------------------------
PIPE = {"sample_key": "patient", "condition_key": "response", "reference": REF, "cell_type_key": "cell_type"}


@pytest.fixture(scope="module")
def small() -> AnnData:
    """4 patients x 50 cells, log-normalised X and counts, nothing computed yet."""
    return hc.datasets.simulate_cohort(4, 50, n_genes=600, random_state=1)


def _recorder(calls: list, name: str):
    def record(adata, *args, **kwargs):
        calls.append((name, adata, kwargs))
        if "key_added" in kwargs:  # a stand-in result, so that readers of the stored table find one
            adata.uns[kwargs["key_added"]] = pd.DataFrame({"feature": [name]})

    return record


def test_layer_and_use_raw_reach_every_step(small, monkeypatch):
    """Seurat-converted data: scaled X, log-normalised .raw; every step must read .raw."""
    adata = small.copy()
    adata.raw = adata.copy()
    X = adata.X.toarray()
    adata.X = ((X - X.mean(0)) / (X.std(0) + 1e-6)).astype(np.float32)
    calls: list = []
    for name in ("score", "ta_response", "crosstalk", "resistance_profile"):
        monkeypatch.setattr(tl, name, _recorder(calls, name))
    hc.pipeline.run(adata, **PIPE, use_raw=True, steps=("score", "ta_response", "crosstalk", "profile"))
    seen = {name: (a, kw) for name, a, kw in calls}
    assert set(seen) == {"score", "ta_response", "crosstalk", "resistance_profile"}
    for name in ("score", "crosstalk"):
        assert seen[name][1]["use_raw"] is True and seen[name][1]["layer"] is None, name
    # T+A reads the raw counts as pseudobulk (layers["counts"]); per-cell scores would come from .raw
    assert seen["ta_response"][1]["use_raw"] is True and seen["ta_response"][1]["layer"] == "counts"
    # the profile's gene evidence reads .raw, not the scaled X (use_raw passed on since session 57)
    assert seen["resistance_profile"][1]["use_raw"] is True and seen["resistance_profile"][1]["layer"] is None


def test_crosstalk_on_counts_is_refused_before_any_step(small, monkeypatch, digest):
    adata = small.copy()
    adata.X = adata.layers["counts"].copy()
    monkeypatch.setattr(tl, "score", lambda *a, **k: pytest.fail("scoring ran before the check"))
    before = digest(adata)
    with pytest.raises(ValueError, match=r"crosstalk needs log-normalised values.*--no-crosstalk"):
        hc.pipeline.run(adata, **PIPE)
    assert digest(adata) == before


def test_failed_step_leaves_the_anndata_as_it_was(small, monkeypatch, digest):
    adata = small.copy()

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(tl, "ta_response", fail)
    before = digest(adata)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(RuntimeError, match="disk full"):
            hc.pipeline.run(adata, **PIPE, steps=("score", "states", "ta_response"))
    assert digest(adata) == before and "hcctme_scores" not in adata.obsm


def test_missing_counts_skip_gene_tests_with_a_warning_and_a_record(small, monkeypatch):
    adata = small.copy()
    del adata.layers["counts"]
    calls: list = []
    monkeypatch.setattr(tl, "compare", _recorder(calls, "compare"))
    with pytest.warns(UserWarning, match="compare_genes skipped: no raw counts"):
        hc.pipeline.run(adata, **PIPE, steps=("compare",))
    assert [kw["features"] for _, _, kw in calls] == ["scores"]  # no state calls here: no composition (sweep 55)
    assert adata.uns["hcctme_run"]["skipped"]["compare_genes"].startswith("no raw counts")
    assert adata.uns["hcctme_run"]["skipped"]["compare_composition"].startswith("no state calls")


def test_counts_taken_from_raw(small, monkeypatch):
    adata = small.copy()
    adata.raw = AnnData(adata.layers["counts"].copy(), var=adata.var.copy())
    del adata.layers["counts"]
    calls: list = []

    def compare(a, **kw):
        calls.append((a, kw))
        a.uns[kw["key_added"]] = pd.DataFrame({"feature": ["x"]})

    monkeypatch.setattr(tl, "compare", compare)
    hc.pipeline.run(adata, **PIPE, steps=("compare",), counts_layer="raw", use_raw=False)
    genes = [(a, kw) for a, kw in calls if kw["features"] == "genes"]
    assert len(genes) == 1
    view, kw = genes[0]
    assert view.X is adata.raw.X and kw["layer"] is None
    assert list(adata.uns["hcctme_compare_genes"]["feature"]) == ["x"]
    assert "compare_genes" not in adata.uns["hcctme_run"]["skipped"]


def test_counts_layer_raw_without_raw_is_refused(small):
    adata = small.copy()
    with pytest.raises(ValueError, match=r"adata\.raw is None"):
        hc.pipeline.run(adata, **PIPE, counts_layer="raw")


def _gmt(path: Path, sets: dict[str, list[str]], *, bom: bool = False) -> Path:
    text = "".join(f"{name}\tuser set\t" + "\t".join(genes) + "\n" for name, genes in sets.items())
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode())
    return path


def test_user_gene_sets_are_added_to_the_library(small, tmp_path):
    adata = small.copy()
    gmt = _gmt(tmp_path / "my.gmt", {"MY_SET": list(adata.var_names[:8])})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hc.pipeline.run(adata, **PIPE, signatures=str(gmt), steps=("score", "states"))
    scored = set(adata.obsm["hcctme_scores"].columns)
    assert {"MY_SET", "TAM2_SPP1", "CD8_TEX_TERMINAL"} <= scored
    assert "hcctme_state" in adata.obs
    clash = _gmt(tmp_path / "clash.gmt", {"TAM2_SPP1": list(adata.var_names[:8])})
    with pytest.raises(ValueError, match=r"\['TAM2_SPP1'\] have the id of a library signature"):
        hc.pipeline.run(small.copy(), **PIPE, signatures=str(clash), steps=("score",))


def test_context_map_file_and_accented_labels(small, tmp_path):
    adata = small.copy()
    labels = adata.obs["cell_type"].astype(str).replace({"Macrophages": "Cluster 7", "Hepatocytes": "Hépatocytes"})
    adata.obs["cell_type"] = pd.Categorical(labels)
    mapping = tmp_path / "map.yaml"
    mapping.write_text("Cluster 7: macrophage\n", encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hc.pipeline.run(adata, **PIPE, context_map=str(mapping), steps=("score", "states"))
    used = map_from_table(hc.get.params(adata, "hcctme_state")["mapping"])
    assert used["Cluster 7"] == "macrophage" and used["Hépatocytes"] == "hepatocyte"


def test_context_map_labels_with_slashes_survive_anndata_writes(small, tmp_path):
    """The run's record keeps the context map as a table: anndata wrote a "Macrophages/Kupffer" key as nested groups."""
    from hcctme.report import _results

    adata = small.copy()
    adata.obs["cell_type"] = adata.obs["cell_type"].astype(str).replace({"Macrophages": "Macrophages/Kupffer"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hc.pipeline.run(adata, **PIPE, context_map={"Macrophages/Kupffer": "macrophage"}, steps=("score", "states"))
    adata.write_h5ad(tmp_path / "x.h5ad")
    back = read_h5ad(tmp_path / "x.h5ad")
    assert _results.run_config(back)["context_map"] == {"Macrophages/Kupffer": "macrophage"}
    assert map_from_table(hc.get.params(back, "hcctme_state")["mapping"])["Macrophages/Kupffer"] == "macrophage"
    assert hc.pipeline._manifest(back, None, full=False)["parameters"]["context_map"] == {
        "Macrophages/Kupffer": "macrophage"}


def _cellxgene(adata: AnnData) -> AnnData:
    """CELLxGENE layout: Ensembl-style ids as var_names, symbols in var['feature_name']."""
    out = adata.copy()
    out.var["feature_name"] = out.var_names.astype(str)
    out.var_names = [f"ENSG{i:011d}" for i in range(out.n_vars)]
    return out


def test_cellxgene_symbols_reach_scoring_and_crosstalk(small):
    adata = _cellxgene(small)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hc.pipeline.run(adata, **PIPE, gene_symbols="feature_name", steps=("score", "states"))
        assert "TAM2_SPP1" in adata.obsm["hcctme_scores"].columns
        tl.crosstalk(adata, groupby="cell_type", axes_only=True, n_perms=None)
    table = tl_table(adata, "hcctme_crosstalk")
    complexes = table["ligand_complex" if "ligand_complex" in table else "ligand"].astype(str)
    ligands = {gene for name in complexes for gene in name.split("_")}
    assert ligands and ligands <= set(adata.var["feature_name"])  # symbols, not the ENSG ids of var_names


def tl_table(adata: AnnData, key: str) -> pd.DataFrame:
    value = adata.uns[key]
    return value["table"] if isinstance(value, dict) else value


# --------------------------------------------------------------------------------------------------
# outputs: one run per folder, manifest.json as the completion marker, nothing half-written
# --------------------------------------------------------------------------------------------------
def test_a_run_folder_holds_exactly_one_run_with_its_manifest(cohort, tmp_path):
    import hashlib as _hashlib
    import json

    out = tmp_path / "results"
    first = cohort.copy()
    first.uns["hcctme_tib"] = pd.DataFrame({"tib": [0.5, 0.7]}, index=["P01", "P02"])
    first.uns["hcctme_run"] = {"config": {"sample_key": "patient"}, "skipped": {}}
    with pytest.raises(TypeError, match="full must be True or False"):  # was read as truthy (sweep 60)
        hc.pipeline.write_outputs(first, out, full="no")
    assert not out.exists()
    hc.pipeline.write_outputs(first, out)
    assert (out / "tib.tsv").is_file()
    second = cohort.copy()
    second.uns["hcctme_run"] = {"config": {"sample_key": "patient", "seed": 1},
                                "skipped": {"tib": "no spatial coordinates"}}
    written = hc.pipeline.write_outputs(second, out)

    names = sorted(p.name for p in out.iterdir())
    assert "tib.tsv" not in names  # the earlier run's table is gone, not left beside the new ones
    assert sorted(p.name for p in written.values()) == names
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(f["name"] for f in manifest["files"]) == sorted(n for n in names if n != "manifest.json")
    for entry in manifest["files"]:
        data = (out / entry["name"]).read_bytes()
        assert entry["bytes"] == len(data) and entry["sha256"] == _hashlib.sha256(data).hexdigest()
    assert manifest["parameters"] == {"sample_key": "patient", "seed": 1}
    assert manifest["skipped"] == {"tib": "no spatial coordinates"}
    assert manifest["versions"]["hcctme"] == hc.__version__ and "anndata" in manifest["versions"]
    assert [p.name for p in tmp_path.iterdir()] == ["results"]  # no temporary folder left beside it


_SIGTERM_SCRIPT = """
import sys, time, warnings
from pathlib import Path
warnings.simplefilter("ignore")
import hcctme as hc
from hcctme import _files

adata = hc.datasets.simulate_cohort(4, 50, n_genes=600, random_state=1)
hc.tl.score(adata, ["TAM2_SPP1", "CD8_TEFF"])
adata.uns["hcctme_tib"] = adata.obs[["n_counts"]].head(3)
out, marker = Path(sys.argv[1]), Path(sys.argv[2])
hc.pipeline.write_outputs(adata, out)  # a complete earlier run
write_table = _files.write_table

def slow_write(table, path, **kw):
    written = write_table(table, path, **kw)
    marker.write_text("writing")
    time.sleep(120)
    return written

_files.write_table = slow_write
adata.uns["hcctme_tib"] = adata.obs[["n_counts"]].head(2)
hc.pipeline.write_outputs(adata, out)
"""


def test_sigterm_while_writing_leaves_the_earlier_run_and_no_part_files(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    out, marker = tmp_path / "results", tmp_path / "marker"
    proc = subprocess.Popen([sys.executable, "-c", _SIGTERM_SCRIPT, str(out), str(marker)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ})
    deadline = time.monotonic() + 240
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert marker.exists(), proc.communicate()[1].decode()[-2000:]
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err.decode()[-2000:]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the earlier complete run, untouched
    assert "manifest.json" in before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["marker", "results"]  # no .part folder or file


# --------------------------------------------------------------------------------------------------
# labels: never HDF5 keys; accents and Cell Ontology names recognised
# --------------------------------------------------------------------------------------------------
def test_labels_with_slashes_are_not_hdf5_keys(tmp_path):
    import h5py

    from hcctme import _files

    adata = AnnData(np.ones((2, 2), dtype=np.float32))
    adata.uns["hcctme_state"] = {"mapping": {"CD4/CD8 T cells": "t_cell", "100% tumour": "tumour"}}
    adata.uns["table"] = pd.DataFrame({"Mono/Mac": [1.0, 2.0]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # anndata warns (and will refuse) keys holding "/"
        path = _files.write_h5ad(adata, tmp_path / "x.h5ad")
    with h5py.File(path, "r") as handle:
        assert "CD4" not in handle["uns/hcctme_state/mapping"] and "Mono" not in handle["uns/table"]
    back = _files.read_h5ad(path)
    assert back.uns["hcctme_state"]["mapping"] == {"CD4/CD8 T cells": "t_cell", "100% tumour": "tumour"}
    assert list(back.uns["table"].columns) == ["Mono/Mac"]
    assert list(adata.uns["table"].columns) == ["Mono/Mac"]  # the caller's object is untouched


@pytest.mark.parametrize(("label", "context"), [
    ("Hépatocytes", "hepatocyte"), ("Macrophagès", "macrophage"), ("Cellules NK", "nk"),
    ("hepatocyte", "hepatocyte"), ("CD8-positive, alpha-beta T cell", "cd8_t"),
    ("CD4-positive, alpha-beta T cell", "cd4_t"), ("macrophage", "macrophage"), ("Kupffer cell", "macrophage"),
    ("neutrophil", "neutrophil"), ("fibroblast", "fibroblast"), ("endothelial cell", "endothelial"),
    ("endothelial cell of hepatic sinusoid", "endothelial"), ("natural killer cell", "nk"), ("B cell", "b_cell"),
    ("plasma cell", "plasma"), ("classical monocyte", "monocyte"), ("conventional dendritic cell", "dendritic"),
    ("hepatic stellate cell", "fibroblast"), ("malignant cell", "tumour"), ("neoplastic cell", "tumour"),
    ("regulatory T cell", "cd4_t"), ("gamma-delta T cell", "t_cell"), ("T\u03b3\u03b4", "t_cell"),
    ("M\u03a6", "macrophage"), ("mature NK T cell", None),
])
def test_label_spellings(label, context):
    from hcctme.tl import _contexts

    assert _contexts.recognise(label)[0] == context


# --------------------------------------------------------------------------------------------------
# gene-set files
# --------------------------------------------------------------------------------------------------
def test_byte_order_mark_does_not_rename_the_first_gene_set(tmp_path):
    path = _gmt(tmp_path / "bom.gmt", {"MY_SET": ["CD8A", "GZMB", "PRF1"], "OTHER": ["SPP1", "CD68", "APOE"]},
                bom=True)
    assert hc.sig.load(str(path)).ids == ["MY_SET", "OTHER"]


def test_gene_set_files_over_the_limit_or_not_regular_are_refused(tmp_path, monkeypatch):
    from hcctme._constants import Files

    big = _gmt(tmp_path / "big.gmt", {f"SET_{i}": ["CD8A", "GZMB", "PRF1"] for i in range(100)})
    monkeypatch.setattr(Files, "MAX_GENE_SET_BYTES", 1000)
    with pytest.raises(ValueError, match="larger than the limit of 1,000 bytes"):
        hc.sig.load(str(big))
    device = tmp_path / "device.gmt"
    device.symlink_to("/dev/null")
    with pytest.raises(ValueError, match="not a regular file"):
        hc.sig.load(str(device))


def test_path_like_gene_set_arguments_are_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        hc.sig.load("my_sets.txt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        hc.tl.score(AnnData(np.ones((3, 3), dtype=np.float32)), str(tmp_path / "sets.txt"))


def test_pipeline_is_importable_as_the_readme_lists_it():
    import subprocess
    import sys

    code = "import hcctme as ht; print(ht.pipeline.run.__name__, ht.pipeline.write_outputs.__name__)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["run", "write_outputs"], result.stderr[-2000:]


def test_backed_corrupt_matrix_is_refused_before_scoring(cohort, tmp_path):
    import anndata as ad

    from hcctme import _files

    good = tmp_path / "good.h5ad"
    AnnData(cohort.X.copy(), obs=cohort.obs[["patient"]].copy(), var=pd.DataFrame(index=cohort.var_names)
            ).write_h5ad(good)
    bad = tmp_path / "bad.h5ad"
    _corrupt_h5ad(good, bad)
    with pytest.raises(ValueError, match=r"bad\.h5ad: X is a corrupt CSR sparse matrix: 1 column index"):
        _files.read_h5ad(bad, backed=True)
    backed = ad.read_h5ad(bad, backed="r")
    with pytest.raises(ValueError, match=r"adata\.X is a corrupt CSR"):
        tl.score(backed, ["TAM2_SPP1"])
    assert "hcctme_scores" not in backed.obsm
    tl.score(ad.read_h5ad(good, backed="r"), ["TAM2_SPP1"])  # the intact file scores


_FLIP_SCRIPT = """
import random, sys, warnings
warnings.simplefilter("ignore")
from hcctme import _files, datasets, tl

adata = datasets.simulate_cohort(4, 50, n_genes=600, random_state=1)
good = sys.argv[1] + "/good.h5ad"
adata.write_h5ad(good)
data = open(good, "rb").read()
for seed in range(12):
    rng = random.Random(seed)
    damaged = bytearray(data)
    for _ in range(8):
        damaged[rng.randrange(len(damaged))] = rng.randrange(256)
    path = sys.argv[1] + f"/bad{seed}.h5ad"
    open(path, "wb").write(damaged)
    try:
        tl.score(_files.read_h5ad(path), ["TAM2_SPP1", "CD8_TEFF"])
        print(seed, "read")
    except ValueError as err:
        print(seed, "refused", str(err)[:60].replace(" ", "_"))
"""


def test_flipped_bytes_in_an_h5ad_give_clear_errors_not_a_crash(tmp_path):
    """Twelve copies with 8 random bytes overwritten: each is read (damage in the values) or refused."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", _FLIP_SCRIPT, str(tmp_path)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line.split() for line in result.stdout.splitlines()]
    assert [int(line[0]) for line in lines] == list(range(12))
    refused = [line[2] for line in lines if line[1] == "refused"]
    assert any("corrupt_CSR" in text for text in refused)  # damaged indices are caught before the kernel
    assert all(text.startswith(("cannot_read", "bad")) for text in refused), refused
