"""State calls on the real labelled datasets of the signature validation suite (issue 13).

The authors' clusters (``tests/data/*/mapping.yaml``) that match a callable library state should
get that state's call; the issue-13 target is >= 0.7 of each such cluster. The calls are read in
the parent population the mapping names for each state (``benchmarks.states_real.context_map``).
These tests assert the shares the caller reaches (floors a little below the measured values;
``python benchmarks/states_real.py`` prints them with the confusion matrices), that the
clusters the mapping lists as siblings rarely get the state, and, for the clusters that miss the
target, the step where their cells are lost (``uns["hcctme_state_params"]``: ``mixture_counts``,
``diagnostics``, ``self_train``), so that a change that moves one of them shows here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks.states_real import by_cluster, call, confusion, matching, share_listing
from hcctme._constants import STATE_SEEDING_AGREEMENT, STATE_SPECIFICITY_ALPHA, STATE_SPECIFICITY_AUROC
from tests.sig.validation import datasets

DATASETS = {d.name: d for d in datasets() if d.states}


@pytest.fixture(scope="module")
def called():
    return {name: call(dataset) for name, dataset in DATASETS.items()}


@pytest.fixture(scope="module")
def shares(called):
    return {name: matching(called[name], dataset).set_index("state") for name, dataset in DATASETS.items()}


def _labels(adata, name: str) -> pd.Series:
    return adata.obs[DATASETS[name].label_key].astype(str)


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
    # a few shared genes of a long list: the median gene is not up, the majority route does not seed either
    assert test["majority_auroc"] < STATE_SPECIFICITY_AUROC and test["majority_pvalue"] == 1.0


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
def test_readme_confusion_matrices_are_the_calls(called):
    """README's confusion matrix per dataset ("Evidence: real labelled data") is what this code calls: a change that
    moves one call fails here until README says so (session 33 found README one cell behind the calls since an
    earlier release: Wu 2021 myCAF-like s5, 2 detox-iCAF calls, not 3)."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for name, dataset in DATASETS.items():
        table = confusion(called[name], dataset).to_markdown()
        assert f"**{name}**\n\n{table}\n" in readme, f"README's {name} confusion matrix differs from the calls"


@pytest.mark.slow
def test_readme_share_listing_is_the_calls(called):
    """README's listing of each authors' state cluster's matching share (under the confusion matrices) is what this
    code calls (session 46 found it behind the matrices above it: Sade-Feldman terminal 136 of 166, not 116)."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    listing = share_listing([matching(called[name], dataset) for name, dataset in DATASETS.items()])
    assert listing in readme, "README's share listing differs from the calls (benchmarks/states_real.py prints it)"


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
    contrast. Measured (release 2.32, its three seedings disagree and it is called by the mean of nine; the cells
    read in the order of their names): progenitor 99 of 144 (0.69; 3 of 166 exhausted cells), terminal 59 of 166
    (0.36; 0 of 232 siblings), effector 39 of 88 (0.44; 29 of 310 siblings, 27 of them exhausted cells); over ten
    random states 99-104, 51-102 and 23-42 (README, "Over random states"). The progenitor row is no longer read
    (library 2.4): the Memory T-cells (G10) are a mixed CD4/CD8 TCF7+ cluster, PD-1 low, not progenitor-exhausted CD8
    T cells; that 99 of them are called CD8_TEX_PROGENITOR is a limit of the caller (README). Releases 2.29-2.31 (the
    rows as stored):
    100 (0.69; 2), 79 (0.48; 0), 21 (0.24; 2); over ten random states 92-103, 53-91 and 14-57.
    Release 2.26 (the mean of three seedings): 100 (0.69; 3), 116 (0.70; 0), 51 (0.58; 18 siblings). Releases
    2.8-2.25 (one seeding): 101 (0.70), 136 (0.82; 1 sibling), 37 (0.42; 16 siblings), one draw of a cut-dependent
    figure (:func:`test_sade_feldman_calls_turn_on_the_cut`). Release 2.7: terminal 90 (0.54), effector 49 (0.56; 70
    siblings, 62 in the exhausted cluster); release 2.8 backs a cluster's best state where the mixture's calls there
    go to states the cluster does not express, and the exhausted clusters seed terminal exhaustion. Release 2.6: 105
    (0.73), 103 (0.62) and 44 (0.50; 56 siblings)."""
    sade = shares["sadefeldman2018_melanoma"]
    assert "CD8_TEX_PROGENITOR" not in sade.index  # Memory T-cells are not progenitor-exhausted cells (library 2.4)
    assert sade.loc["CD8_TEX_TERMINAL", "share"] >= 0.3
    assert sade.loc["CD8_TEX_TERMINAL", "siblings_called"] <= 0.02 * sade.loc["CD8_TEX_TERMINAL", "n_siblings"]
    assert sade.loc["CD8_TEFF", "share"] >= 0.15
    assert sade.loc["CD8_TEFF", "siblings_called"] <= 0.1 * sade.loc["CD8_TEFF", "n_siblings"]


@pytest.mark.slow
def test_sade_feldman_terminal_calls_are_mostly_the_heat_shock_cluster(called):
    """The terminal row pools the authors' Exhausted and Exhausted/HS clusters; its calls are mostly the HS cells'
    (44 of 81, 12 more CD8_TSTR), the Exhausted cluster's 15 of 85 (40 unassigned, 27 called CD8_TEFF; README, "One
    state per cell"). Releases 2.29-2.31: 56 and 6, 23 and 55."""
    adata = called["sadefeldman2018_melanoma"]
    counts = pd.crosstab(_labels(adata, "sadefeldman2018_melanoma"), adata.obs["hcctme_state"].astype(str))
    assert counts.loc["Exhausted/HS Cd8+ cells", ["CD8_TEX_TERMINAL", "CD8_TSTR"]].tolist() == [44, 12]
    assert counts.loc["Exhausted Cd8+ cells", ["CD8_TEX_TERMINAL", "unassigned"]].tolist() == [15, 40]


@pytest.mark.slow
def test_sade_feldman_calls_turn_on_the_cut(shares, monkeypatch):
    """Sade-Feldman's exhausted cells (516 T cells, 14 k-means clusters) are seeded by whichever of the terminal,
    CD8_TSTR and TREG lists is highest in their clusters, and that turns on the k-means cut: with one seeding,
    terminal 136 of 166 at random state 0 (releases 2.8-2.25), 142, 63, 1, 94 and 59 at random states 1, 2, 10, 20 and
    30 (at 10 two exhausted clusters seed CD8_TSTR and TREG); progenitor 67-115 of 144; effector 3-88 of 88 (120
    sibling calls at 2). The mean of three seedings (release 2.26) narrows the spread: terminal 116, 30, 71, 67 at
    base random states 0, 10, 20, 30, progenitor 95-103. Release 2.29 draws six more where the three disagree (here
    they do): terminal 79 and 71 at random states 0 and 10, 53-91 over ten (release 2.28: 30-116). Release 2.32 reads
    the cells in the order of their names, another draw of each cut: at random state 10 one seeding calls 25, three
    46, nine 69 (releases 2.28-2.31: 1, 30, 71); at random state 0 4, 83 and 59; over ten random states 51-102. Read
    these real-data figures as one draw each."""
    from dataclasses import replace

    from hcctme.tl import _call_states
    from hcctme.tl import _state_params as state_params

    dataset = DATASETS["sadefeldman2018_melanoma"]
    base = state_params.SelfTrainParams()
    terminal = {}
    for seedings, batches in ((1, 1), (3, 1), (3, 3)):
        params = replace(base, seedings=seedings, seeding_batches=batches)
        monkeypatch.setattr(_call_states._params, "SelfTrainParams",
                            lambda random_state=0, params=params: replace(params, random_state=random_state))
        calls = call(dataset, random_state=10)
        terminal[seedings * batches] = matching(calls, dataset).set_index("state").loc["CD8_TEX_TERMINAL",
                                                                                      "n_matching"]
    assert base.seedings == 3 and base.seeding_batches == 3
    assert terminal[1] <= 30  # measured 25
    assert terminal[3] >= terminal[1] + 15  # measured 46 (release 2.28's rule)
    assert terminal[9] >= terminal[3] + 15  # measured 69 (release 2.29's rule, the default)
    assert shares["sadefeldman2018_melanoma"].loc["CD8_TEX_TERMINAL", "n_matching"] >= 50  # 59 at random state 0


@pytest.mark.slow
def test_floors_below_the_target(shares):
    """Wu 2020 measured: TREG 7 of 14 with 5 of 86 sibling calls (3 before the carried score of every seeded
    state), Teff 17 of 22 (0.77; 19 in releases 2.7-2.23, 15 in release 2.6, when the "none of these" seeds were not
    purified) with 24 of 62 sibling calls (23 in releases 2.24-2.37, 27 in releases 2.7-2.23, 18 before; most of them
    effector-memory cells):
    its 91 CD8 T cells are called by the mean of 9 seedings since release 2.24. Wu 2021 detox iCAF 49 of 130 (release
    2.39; 56 in release 2.38; 17 when this floor was set, 30 before the foreign-lineage markers' joint share, release
    2.6: 69 more CAFs in the population move its clusters)."""
    wu = shares["wu2020_tcells"]
    assert wu.loc["TREG", "share"] >= 0.4 and wu.loc["TREG", "siblings_called"] <= 0.06 * wu.loc["TREG", "n_siblings"]
    assert wu.loc["CD8_TEFF", "share"] >= 0.75
    assert wu.loc["CD8_TEFF", "siblings_called"] <= 0.4 * wu.loc["CD8_TEFF", "n_siblings"]
    assert shares["wu2021_tnbc"].loc["CAF_DETOX_ICAF", "share"] >= 0.1


@pytest.mark.slow
def test_wu2020_treg_row_misses_the_weak_treg_cluster(called):
    """Wu 2020's Treg row (7 of 14) is one cluster of each kind: all 5 cells of 4.6b-Treg are called TREG and 2 of
    the 9 of 4.6a-Treg. 4.6a holds the Treg programme weakly in this subset (FOXP3 detected in 2 of its 9 cells,
    IL2RA in none; 4.6b: 4 and 4 of 5): its TREG scores (median 0.30) sit nearer the other CD4 clusters' (0.10-0.17)
    than 4.6b's (0.60): the weak programme, more likely than the small population (100 CD4 T cells), loses them."""
    adata = called["wu2020_tcells"]
    labels = _labels(adata, "wu2020_tcells")
    calls = adata.obs["hcctme_state"].astype(str)
    assert (calls[labels == "4.6b-Treg"] == "TREG").sum() == 5 and (labels == "4.6b-Treg").sum() == 5
    assert (calls[labels == "4.6a-Treg"] == "TREG").sum() == 2 and (labels == "4.6a-Treg").sum() == 9
    counts = adata[:, ["FOXP3", "IL2RA"]].X
    detected = pd.DataFrame(np.asarray(counts.todense() if hasattr(counts, "todense") else counts) > 0,
                            index=adata.obs_names, columns=["FOXP3", "IL2RA"]).groupby(labels.to_numpy()).sum()
    assert detected.loc["4.6a-Treg"].tolist() == [2, 0] and detected.loc["4.6b-Treg"].tolist() == [4, 4]
    score = pd.Series(np.asarray(adata.obsm["hcctme_scores"]["TREG"]), index=adata.obs_names)
    median = score[labels.str.startswith("4.").to_numpy()].groupby(labels).median()
    others = median.drop(["4.6a-Treg", "4.6b-Treg"])
    assert others.max() < 0.2 and 0.25 < median["4.6a-Treg"] < 0.35 and median["4.6b-Treg"] > 0.55


@pytest.mark.slow
def test_wu2021_tregs_pass_the_mixture_not_the_cuts(shares, called):
    """Wu 2021 CD4 T cells (64): the foreign-lineage markers, each under 10 %, together set aside 16 (5 of them
    Tregs) and left 48, which the 1-D mixture called TREG in 3 of 23 Tregs. Held together to 10 % of the population
    (release 2.6), 7 are set aside and the mixture on the other 57 calls 25 TREG: 17 of 23 Tregs and 8 of 41 other
    CD4 T cells (the subset lacks FOXP3 and CCR8). No seeding trains the classifier; of the nine cuts, seven test
    TREG where it is called and decline it, one passes it (p 0.0023, 10 cells per cluster, random state 2) and one
    leaves it untested (the first: two clusters), which until release 2.30 decided alone (17 of 23 at 2 of 10 random
    states, none at the others). The mean of the nine calls none (release 2.31). Release 2.32 (the cells read in the
    order of their names) draws other cuts: one of the nine keeps TREG, the mean calls none."""
    treg = shares["wu2021_tnbc"].loc["TREG"]
    params = called["wu2021_tnbc"].uns["hcctme_state_params"]
    assert params["mixture_counts"]["cd4_t"]["TREG"] == 25
    assert treg["n_matching"] == 0 and treg["siblings_called"] == 0
    record = params["self_train"]["seedings"]["cd4_t"]
    assert record["seedings"] == 9 and record["mixture_kept"] == {"TREG": pytest.approx(1 / 9)}
    assert "cd4_t" not in params["self_train"]["declined"]  # kept by one: split, warned of, not declined
    cd4 = params["diagnostics"]["cd4_t"]["unassigned"]
    assert cd4["artefacts"] <= 0.11 * 64 + 1 and cd4["foreign_released"] >= 5


@pytest.mark.slow
def test_states_no_cluster_of_which_gets_the_matching_call(shares):
    """The honest failures: the Wu 2021 myCAF-like clusters get no myCAF call (single Kieffer genes are barely up
    in them: :func:`test_wu2021_mycaf_lists_barely_tell_mycaf_like_from_icaf_like_cells_gene_by_gene`), the 23
    Sade-Feldman Tregs, 4 % of
    its T cells, no TREG call, and its exhausted heat-shock cluster few CD8_TSTR calls (12 of 81; 5 in release 2.8,
    when 73 were called CD8_TEX_TERMINAL in the T-cell population; 19 of 81 were CD8_TSTR when the exhausted clusters
    were read alone; 88 of 95 cells of its "Lymphocytes" cluster are called CD8_TSTR)."""
    assert shares["wu2021_tnbc"].loc[["CAF_ECM_MYCAF", "CAF_TGFB_MYCAF", "CAF_WOUND_MYCAF"], "share"].max() <= 0.1
    sade = shares["sadefeldman2018_melanoma"]
    assert sade.loc["TREG", "share"] <= 0.1 and sade.loc["CD8_TSTR", "share"] <= 0.2


def test_wu2021_mycaf_lists_barely_tell_mycaf_like_from_icaf_like_cells_gene_by_gene():
    """Why the specificity test declines the clusters of Wu 2021's myCAF-like cells (216 of the CAFs, about 550 UMI
    each): gene by gene, log-normalised, the Kieffer myCAF lists' genes barely rank the myCAF-like cells above the
    iCAF-like ones (AUROC per gene: ECM myCAF 39 genes, median 0.53, 3 at >= 0.65; TGF-beta myCAF 26, 0.52, 2; wound
    myCAF 33, 0.50, 1), while the onco-fetal POSTN panel's POSTN is up in them. The test asks for a share of a list's
    genes up in a cluster (:mod:`hcctme.tl._state_specificity`); these lists do not have it here."""
    import anndata as ad
    import scanpy as sc
    from sklearn.metrics import roc_auc_score

    import hcctme

    dataset = DATASETS["wu2021_tnbc"]
    adata = ad.read_h5ad(dataset.path)
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    labels = adata.obs[dataset.label_key].astype(str)
    mycaf, icaf = labels.str.contains("myCAF").to_numpy(), labels.str.contains("iCAF").to_numpy()
    assert mycaf.sum() == 216
    truth = np.r_[np.ones(mycaf.sum()), np.zeros(icaf.sum())]

    def aurocs(state: str) -> np.ndarray:
        genes = [g for g in hcctme.sig.get(state).genes if g in adata.var_names]
        x = adata[:, genes].X.toarray()
        return np.array([roc_auc_score(truth, np.r_[x[mycaf, j], x[icaf, j]]) for j in range(len(genes))])

    for state, n_genes, up in (("CAF_ECM_MYCAF", 39, 3), ("CAF_TGFB_MYCAF", 26, 2), ("CAF_WOUND_MYCAF", 33, 1)):
        auroc = aurocs(state)
        assert auroc.size == n_genes and np.median(auroc) < 0.55 and np.sum(auroc >= STATE_SPECIFICITY_AUROC) == up
    assert aurocs("CAF_ONCOFETAL_POSTN").max() >= STATE_SPECIFICITY_AUROC


@pytest.mark.slow
def test_sade_feldman_tregs_are_lost_in_the_mixture(called):
    """The 23 Sade-Feldman Tregs in the ``t_cell`` population (516 cells): their TREG score (mean z 0.82) is no
    higher than that of the exhausted CD8 clusters (0.88 and 1.09: the list shares TIGIT, CTLA4, TNFRSF9,
    TNFRSF18, LAYN, BATF, ENTPD1 with exhaustion), so the mixture calls no cell TREG (0 of 516). Until release 2.31
    no k-means cluster seeded TREG; in release 2.32's cuts (the cells read in the order of their names) one cluster
    does (54 seeds, its TREG genes up through those shared with exhaustion: 16 of 27, p 2e-12) and 7 of the 9
    seedings' classifiers have a TREG class, but their mean calls no cell TREG. The child-lineage markers tell the Tregs
    apart (MARKER_CD4_T above MARKER_CD8_T in all 23) but not the memory cluster the mapping reads as progenitor
    exhausted (CD4-like in 67 % of its cells): a mixture with a normal per child lineage was measured and dropped
    (TREG 0 of 23 still; Memory -> CD8_TEX_PROGENITOR 104 -> 0 of 144)."""
    adata = called["sadefeldman2018_melanoma"]
    params = adata.uns["hcctme_state_params"]
    assert params["mixture_counts"]["t_cell"]["TREG"] <= 2
    assert not (adata.obs["hcctme_state"].astype(str) == "TREG").any()
    t_cell = (adata.obs["hcctme_state_context"].astype(str) == "t_cell").to_numpy()
    scores = adata.obsm["hcctme_scores"].loc[t_cell]
    z = (scores - scores.mean()) / scores.std(ddof=0)
    labels = _labels(adata, "sadefeldman2018_melanoma")[t_cell].to_numpy()
    treg = z["TREG"].groupby(labels).mean()
    assert treg["Exhausted Cd8+ cells"] >= treg["Regulatory T-cells"]
    assert treg["Exhausted/HS Cd8+ cells"] >= treg["Regulatory T-cells"]
    cd4_like = pd.Series((z["MARKER_CD4_T"] > z["MARKER_CD8_T"]).to_numpy()).groupby(labels).mean()
    assert cd4_like["Regulatory T-cells"] >= 0.95 and cd4_like["Memory T-cells"] >= 0.6


@pytest.mark.slow
def test_villani_pdc_clusters_seed_through_the_majority_route(shares, called):
    """Villani 2017 pDC (192 of 384 dendritic cells, 10 of 47 DC_PDC genes in the 859 genes kept): pDCs are another
    cell type than the cDCs they are compared with, 18-38 % of expression-matched background genes are up in their
    k-means clusters, and 6 of 10 DC_PDC genes up is not significant against that (binomial p = 0.010-0.13; all
    three clusters were declined and no cell kept the call). The genes are up strongly (AUROC 0.75-0.87 for the
    median gene), which few background genes reach: the majority route seeds two of the three clusters (p = 0.004
    and 0.009); the third (p = 0.017), whose median gene is up too, is left to the classifier instead of training
    "none of these". Measured: pDC -> DC_PDC 181 of 192 (0 before), CD1C -> DC_CDC2 93 of 96, DC_CDC2 in the other
    gates 6 (18 before), DC_PDC in them 5 (CD141)."""
    villani = shares["villani2017_dc"]
    assert villani.loc["DC_PDC", "share"] >= 0.85 and villani.loc["DC_PDC", "siblings_called"] <= 10
    assert villani.loc["DC_CDC2", "share"] >= 0.9 and villani.loc["DC_CDC2", "siblings_called"] <= 12
    test = called["villani2017_dc"].uns["hcctme_state_params"]["self_train"]["specificity"]["dendritic"]["DC_PDC"]
    assert test["seeded"] and test["clusters_tested"] == 3 and test["clusters_declined"] == 1
    assert test["n_measured"] == 10 and test["n_up"] == 6 and test["null_rate"] >= 0.15  # 0.18 (release 2.32)
    assert test["majority_pvalue"] <= STATE_SPECIFICITY_ALPHA  # binomial p of that cluster 0.0103


@pytest.mark.slow
def test_wu2021_cafs_are_lost_to_the_specificity_test_not_to_foreign_markers(called):
    """Wu 2021 TNBC (10x), 346 CAFs of the mapped clusters. Its 14 foreign-lineage markers, each under the
    10 % cap, set aside 98 of them until release 2.6 (T cell 34, plasma 27, endothelial 18, myeloid 18; scrublet
    scores those cells as doublets no more often than the clean ones); held together to 10 % of the 379-cell
    population, 69 cells of the population are released and 39 of the 346 are set aside by any artefact column.
    The mixture calls 1-3 cells for each of the three near-identical Kieffer myCAF lists, and no cluster of the
    first seeding is seeded for any of them (4, 2 and 2 of the 27 seedings have a class for them; their mean calls
    none; 3, 2 and 2 of 26 until release 2.38): the myCAF-like cells are 62 % of the CAFs, a state that is the
    population's default has little contrast
    with "none of these", and the lists' genes barely tell them from the iCAF-like cells
    (:func:`test_wu2021_mycaf_lists_barely_tell_mycaf_like_from_icaf_like_cells_gene_by_gene`). The onco-fetal
    POSTN state (POSTN, FAP, PTGDS; POSTN detected in 82 % of the myCAF-like s5 cells, 25 % of the iCAF-like s1
    cells) is called in 189 of the 216 myCAF-like cells and 14 of the 130 iCAF-like ones (95 and 1 in release
    2.38: release 2.39's co-expression route, p 0.0025 for POSTN's partners, adds the cells of its module to the
    expression route's seeds; the calls follow POSTN, detected in 75-100 % of the iCAF-like cells called it and
    20-24 % of the others)."""
    adata = called["wu2021_tnbc"]
    params = adata.uns["hcctme_state_params"]
    labels = _labels(adata, "wu2021_tnbc")
    cafs = (labels.str.startswith("CAFs") & ~labels.str.contains("Transitioning")).to_numpy()
    flagged = adata.obs["hcctme_state_artefact"].astype(str).to_numpy()[cafs]
    assert cafs.sum() == 346 and np.sum(flagged != "") <= 0.15 * 346
    fibroblasts = params["diagnostics"]["fibroblast"]["unassigned"]
    assert fibroblasts["foreign_released"] >= 50
    in_population = (adata.obs["hcctme_state_context"].astype(str) == "fibroblast").to_numpy()
    by_marker = adata.obs["hcctme_state_artefact"].astype(str).str.startswith("MARKER_").to_numpy()
    assert np.sum(by_marker & in_population) <= 0.1 * in_population.sum()
    mixture = params["mixture_counts"]["fibroblast"]
    assert max(mixture[s] for s in ("CAF_ECM_MYCAF", "CAF_TGFB_MYCAF", "CAF_WOUND_MYCAF")) <= 5
    specificity = params["self_train"]["specificity"]["fibroblast"]
    assert not any(specificity[s]["seeded"] for s in ("CAF_ECM_MYCAF", "CAF_TGFB_MYCAF", "CAF_WOUND_MYCAF"))
    # in most cuts the clusters highest in them are declined: 4, 2 and 2 of the 27 seedings have a class for them
    seedings = params["self_train"]["seedings"]["fibroblast"]
    n, classes = seedings["seedings"], seedings["classes"]
    assert n == 27
    assert [round(n * classes[s]) for s in ("CAF_ECM_MYCAF", "CAF_TGFB_MYCAF", "CAF_WOUND_MYCAF")] == [4, 2, 2]
    calls = adata.obs["hcctme_state"].astype(str).to_numpy()
    mycaf = labels.str.contains("myCAF").to_numpy()
    postn = calls == "CAF_ONCOFETAL_POSTN"
    assert np.sum(postn & mycaf) >= 0.35 * mycaf.sum() and np.sum(postn & mycaf) >= 0.9 * np.sum(postn & cafs)


@pytest.mark.slow
def test_small_populations_are_called_by_their_seedings(called):
    """Populations under 50 cells after artefacts are not self-trained; a population too small for its states' clusters
    is seeded nine times and called by the mean of the seedings that train the classifier, or, where none does, by the
    mean of every seeding's mixture calls (release 2.31; the first seeding's until release 2.30). Wu 2021's CD4 T cells
    (64, 7 set aside; until release 2.6 16, leaving 48 and no self-training): no seeding has seeds of two classes, 2 of
    the 9 cuts keep the mixture's TREG calls, and the mean calls none
    (:func:`test_wu2021_tregs_pass_the_mixture_not_the_cuts`). He 2020's 70 macrophages: the first seeding has no state
    seeds and kept the mixture's calls (TAM2_SPP1 3 of 12 until release 2.23); 3 of the 9 train the classifier (seeded
    KUPFFER; TAM2_SPP1; TAM1_FOLR2 and TAM2_SPP1) and their mean called 9 of the 12 Mac_SPP1 cells TAM2_SPP1 and 5 of
    the 58 other macrophages (releases 2.24-2.28). They disagree, so release 2.29 draws 18 more: 10 of the 27 train the
    classifier and their mean calls no macrophage a state at random state 0 (the 12 Mac_SPP1 cells are all TAM2_SPP1 or
    none: 11-12 in 5 of 10 random states, README "Over random states"); 5 of those 10 have a TAM2_SPP1 class, 4 a
    KUPFFER one and 2 a TAM1_FOLR2 one (the record's ``classes``). Release 2.32's cuts (the cells read in the order
    of their names): 4 of the 27 train the classifier (2 with a TAM2_SPP1 class, 2 KUPFFER, 1 TAM1_FOLR2), the mean
    calls none at random state 0 and 10-12 of 12 at 6 of 10 random states. One finer cut alone (one cluster per 10 cells
    instead of 20) was measured and dropped in release 2.18: He 2020 unchanged, Zheng LAYN -> terminal 22 -> 0 of 22, Wu
    2020 Teff 11 -> 0 of 22. Release 2.36 averages all the seedings where fewer than half train the classifier: 4 of
    the first 9 do, their mean with the other five's gated mixture calls calls TAM2_SPP1, the seedings disagree on it,
    and of the 27 drawn 11 train (2 with a TAM1_FOLR2 class, 5 KUPFFER, 5 TAM2_SPP1); all 27 averaged call 3 of the
    12 Mac_SPP1 cells TAM2_SPP1 (19 of 27 keep it) and no other macrophage a state. TAM1_FOLR2, which the first
    seeding declines by read-through, is kept by 5 of the 27 (2 classes, 3 mixture tests): split, not declined.
    Release 2.37 calls a state that at least half of the trained seedings seeded through its list's gene test by
    their mean (``established``): TAM2_SPP1 and KUPFFER were seeded so by 5 of the 11, so none is, and the calls are
    release 2.36's (at five of the other nine random states TAM2_SPP1 is: README "Over random states")."""
    wu = called["wu2021_tnbc"].uns["hcctme_state_params"]
    assert np.isnan(wu["self_train"]["temperature"]["cd4_t"]) and "cd4_t" not in wu["self_train"]["seeds"]
    assert wu["self_train"]["small_populations"]["cd4_t"] == {"cells": 57, "needed": 120, "states": 1, "seedings": 9}
    he = called["he2020_liver"]
    params = he.uns["hcctme_state_params"]
    assert params["self_train"]["small_populations"]["macrophage"] == {"cells": 69, "needed": 200, "states": 3,
                                                                       "seedings": 27}
    record = params["self_train"]["seedings"]["macrophage"]
    assert record["classes"] == pytest.approx({"TAM1_FOLR2": 2 / 11, "KUPFFER": 5 / 11, "TAM2_SPP1": 5 / 11})
    assert record["mixture_kept"] == pytest.approx({"TAM1_FOLR2": 5 / 27, "KUPFFER": 5 / 27, "TAM2_SPP1": 19 / 27})
    assert record["established"] == []
    assert (he.obs["hcctme_state_context"] == "macrophage").sum() == 70
    labels = _labels(he, "he2020_liver").to_numpy()
    calls = he.obs["hcctme_state"].astype(str).to_numpy()
    macrophage = (he.obs["hcctme_state_context"].astype(str) == "macrophage").to_numpy()
    assert np.sum(calls[labels == "Mac_SPP1"] == "TAM2_SPP1") == 3  # 9 in releases 2.24-2.28, 0 in 2.29-2.35
    assert np.sum(calls[macrophage & (labels != "Mac_SPP1")] == "TAM2_SPP1") <= 6
    assert not np.isin(calls[macrophage], ["KUPFFER", "TAM1_FOLR2"]).any()
    # release 2.15: the mixture's 16 TAM1_FOLR2 calls (15 in the Kupffer-like Mac_SDC3 of this tumour-free liver)
    # pass the 4-gene panel in their best cluster only through genes the KUPFFER list holds, which scores higher
    # there: declined as in the cluster seeds (read-through), the calls dropped (the first averaged seeding's test);
    # since release 2.36 the other seedings are averaged too, and 5 of the 27 keep the state: none of its calls
    # stands, and it is warned of as split rather than listed as declined
    folr2 = params["self_train"]["specificity"]["macrophage"]["TAM1_FOLR2"]
    assert folr2["read_through"] == "KUPFFER" and not folr2["seeded"]
    assert params["mixture_counts"]["macrophage"]["TAM1_FOLR2"] >= 10
    assert "macrophage" not in params["self_train"]["declined"]


@pytest.mark.slow
def test_seedings_agreement_marks_the_cut_dependent_calls(called):
    """``uns[...]["self_train"]["seedings"]``: per population, the seedings averaged and, per state, the share of its
    calls one seeding makes on average (call_states warns under 0.8). Villani 2017's pDCs: one of the three seedings
    (random state 2) declines both pDC clusters (the majority route's p 0.0125 against the 0.01 alpha; 10 of the
    list's genes measured) and calls no pDC, so one seeding makes 2/3 of the 181 pDC calls and all the cDC2 calls.
    Under 0.8, so release 2.29 draws six more seedings: two of the nine call no pDC (7/9), the calls unchanged.
    Release 2.32 (the cells read in the order of their names): three of the nine (6/9), the calls unchanged.
    Sade-Feldman 2018's T cells, whose calls turn on the cut (README limits): at least one state is under the line
    after nine seedings too."""
    villani = called["villani2017_dc"].uns["hcctme_state_params"]["self_train"]["seedings"]["dendritic"]
    assert villani["seedings"] == 9 and villani["states"]["DC_PDC"] == pytest.approx(6 / 9)
    assert villani["states"]["DC_CDC2"] >= 0.85  # 0.88
    sade = called["sadefeldman2018_melanoma"]
    record = sade.uns["hcctme_state_params"]["self_train"]["seedings"]["t_cell"]
    calls = sade.obs["hcctme_state"].astype(str)[sade.obs["hcctme_state_context"].astype(str) == "t_cell"]
    assert record["seedings"] == 9 and set(record["states"]) == set(calls) - {"unassigned"}
    assert 0.0 < record["agreement"] < 1.0 and min(record["states"].values()) < STATE_SEEDING_AGREEMENT


DRAWS = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "states_real_2.39" / "random_states.csv"


def test_readme_table_over_random_states_is_the_recorded_run():
    """README's table of the real-data shares over ten random states is ``states_real.py --random-states``' saved
    output (``benchmarks/results/states_real_2.39/random_states.csv``): the table and the rows reaching 0.7 per
    random state."""
    from benchmarks.states_real import draws_summary

    draws = pd.read_csv(DRAWS)
    assert sorted(draws["random_state"].unique()) == list(range(0, 100, 10))
    table, reaching = draws_summary(draws)
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert table in readme, "README's table over random states differs from the saved draws"
    line = "rows >= 0.7 per random state: " + ", ".join(f"{r}: {n}" for r, n in reaching.items())
    assert line in readme


@pytest.mark.slow
def test_recorded_draws_at_random_state_0_are_the_calls(shares):
    """The saved draws' first random state (0, the default) is what this code calls."""
    draws = pd.read_csv(DRAWS)
    first = draws[draws["random_state"] == 0].set_index(["dataset", "state"])["n_matching"]
    now = pd.concat({name: table["n_matching"] for name, table in shares.items()}, names=["dataset", "state"])
    assert first.sort_index().to_dict() == now.sort_index().to_dict()


def test_states_named_for_one_cluster_are_read_once():
    """:func:`by_cluster` merges the rows of the states a mapping names for one authors' cluster: a cell gets one
    call, so the cluster's matching cells are the rows' sum (here 3 + 1 of 10, not 3 and 1 as two rows), its
    sibling calls likewise; another cluster, and the same cluster at another random state, stay their own rows."""
    rows = [("d", "A", "c1", 10, 1, 3, 0.3, 2, 20, 0), ("d", "B", "c1", 10, 1, 1, 0.1, 1, 20, 0),
            ("d", "C", "c2", 5, 0, 4, 0.8, 0, 25, 0), ("d", "A", "c1", 10, 1, 8, 0.8, 0, 20, 10),
            ("d", "B", "c1", 10, 1, 0, 0.0, 0, 20, 10)]
    table = pd.DataFrame(rows, columns=["dataset", "state", "cluster", "n_cells", "n_artefact", "n_matching",
                                        "share", "siblings_called", "n_siblings", "random_state"])
    merged = by_cluster(table).set_index(["random_state", "cluster"])
    assert len(merged) == 3
    assert merged.loc[(0, "c1"), ["state", "n_matching", "siblings_called", "n_cells"]].tolist() == ["A / B", 4, 3, 10]
    assert merged.loc[(0, "c1"), "share"] == pytest.approx(0.4)
    assert merged.loc[(10, "c1"), "share"] == pytest.approx(0.8)
    assert merged.loc[(0, "c2"), ["state", "n_matching"]].tolist() == ["C", 4]
    assert list(by_cluster(table.drop(columns="random_state")).columns) == list(table.columns.drop("random_state"))


def test_states_named_for_one_cluster_share_its_siblings():
    """What :func:`by_cluster` relies on: every mapping that names several states for one authors' cluster tells
    them apart from the same siblings in the same parent population, so their sibling calls can be summed."""
    for dataset in DATASETS.values():
        by_cells = {}
        for state in dataset.states:
            by_cells.setdefault(state.cluster, set()).add((state.siblings, state.parent))
        assert all(len(kinds) == 1 for kinds in by_cells.values()), dataset.name


@pytest.mark.slow
def test_readme_count_of_clusters_reaching_the_target_is_the_calls(shares):
    """README's summary line counts the authors' state clusters (Wu 2021's myCAF-like cells once, not once per
    myCAF subtype) that reach 0.7 at the default random state."""
    clusters = by_cluster(pd.concat([table.reset_index() for table in shares.values()]))
    merged = clusters.set_index("cluster").loc["CAFs myCAF like s4+CAFs myCAF like s5"]
    assert merged["state"] == "CAF_ECM_MYCAF / CAF_TGFB_MYCAF / CAF_WOUND_MYCAF"
    sentence = f"met by {int((clusters['share'] >= 0.7).sum())} of the {len(clusters)} clusters at the default"
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert sentence in readme.replace("\n  ", " ")
