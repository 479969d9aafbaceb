"""Carried artefact columns of tl.call_states (hcctme/tl/_state_artefact_carry.py)."""

from __future__ import annotations

import anndata
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata import AnnData

import hcctme
from hcctme._constants import STATE_ARTEFACT_CARRY_VOTE_CELLS, STATE_CARRY_ALONE_GENES
from hcctme.sig import Signature, SignatureSet
from hcctme.tl import _state_artefact_carry as carry
from hcctme.tl import _state_artefacts as artefacts
from hcctme.tl import _state_expression as state_expression

GENES = pd.Index([f"G{i}" for i in range(40)])
PROGRAMME = [f"G{i}" for i in range(10, 18)]  # the artefact programme's genes
CAUGHT, ESCAPED = np.arange(0, 30), np.arange(30, 60)  # artefact cells the list reads strongly / weakly


def _population(seed: int = 0, n: int = 300, *, n_genes: int = len(PROGRAMME), fold: float = 8.0,
                escaped: float | None = 1.5) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """Log-normalised expression, the artefact list's score and the samples of one population.

    Cells 0-59 carry the artefact programme (``n_genes`` genes from G10 up ``fold``-fold; by default
    PROGRAMME, 8-fold); the list reads it strongly in cells 0-29 (score 6) and weakly in 30-59 (score
    ``escaped``; None: at the clean cells' level, N(0, 1)).
    """
    rng = np.random.default_rng(seed)
    lam = np.full((n, GENES.size), 5.0)
    lam[np.ix_(np.r_[CAUGHT, ESCAPED], np.arange(10, 10 + n_genes))] *= fold
    values = rng.normal(0.0, 1.0, n)
    values[CAUGHT] = 6.0
    if escaped is not None:
        values[ESCAPED] = escaped
    return state_expression.log_expression(rng.poisson(lam).astype(np.float32)), values, np.arange(n) % 2


def _first_pass(values: np.ndarray) -> np.ndarray:
    flags, _ = artefacts.column_flags(values)
    return np.where(flags, "LIST", "").astype(object)


def _carried(X: sp.csr_matrix, values: np.ndarray, flagged: np.ndarray, samples: np.ndarray, excluded=(),
             agreed=None, min_cells: int = 20, alone_genes: int = STATE_CARRY_ALONE_GENES) -> carry.Carried:
    """One population's list LIST carried: its own genes chosen, planned against ``agreed``, read and flagged."""
    lists = carry.read_lists(values[:, None], ["LIST"])
    own = carry.choose(X, lists, flagged, GENES, list(excluded), samples)
    reads = carry.plan(own, agreed or {}, ["LIST"], list(excluded), min_cells=min_cells, alone_genes=alone_genes)
    return carry.carry(X, lists, flagged, GENES, samples, reads, alone_genes=alone_genes)


def test_read_lists_fits_each_column_once_as_column_flags_does():
    _, values, _ = _population()
    other = np.random.default_rng(3).normal(0.0, 1.0, values.size)
    lists = carry.read_lists(np.column_stack([values, other]), ["LIST", "OTHER"])
    for j, column in enumerate([values, other]):
        flags, p = artefacts.column_flags(column)
        np.testing.assert_array_equal(lists.flags[:, j], flags)
        np.testing.assert_array_equal(lists.p[:, j], p)
    none = carry.read_lists(np.zeros((values.size, 0)), [])
    assert none.flags.shape == none.p.shape == (values.size, 0) and none.flags.dtype == bool


def test_the_list_alone_misses_the_weakly_read_artefact_cells():
    _, values, _ = _population()
    flagged = _first_pass(values)
    assert (flagged[CAUGHT] == "LIST").all()
    assert (flagged[ESCAPED] == "").all()


def test_carried_column_flags_the_escaped_artefact_cells_and_no_clean_cell():
    X, values, samples = _population()
    flagged = _first_pass(values)
    found = _carried(X, values, flagged, samples)
    assert (found.flagged[ESCAPED] == "LIST_carried").all()
    assert (found.flagged[CAUGHT] == "").all()  # already flagged: not counted twice
    assert (found.flagged[60:] == "").all()
    assert found.record["LIST_carried"]["genes"] == PROGRAMME
    assert found.record["LIST_carried"]["added"] == ESCAPED.size
    assert found.record["LIST_carried"]["flagged"] == CAUGHT.size + ESCAPED.size
    # the carried column's read replaces the list's for the cells the list left clean: the escaped cells become
    # likely artefacts, the caught ones keep the list's probability, the clean cells stay below one half
    _, p_list = artefacts.column_flags(values)
    final = 1.0 - (1.0 - p_list) * found.not_artefact
    assert (final[ESCAPED] > 0.5).all() and (found.not_artefact[CAUGHT] == 1.0).all()
    assert (final[60:] < 0.5).all()


def test_signature_genes_of_the_states_are_never_carried():
    X, values, samples = _population()
    flagged = _first_pass(values)
    found = _carried(X, values, flagged, samples, excluded=PROGRAMME[:5])
    assert found.record["LIST_carried"]["genes"] == PROGRAMME[5:]
    # every programme gene is a state's gene (a state that raises the list's genes): nothing is carried
    none = _carried(X, values, flagged, samples, excluded=PROGRAMME)
    assert none.record == {} and (none.flagged == "").all() and (none.not_artefact == 1).all()


def test_too_few_flagged_cells_are_not_carried():
    X, values, samples = _population()
    flagged = _first_pass(values)
    found = _carried(X, values, flagged, samples, min_cells=CAUGHT.size + 1)
    assert found.record == {} and (found.flagged == "").all()


def test_eligible_columns_leave_out_markers_flags_and_library_size():
    columns = ["STRESS", "MARKER_X", "predicted_doublet", artefacts.LIBRARY_SIZE, "MY_SCORE"]
    assert carry.eligible(columns, {"MARKER_X": 0.4}, ["predicted_doublet"]) == ["STRESS", "MY_SCORE"]


@pytest.fixture
def library(monkeypatch):
    sigs = [Signature(id=s, genes_up=genes, collection="macrophage_states", cell_context="macrophage", role="state")
            for s, genes in {"TAM_A": ("G0", "G1", "G2"), "TAM_B": ("G3", "G4", "G5")}.items()]
    lib = SignatureSet(sigs, library_version="test+1")
    monkeypatch.setattr(hcctme.sig, "library", lambda: lib)
    return lib


def _cohort(n: int = 400, seed: int = 1) -> AnnData:
    """Macrophages in two states (genes G0-G2 / G3-G5 up), cells 0-59 carrying the artefact programme."""
    rng = np.random.default_rng(seed)
    state = np.where(np.arange(n) % 2 == 0, "TAM_A", "TAM_B")
    lam = np.full((n, GENES.size), 5.0)
    lam[state == "TAM_A", :3] *= 6.0
    lam[state == "TAM_B", 3:6] *= 6.0
    lam[np.ix_(np.r_[CAUGHT, ESCAPED], GENES.get_indexer(PROGRAMME))] *= 8.0
    counts = rng.poisson(lam).astype(np.float32)
    z = np.where(state[:, None] == np.array(["TAM_A", "TAM_B"]), 2.0, 0.0) + rng.normal(0, 0.5, (n, 2))
    stress = rng.normal(0.0, 1.0, n)
    stress[CAUGHT], stress[ESCAPED] = 6.0, 1.5
    obs = pd.DataFrame({"cell_type": "Macrophages", "patient": (np.arange(n) % 3).astype(str)},
                       index=[f"c{i}" for i in range(n)])
    adata = AnnData(sp.csr_matrix(counts), obs=obs, var=pd.DataFrame(index=GENES))
    adata.obsm["hcctme_scores"] = pd.DataFrame({"TAM_A": z[:, 0], "TAM_B": z[:, 1], "MY_STRESS": stress},
                                               index=adata.obs_names)
    return adata


def test_call_states_flags_the_carried_artefact_cells_and_records_them(library):
    adata = _cohort()
    hcctme.tl.call_states(adata, cell_type_key="cell_type", sample_key="patient", artefacts=["MY_STRESS"])
    flagged = adata.obs["hcctme_state_artefact"].astype(str).to_numpy()
    assert (flagged[CAUGHT] == "MY_STRESS").all()
    assert (flagged[ESCAPED] == "MY_STRESS_carried").all()
    assert (flagged[60:] == "").all()
    assert (adata.obs["hcctme_state"].astype(str).to_numpy()[ESCAPED] == "unassigned").all()
    info = adata.uns["hcctme_state_params"]
    record = info["self_train"]["carried_artefacts"]["macrophage"]["MY_STRESS_carried"]
    assert record["genes"] == PROGRAMME and record["added"] == ESCAPED.size
    assert info["diagnostics"]["macrophage"]["unassigned"]["flagged_by"]["MY_STRESS_carried"] == record["flagged"]
    assert info["diagnostics"]["macrophage"]["unassigned"]["artefacts"] == CAUGHT.size + ESCAPED.size


def test_without_self_training_nothing_is_carried(library):
    adata = _cohort()
    hcctme.tl.call_states(adata, cell_type_key="cell_type", sample_key="patient", artefacts=["MY_STRESS"],
                          self_train=False)
    assert (adata.obs["hcctme_state_artefact"].astype(str).to_numpy()[ESCAPED] == "").all()
    assert adata.uns["hcctme_state_params"]["self_train"]["carried_artefacts"] == {}


def test_backed_cohort_carries_the_same_cells(library, tmp_path):
    import anndata as ad

    adata = _cohort()
    adata.write_h5ad(tmp_path / "c.h5ad")
    backed = ad.read_h5ad(tmp_path / "c.h5ad", backed="r")
    hcctme.tl.call_states(adata, cell_type_key="cell_type", sample_key="patient", artefacts=["MY_STRESS"])
    hcctme.tl.call_states(backed, cell_type_key="cell_type", sample_key="patient", artefacts=["MY_STRESS"])
    np.testing.assert_array_equal(backed.obs["hcctme_state_artefact"].astype(str).to_numpy(),
                                  adata.obs["hcctme_state_artefact"].astype(str).to_numpy())
    assert (backed.uns["hcctme_state_params"]["self_train"]["carried_artefacts"]
            == adata.uns["hcctme_state_params"]["self_train"]["carried_artefacts"])


def test_carried_genes_the_populations_agree_on_are_read_alone():
    # from STATE_CARRY_ALONE_GENES genes another population chose too, the carried genes alone read the cells the
    # list misses entirely; averaged with the list's read (a population's own genes only) they are found in some
    # cohorts only
    alone, averaged = [], []
    for seed in range(6):
        X, values, samples = _population(seed, n_genes=STATE_CARRY_ALONE_GENES + 2, fold=3.0, escaped=None)
        flagged = _first_pass(values)
        own = carry.choose(X, carry.read_lists(values[:, None], ["LIST"]), flagged, GENES, [], samples)["LIST"].genes
        assert len(own) >= STATE_CARRY_ALONE_GENES
        found = _carried(X, values, flagged, samples, agreed={"LIST": own})
        assert found.record["LIST_carried"]["alone"] and (found.flagged[60:] == "").all()
        alone.append(np.mean(found.flagged[ESCAPED] == "LIST_carried"))
        mean_read = _carried(X, values, flagged, samples)
        assert not mean_read.record["LIST_carried"]["alone"]
        averaged.append(np.mean(mean_read.flagged[ESCAPED] == "LIST_carried"))
    assert min(alone) >= 0.9
    assert np.mean(averaged) < 0.5


def test_plan_reads_agreed_genes_alone_and_borrows_them_where_a_column_has_none():
    agreed = {"S": [f"A{i}" for i in range(12)], "T": ["A0", "A1"]}
    own = {"S": carry.Chosen([*(f"A{i}" for i in range(10)), "STATE1", "STATE2"], 40),
           "T": carry.Chosen(["A0", "A1", "B0"], 40)}
    reads = carry.plan(own, agreed, ["S", "T", "U"], [])
    assert reads["S"] == carry.Read(tuple(f"A{i}" for i in range(10)), True, False)  # the agreed ones, alone
    assert reads["T"] == carry.Read(("A0", "A1", "B0"), False, False)  # too few agreed: its own, with the list
    assert "U" not in reads
    # a column without genes of its own here reads the agreed genes, the population's state genes left out
    lent = carry.plan({}, agreed, ["S", "T"], ["A0"])
    assert lent == {"S": carry.Read(tuple(f"A{i}" for i in range(1, 12)), True, True)}
    assert carry.plan({}, agreed, ["S"], ["A0", "A1", "A2"]) == {}  # 9 left: too few to read alone
    # a column that flags fewer than 20 cells chose genes that count towards the agreement only: it reads the agreed
    # genes as a population that chose none
    voter = carry.plan({"S": carry.Chosen(["A0", "STATE1"], STATE_ARTEFACT_CARRY_VOTE_CELLS)}, agreed, ["S"], [])
    assert voter == {"S": carry.Read(tuple(agreed["S"]), True, True)}


def test_a_population_with_too_few_flagged_cells_reads_the_borrowed_genes():
    X, values, samples = _population(n_genes=STATE_CARRY_ALONE_GENES + 2, fold=3.0, escaped=None)
    programme = list(GENES[10:10 + STATE_CARRY_ALONE_GENES + 2])
    weak = values.copy()
    weak[CAUGHT[10:]] = 0.0  # only 10 cells flagged by the list: too few to choose genes here
    flagged = _first_pass(weak)
    assert (flagged != "").sum() < 20
    assert _carried(X, weak, flagged, samples).record == {}
    found = _carried(X, weak, flagged, samples, agreed={"LIST": programme})
    record = found.record["LIST_carried"]
    assert record["borrowed"] and record["alone"] and record["genes"] == programme
    assert (found.flagged[np.r_[CAUGHT[10:], ESCAPED]] == "LIST_carried").mean() >= 0.9
    assert (found.flagged[60:] == "").all()


def test_consensus_keeps_the_genes_two_and_half_the_populations_chose():
    def chose(*genes: str, cells: int = 40) -> carry.Chosen:
        return carry.Chosen(list(genes), cells)

    chosen = {"a": {"S": chose("G1", "G2", "G3")},
              "b": {"S": chose("G2", "G3", "G4"), "T": chose("G8", "G9")},  # T: one population, no agreement
              "c": {"S": chose("G3", "G5", cells=12)}}  # a population flagging 10-19 cells votes too
    assert carry.consensus(chosen) == {"S": ["G3", "G2"]}
    assert carry.consensus(chosen, n_genes=1) == {"S": ["G3"]}
    assert carry.consensus({}) == {}
    assert carry.consensus({"a": {"S": chose("G1", "G2")}, "b": {"S": chose("G2", "G3")}}) == {"S": ["G2"]}


BIG = pd.Index([f"G{i}" for i in range(60)])
BIG_PROGRAMME = [f"G{i}" for i in range(10, 22)]  # 12 genes: read alone (STATE_CARRY_ALONE_GENES)
LINEAGE_STATES = {"macrophage": ("Macrophages", {"TAM_A": (0, 3), "TAM_B": (3, 6)}),
                  "fibroblast": ("Fibroblasts", {"CAF_A": (30, 33), "CAF_B": (33, 36)}),
                  "cd8_t": ("CD8+ T cells", {"CD8_A": (40, 43), "CD8_B": (43, 46)})}


@pytest.fixture
def three_lineages(monkeypatch):
    sigs = [Signature(id=state, genes_up=tuple(BIG[a:b]), collection=f"{context}_states", cell_context=context,
                      role="state")
            for context, (_, states) in LINEAGE_STATES.items() for state, (a, b) in states.items()]
    lib = SignatureSet(sigs, library_version="test+1")
    monkeypatch.setattr(hcctme.sig, "library", lambda: lib)
    return lib


def _lineage(context: str, seed: int, n: int = 300, *, weak: bool = False, caught: int = 30) -> AnnData:
    """One population in two states, cells 0-59 carrying the artefact programme (12 genes, 8-fold).

    The list MY_STRESS reads the first ``caught`` cells strongly and the rest of the 60 weakly, or (``weak``) all 60
    only 1 sd above the rest.
    """
    rng = np.random.default_rng(seed)
    label, states = LINEAGE_STATES[context]
    names = list(states)
    state = np.where(np.arange(n) % 2 == 0, names[0], names[1])
    lam = np.full((n, BIG.size), 5.0)
    for name, (a, b) in states.items():
        lam[state == name, a:b] *= 6.0
    lam[np.ix_(np.arange(60), BIG.get_indexer(BIG_PROGRAMME))] *= 8.0
    stress = rng.normal(0.0, 1.0, n)
    if weak:
        stress[:60] += 1.0
    else:
        stress[:caught], stress[caught:60] = 6.0, 1.5
    scores = {s: 0.0 for _, (_, st) in LINEAGE_STATES.items() for s in st}
    z = np.where(state[:, None] == np.array(names), 2.0, 0.0) + rng.normal(0, 0.5, (n, 2))
    scores.update({names[0]: z[:, 0], names[1]: z[:, 1], "MY_STRESS": stress})
    obs = pd.DataFrame({"cell_type": label, "patient": (np.arange(n) % 3).astype(str)},
                       index=[f"{context}{i}" for i in range(n)])
    adata = AnnData(sp.csr_matrix(rng.poisson(lam).astype(np.float32)), obs=obs, var=pd.DataFrame(index=BIG))
    adata.obsm["hcctme_scores"] = pd.DataFrame(scores, index=obs.index)
    return adata


def _called_lineages(*populations: AnnData) -> tuple[AnnData, np.ndarray, dict]:
    """The populations together, called with MY_STRESS as an artefact: the data, its artefact column, the records."""
    adata = anndata.concat(list(populations), merge="same")
    hcctme.tl.call_states(adata, cell_type_key="cell_type", sample_key="patient", artefacts=["MY_STRESS"])
    return (adata, adata.obs["hcctme_state_artefact"].astype(str).to_numpy(),
            adata.uns["hcctme_state_params"]["self_train"]["carried_artefacts"])


def test_call_states_borrows_the_genes_two_populations_carried_the_column_to(three_lineages):
    # CD8 T cells: 60 cells carry the artefact programme the macrophages and fibroblasts carried, the list reads
    # them only 1 sd above the rest (it flags too few to choose genes there)
    adata, flagged, records = _called_lineages(_lineage("macrophage", 1), _lineage("fibroblast", 2),
                                               _lineage("cd8_t", 3, weak=True))
    cd8 = adata.obs_names.str.startswith("cd8_t")
    assert (flagged[cd8][:60] != "").mean() >= 0.9
    assert (flagged[cd8][60:] != "").mean() <= 0.02
    assert records["cd8_t"]["MY_STRESS_carried"]["borrowed"]
    assert records["cd8_t"]["MY_STRESS_carried"]["genes"] == BIG_PROGRAMME
    assert not records["macrophage"]["MY_STRESS_carried"]["borrowed"]
    # one population's carried genes are not borrowed: without the fibroblasts the CD8 T cells stay as they were
    one, alone, records = _called_lineages(_lineage("macrophage", 1), _lineage("cd8_t", 3, weak=True))
    assert "cd8_t" not in records
    assert (alone[one.obs_names.str.startswith("cd8_t")][:60] != "").mean() <= 0.5


def test_a_population_flagging_few_cells_counts_towards_the_agreement(three_lineages):
    # the fibroblasts' list flags 15 of their 60 artefact cells: too few to read its own genes, enough to choose
    # genes that agree with the macrophages'; both populations then read the agreed genes alone
    adata, flagged, records = _called_lineages(_lineage("macrophage", 1), _lineage("fibroblast", 2, caught=15))
    fibro = adata.obs_names.str.startswith("fibroblast")
    assert (flagged[fibro][:60] != "").mean() >= 0.9
    assert (flagged[fibro][60:] != "").mean() <= 0.02
    fibroblasts = records["fibroblast"]["MY_STRESS_carried"]
    assert fibroblasts["alone"] and fibroblasts["borrowed"] and fibroblasts["genes"] == BIG_PROGRAMME
    assert records["macrophage"]["MY_STRESS_carried"]["alone"]
