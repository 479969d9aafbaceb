"""State calls on the real labelled datasets of the signature validation suite (issue 13).

The authors' clusters (``tests/data/*/mapping.yaml``) that match a callable library state should
get that state's call; the issue-13 target is >= 0.7 of each such cluster. Only the Puram 2017
Treg cluster reaches it. These tests assert the shares the caller reaches (floors a little below
the measured values; ``python benchmarks/states_real.py`` prints them with the confusion matrices,
README "Resistance cell states") and that the clusters the mapping lists as siblings rarely get
the state.
"""

from __future__ import annotations

import pytest

from benchmarks.states_real import call, matching
from tests.sig.validation import datasets

DATASETS = {d.name: d for d in datasets() if d.states}


@pytest.fixture(scope="module")
def shares():
    return {name: matching(call(dataset), dataset).set_index("state") for name, dataset in DATASETS.items()}


def test_interferon_stimulated_cd4_t_cells_are_not_called_treg():
    """Kang 2018 PBMC (no Tregs; half the CD4 T cells 6 h interferon-beta): the stimulated cells form a cluster whose
    TREG score is highest, through two interferon-stimulated genes of the TREG list (IFI6, SAT1). Before the
    specificity test of the cluster seeds 177 of 200 stimulated CD4 T cells were called TREG; measured now: 0."""
    dataset = next(d for d in datasets() if d.name == "kang2018_pbmc_ifnb")
    adata = call(dataset)
    labels = adata.obs[dataset.label_key].astype(str)
    calls = adata.obs["hcctme_state"].astype(str)
    for condition in ("stim", "ctrl"):
        cd4 = labels == f"{condition}: CD4 T cells"
        assert cd4.sum() == 200 and (calls[cd4] == "TREG").mean() <= 0.05
    test = adata.uns["hcctme_state_params"]["self_train"]["specificity"]["cd4_t"]["TREG"]
    assert not test["seeded"] and test["clusters_declined"] >= 1 and test["n_up"] <= 3


@pytest.mark.slow
def test_puram_treg_cluster_reaches_the_target(shares):
    treg = shares["puram2017_hnscc"].loc["TREG"]
    assert treg["share"] >= 0.85
    assert treg["siblings_called"] <= 0.1 * treg["n_siblings"]


@pytest.mark.slow
def test_floors_below_the_target(shares):
    wu = shares["wu2020_tcells"]
    assert wu.loc["TREG", "share"] >= 0.4 and wu.loc["TREG", "siblings_called"] <= 0.05 * wu.loc["TREG", "n_siblings"]
    assert wu.loc["CD8_TEFF", "share"] >= 0.3
    assert shares["sadefeldman2018_melanoma"].loc["CD8_TSTR", "share"] >= 0.05  # 5 of 81 with library 2.1
    assert shares["he2020_liver"].loc["TAM2_SPP1", "share"] >= 0.2


@pytest.mark.slow
def test_states_no_cluster_of_which_gets_the_matching_call(shares):
    """The honest failures: the exhausted, effector and progenitor CD8 clusters of Sade-Feldman 2018 and
    the Wu 2021 myCAF clusters get no matching call (the caller finds no distinct high population)."""
    sade = shares["sadefeldman2018_melanoma"]
    assert sade.loc[["CD8_TEX_TERMINAL", "CD8_TEFF", "CD8_TEX_PROGENITOR"], "n_matching"].sum() <= 5
    assert shares["wu2021_tnbc"].loc[["CAF_ECM_MYCAF", "CAF_TGFB_MYCAF", "CAF_WOUND_MYCAF"], "share"].max() <= 0.1
