"""State calls on the real labelled datasets of the signature validation suite (issue 13).

The authors' clusters (``tests/data/*/mapping.yaml``) that match a callable library state should
get that state's call; the issue-13 target is >= 0.7 of each such cluster. The calls are read in
the parent population the mapping names for each state (``benchmarks.states_real.context_map``).
These tests assert the shares the caller reaches (floors a little below the measured values;
``python benchmarks/states_real.py`` prints them with the confusion matrices) and that the
clusters the mapping lists as siblings rarely get the state.
"""

from __future__ import annotations

import pytest

from benchmarks.states_real import call, matching
from tests.sig.validation import datasets

DATASETS = {d.name: d for d in datasets() if d.states}


@pytest.fixture(scope="module")
def shares():
    return {name: matching(call(dataset), dataset).set_index("state") for name, dataset in DATASETS.items()}


@pytest.fixture(scope="module")
def kang():
    dataset = next(d for d in datasets() if d.name == "kang2018_pbmc_ifnb")
    adata = call(dataset)
    return adata, adata.obs[dataset.label_key].astype(str), adata.obs["hcctme_state"].astype(str)


def test_interferon_stimulated_cd4_t_cells_are_not_called_treg(kang):
    """Kang 2018 PBMC (no Tregs; half the CD4 T cells 6 h interferon-beta): the stimulated cells form a cluster whose
    TREG score is highest, through two interferon-stimulated genes of the TREG list (IFI6, SAT1). Before the
    specificity test of the cluster seeds 177 of 200 stimulated CD4 T cells were called TREG; measured now: 0."""
    adata, labels, calls = kang
    for condition in ("stim", "ctrl"):
        cd4 = labels == f"{condition}: CD4 T cells"
        assert cd4.sum() == 200 and (calls[cd4] == "TREG").mean() <= 0.05
    test = adata.uns["hcctme_state_params"]["self_train"]["specificity"]["cd4_t"]["TREG"]
    assert not test["seeded"] and test["clusters_declined"] >= 1 and test["n_up"] <= 3


def test_hla_dr_high_classical_monocytes_are_not_called_m_mdsc(kang):
    """Kang 2018 control CD14+ monocytes (HLA class II high): a cluster of them is highest for the M_MDSC panel
    (CD14, S100A8/9 up), but its measured down gene (CD74; the data keep 1,267 genes) is not down there (AUROC 0.40
    and 0.44 against the other monocytes). The short-panel rule that needs a panel's down genes down declines it:
    183 of 200 control CD14+ monocytes were called M_MDSC before, 0 now."""
    adata, labels, calls = kang
    ctrl = labels == "ctrl: CD14+ Monocytes"
    assert ctrl.sum() == 200 and (calls[ctrl] == "M_MDSC").mean() <= 0.05
    monocytes = labels.str.contains("Monocytes")
    assert (calls[monocytes] == "M_MDSC").mean() <= 0.05
    test = adata.uns["hcctme_state_params"]["self_train"]["specificity"]["monocyte"]["M_MDSC"]
    assert not test["seeded"] and test["clusters_declined"] >= 1 and test["n_down_measured"] >= 1


@pytest.mark.slow
def test_puram_treg_cluster_reaches_the_target(shares):
    treg = shares["puram2017_hnscc"].loc["TREG"]
    assert treg["share"] >= 0.85
    assert treg["siblings_called"] <= 0.1 * treg["n_siblings"]


@pytest.mark.slow
def test_sade_feldman_t_cell_states_read_in_all_t_cells(shares):
    """Sade-Feldman 2018 (Smart-seq2): all T-cell clusters in one ``t_cell`` population, which competes the CD8
    states and TREG. Read per cluster (exhausted clusters alone in ``cd8_t``, memory alone in ``t_cell``, cytotoxic
    in none) no cluster got its call (0 of 166, 0 of 144, 0 of 88): a population that is all one state has no
    contrast. Measured: progenitor 104 of 144 (0.72; 8 of 166 exhausted cells), terminal 102 of 166 (0.61; 1 of
    232 siblings), effector 41 of 88 (0.47; 53 of 310 siblings, 43 of them in the exhausted cluster)."""
    sade = shares["sadefeldman2018_melanoma"]
    assert sade.loc["CD8_TEX_PROGENITOR", "share"] >= 0.65
    assert sade.loc["CD8_TEX_PROGENITOR", "siblings_called"] <= 0.1 * sade.loc["CD8_TEX_PROGENITOR", "n_siblings"]
    assert sade.loc["CD8_TEX_TERMINAL", "share"] >= 0.55
    assert sade.loc["CD8_TEX_TERMINAL", "siblings_called"] <= 0.02 * sade.loc["CD8_TEX_TERMINAL", "n_siblings"]
    assert sade.loc["CD8_TEFF", "share"] >= 0.4


@pytest.mark.slow
def test_floors_below_the_target(shares):
    wu = shares["wu2020_tcells"]
    assert wu.loc["TREG", "share"] >= 0.4 and wu.loc["TREG", "siblings_called"] <= 0.05 * wu.loc["TREG", "n_siblings"]
    assert wu.loc["CD8_TEFF", "share"] >= 0.3
    assert shares["he2020_liver"].loc["TAM2_SPP1", "share"] >= 0.2
    assert shares["wu2021_tnbc"].loc["CAF_DETOX_ICAF", "share"] >= 0.15


@pytest.mark.slow
def test_states_no_cluster_of_which_gets_the_matching_call(shares):
    """The honest failures: the Wu 2021 myCAF-like clusters get no myCAF call (single Kieffer genes are barely up
    in them: 6 of 39 ECM-myCAF genes at AUROC 0.65 against the iCAF-like cells), the 23 Sade-Feldman Tregs, 4 % of
    its T cells, no TREG call, and its exhausted heat-shock cluster few CD8_TSTR calls (4 of 81; 70 are called
    CD8_TEX_TERMINAL in the T-cell population, 19 of 81 were CD8_TSTR when the exhausted clusters were read alone;
    82 of 95 cells of its "Lymphocytes" cluster are called CD8_TSTR)."""
    assert shares["wu2021_tnbc"].loc[["CAF_ECM_MYCAF", "CAF_TGFB_MYCAF", "CAF_WOUND_MYCAF"], "share"].max() <= 0.1
    sade = shares["sadefeldman2018_melanoma"]
    assert sade.loc["TREG", "share"] <= 0.1 and sade.loc["CD8_TSTR", "share"] <= 0.1
