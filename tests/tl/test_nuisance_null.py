"""False-positive rate on null cohorts whose arms differ only in nuisance (issue 14).

Resistors have 3x the cells per patient and half the sequencing depth of responders
(``_compare_data.nuisance_null``); patients of both arms are drawn from one distribution. At p < 0.05
the patient-level tests of composition (the default arcsine / moderated test), scores, genes
(limma-trend, limma-voom and PyDESeq2 on pseudobulk) and differential crosstalk (two-part test) must
keep the nominal rate:
the observed FPR over replicate cohorts is <= 0.05 unless a one-sided binomial test says otherwise
at the 1% level (pooled tests of one cohort are not independent, so the cohorts are many and small).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import hcctme as hc

from ._compare_data import fpr_exceedance, nuisance_null

KW = dict(condition_key="response", sample_key="patient", reference="responder")
ALPHA = 0.05


def _check_fpr(pvalues, minimum: int) -> float:
    p = np.asarray(pvalues, dtype=float)
    p = p[np.isfinite(p)]
    assert len(p) >= minimum, len(p)
    rate, exceed = fpr_exceedance(p, ALPHA)
    assert exceed > 0.01, f"FPR {rate:.3f} over {len(p)} tests"
    return rate


def _table(adata, **kwargs) -> pd.DataFrame:
    return hc.tl.compare(adata, copy=True, **KW, **kwargs).uns["hcctme_compare"]


@pytest.fixture(scope="module")
def light_runs():
    """p-values of composition and scores over 120 small null cohorts (6 vs 6 patients)."""
    warnings.simplefilter("ignore")
    out = {"composition": [], "cell_types": [], "scores": []}
    for seed in range(120):
        adata = nuisance_null(6, 60, n_genes=10, seed=50_000 + seed)
        out["composition"].extend(_table(adata, features="composition", groupby="state_true",
                                         parent_key="cell_type")["pvalue"])
        out["cell_types"].extend(_table(adata, features="composition", groupby="cell_type")["pvalue"])
        out["scores"].extend(_table(adata, features="scores", groupby="cell_type")["pvalue"])
    return out


def test_nuisance_null_composition(light_runs):
    _check_fpr(light_runs["composition"] + light_runs["cell_types"], minimum=800)
    # p-values spread over (0, 1), not piled up at 1 (a test that never rejects would pass the FPR bound)
    p = np.asarray(light_runs["composition"])
    assert 0.35 < np.mean(p < 0.5) < 0.65


def test_nuisance_null_scores(light_runs):
    _check_fpr(light_runs["scores"], minimum=700)


@pytest.mark.parametrize("method", ["limma-trend", "voom", "deseq2"])
def test_nuisance_null_genes(method):
    warnings.simplefilter("ignore")
    pvalues = []
    for seed in range(6):
        adata = nuisance_null(6, 40, n_genes=80, groups=("A",), seed=60_000 + seed)
        pvalues.extend(_table(adata, features="genes", method=method)["pvalue"])
    _check_fpr(pvalues, minimum=400)


def _lr_genes(n: int, seed: int) -> tuple[list[str], pd.DataFrame]:
    import liana as li

    res = li.rs.select_resource("consensus")
    res = res[~res["ligand"].str.contains("_") & ~res["receptor"].str.contains("_")]
    rng = np.random.default_rng(seed)
    pick = res.iloc[rng.choice(len(res), n, replace=False)]
    genes = list(dict.fromkeys([*pick["ligand"], *pick["receptor"]]))
    return genes, pick[["ligand", "receptor"]].reset_index(drop=True)


def test_nuisance_null_crosstalk():
    warnings.simplefilter("ignore")
    hc.settings.progress = False
    pvalues = []
    for seed in range(4):
        genes, resource = _lr_genes(40, seed)
        adata = nuisance_null(6, 40, genes=genes, seed=70_000 + seed)
        out = hc.tl.crosstalk(adata, groupby="cell_type", resource=resource, n_perms=None, copy=True, **KW)
        diff = out.uns["hcctme_crosstalk_diff"]
        pvalues.extend(diff.loc[diff["tested"], "pvalue"])
    _check_fpr(pvalues, minimum=300)
