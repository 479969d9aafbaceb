"""tl.call_states: the calls of a cell depend on its data, not on where its row or its genes sit in the AnnData."""

import logging
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import hcctme
from hcctme import _validate
from hcctme._constants import STATE_GENES_OF_MAX
from hcctme.tl import _state_genes_of as genes_of
from hcctme.tl import _state_order as order
from hcctme.tl import _state_specificity as specificity

KEYS = {"cell_type_key": "cell_type", "sample_key": "patient"}


@pytest.fixture(scope="module")
def cohort():
    adata = hcctme.datasets.simulate_cohort(n_patients=6, cells_per_patient=100, random_state=0)
    hcctme.tl.score(adata)
    return adata


def _calls(adata: ad.AnnData, **kwargs) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("hcctme").setLevel(logging.ERROR)
        out = adata if adata.isbacked else adata.copy()  # a backed file is called in place (copy would load it)
        try:
            hcctme.tl.call_states(out, **KEYS, **kwargs)
        finally:
            logging.getLogger("hcctme").setLevel(logging.NOTSET)
    return out.obs[["hcctme_state", "hcctme_state_confidence", "hcctme_state_artefact"]].astype(
        {"hcctme_state": str})


@pytest.mark.parametrize("refine", [None, "leiden"])
def test_calls_do_not_depend_on_the_order_of_the_rows(cohort, refine):
    """The same cells in another row order get the same calls and confidences, to the last bit (before release
    2.32 the k-means seeds, fold splits and subsamples were drawn by row: 21 of these 600 cells changed call)."""
    shuffled = cohort[np.random.default_rng(1).permutation(cohort.n_obs)].copy()
    expected = _calls(cohort, refine=refine)
    got = _calls(shuffled, refine=refine).loc[expected.index]
    assert (expected["hcctme_state"] != "unassigned").sum() > 100
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_calls_do_not_depend_on_genes_no_cell_detects(cohort):
    """300 genes expressed in no cell (and in no signature) change no call (the specificity test's background
    genes are drawn from the genes the population detects; before release 2.32, 24 of 600 calls changed)."""
    names = [f"UNEXPRESSED{i}" for i in range(300)]
    empty = sp.csr_matrix((cohort.n_obs, len(names)), dtype=np.float32)
    zeros = ad.AnnData(X=empty, obs=cohort.obs[[]], var=pd.DataFrame(index=names), layers={"counts": empty})
    wider = ad.concat([cohort, zeros], axis=1, merge="first")
    wider.obs = cohort.obs.copy()
    wider.obsm = cohort.obsm.copy()
    wider.uns = cohort.uns.copy()
    pd.testing.assert_frame_equal(_calls(wider), _calls(cohort))


@pytest.fixture(scope="module")
def wider_cohort():
    adata = hcctme.datasets.simulate_cohort(n_patients=6, cells_per_patient=150, n_genes=600, random_state=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hcctme.tl.score(adata)
    return adata


def test_calls_do_not_depend_on_the_order_of_the_genes(wider_cohort):
    """Genes in another column order: the same calls and confidences, to the last bit. Each population's genes are
    read in the order of their names (release 2.34); before it, genes tied in AUROC or mean were taken by column
    position and 77 of these 900 confidences moved by up to 0.0035 (sweep 58d)."""
    shuffled = wider_cohort[:, np.random.default_rng(6).permutation(wider_cohort.n_vars)].copy()
    expected, got = _calls(wider_cohort), _calls(shuffled)
    assert (expected["hcctme_state"] != "unassigned").sum() > 200
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_name_ordered_columns_hold_each_gene_at_its_name_rank():
    from hcctme.tl import _state_expression as expression

    X = sp.random(6, 5, density=0.6, format="csr", random_state=3, dtype=np.float32)
    rank = order.rank(pd.Index(["d", "a", "e", "b", "c"]))
    got = expression.name_ordered(X.copy(), rank)
    np.testing.assert_array_equal(got.toarray()[:, rank], X.toarray())
    assert got.has_sorted_indices


def test_population_rows_follow_the_cell_names():
    names = pd.Index(["c", "a", "d", "b", "e"])
    rank = order.rank(names)
    np.testing.assert_array_equal(rank, [2, 0, 3, 1, 4])
    contexts = np.array(["T", "M", "T", "T", "M"], dtype=object)
    np.testing.assert_array_equal(order.population(contexts, "T", rank), [3, 0, 2])  # b, c, d
    np.testing.assert_array_equal(order.population(contexts, "T", None), [0, 2, 3])
    np.testing.assert_array_equal(order.population(contexts, "B", rank), np.zeros(0, dtype=int))


def test_background_genes_are_drawn_by_name_from_the_detected_genes():
    names = [f"G{i:03d}" for i in range(200)]
    signatures = {"S": names[:10]}
    detected = np.ones(200, dtype=bool)
    detected[100:] = False
    columns, positions, background, _ = specificity.panel_columns(names, signatures, n_background=40,
                                                                   detected=detected)
    assert set(columns[background]) <= set(range(10, 100))
    np.testing.assert_array_equal(columns[positions["S"]], np.arange(10))
    assert background.size == 40
    # the same genes in reversed column order draw the same genes
    reversed_names = names[::-1]
    r_columns, _, r_background, _ = specificity.panel_columns(reversed_names, signatures, n_background=40,
                                                              detected=detected[::-1])
    assert sorted(names[c] for c in columns[background]) == sorted(reversed_names[c] for c in r_columns[r_background])


def test_gene_ties_are_broken_by_name():
    """Genes tied in detection gap are chosen, and their controls matched, by name: the column order chooses none."""
    n_tied = STATE_GENES_OF_MAX + 20  # more tied genes than are taken
    host = np.r_[np.zeros(n_tied), np.full(40, 0.3)]
    own = np.r_[np.full(n_tied, 0.5), np.full(40, 0.3)]
    excluded = np.zeros(host.size, dtype=bool)
    name_rank = np.arange(host.size)[::-1].copy()  # the last column's name sorts first
    by_position = genes_of.choose(host, own, excluded)
    by_name = genes_of.choose(host, own, excluded, name_rank)
    np.testing.assert_array_equal(by_position, np.arange(STATE_GENES_OF_MAX))
    np.testing.assert_array_equal(by_name, np.arange(n_tied - STATE_GENES_OF_MAX, n_tied))
    controls = genes_of.controls(host, own, by_name, excluded, name_rank)
    np.testing.assert_array_equal(controls, np.arange(host.size - 5, host.size))  # the 5 names first in order


def test_unsorted_rows_of_a_backed_matrix_are_read_in_their_order(tmp_path):
    X = sp.random(50, 20, density=0.3, format="csr", random_state=0, dtype=np.float32)
    ad.AnnData(X=X).write_h5ad(tmp_path / "a.h5ad")
    backed = ad.read_h5ad(tmp_path / "a.h5ad", backed="r")
    rows = np.array([7, 3, 40, 3, 0, 12])
    got = _validate.rows_in_memory(backed.X, rows)
    np.testing.assert_array_equal(sp.csr_matrix(got).toarray(), X[rows].toarray())
    backed.file.close()


def test_backed_calls_do_not_depend_on_the_order_of_the_rows(cohort, tmp_path):
    """A backed file is read in its own row order and the population's rows are put in the order of their names in
    memory: the same calls from a file whose rows are permuted, and the same as in memory."""
    expected = _calls(cohort)
    shuffled = cohort[np.random.default_rng(1).permutation(cohort.n_obs)].copy()
    for name, adata in (("stored", cohort), ("shuffled", shuffled)):
        path = tmp_path / f"{name}.h5ad"
        adata.write_h5ad(path)
        backed = ad.read_h5ad(path, backed="r")
        assert backed.isbacked
        got = _calls(backed).loc[expected.index]
        backed.file.close()
        pd.testing.assert_series_equal(got["hcctme_state"], expected["hcctme_state"])
        pd.testing.assert_series_equal(got["hcctme_state_artefact"], expected["hcctme_state_artefact"])
        np.testing.assert_allclose(got["hcctme_state_confidence"], expected["hcctme_state_confidence"], atol=1e-6)


def test_backed_calls_do_not_depend_on_the_order_of_the_genes(cohort, tmp_path):
    """A backed file is read in chunks and its kept genes taken by name: the column selection kept each row's entries
    in the file's column order, and confidences moved by up to 6.5e-8 with the gene order (review of release 2.34)."""
    got = []
    for name, adata in (("stored", cohort), ("shuffled", cohort[:, np.random.default_rng(3).permutation(
            cohort.n_vars)].copy())):
        path = tmp_path / f"{name}.h5ad"
        adata.write_h5ad(path)
        backed = ad.read_h5ad(path, backed="r")
        got.append(_calls(backed))
        backed.file.close()
    pd.testing.assert_frame_equal(got[1], got[0], check_exact=True)


def test_cells_of_one_name_are_read_in_the_order_of_their_scores(cohort):
    """Sweep 63: repeated cell names (a concat without index_unique) were ordered by row, so the same cells in
    another row order got other calls (2 of 600 here, one confidence moved by 0.11); they are ordered by their
    scores now."""
    repeated = cohort.copy()
    repeated.obs_names = [f"cell{i % 300}" for i in range(repeated.n_obs)]
    perm = np.random.default_rng(1).permutation(repeated.n_obs)
    expected = _calls(repeated).reset_index(drop=True)
    got = _calls(repeated[perm].copy()).reset_index(drop=True).iloc[np.argsort(perm)].reset_index(drop=True)
    assert (expected["hcctme_state"] != "unassigned").sum() > 100
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_no_warning_of_unscored_states_of_a_population_the_data_lack(cohort, caplog):
    """Sweep 63: a cohort without macrophages was told "macrophage states not scored ... ['TAM3_MT1G']"."""
    adata = cohort[~cohort.obs["cell_type"].isin(["Macrophages", "Monocytes", "Kupffer cells"])].copy()
    with caplog.at_level(logging.WARNING, logger="hcctme"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hcctme.tl.call_states(adata, **KEYS)
    assert not [r for r in caplog.records if "macrophage states not scored" in r.getMessage()]
    with caplog.at_level(logging.WARNING, logger="hcctme"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hcctme.tl.call_states(cohort.copy(), **KEYS)
    assert [r for r in caplog.records if "macrophage states not scored" in r.getMessage()]


def test_a_population_too_small_to_fit_gets_one_warning(cohort, caplog):
    """Sweep 63 (Puram 2017): a population under min_fit_cells was warned of twice, "their cells stay unassigned"
    and "the calls are the mixture's; read them with care", for calls it does not have."""
    cd8 = np.flatnonzero((cohort.obs["cell_type"] == "CD8+ T cells").to_numpy())
    adata = cohort[np.setdiff1d(np.arange(cohort.n_obs), cd8[20:])].copy()  # 20 CD8 T cells left
    with caplog.at_level(logging.WARNING, logger="hcctme"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hcctme.tl.call_states(adata, **KEYS)
    messages = [r.getMessage() for r in caplog.records]
    assert [m for m in messages if m.startswith("too few cells to call states") and "'cd8_t'" in m]
    assert not [m for m in messages if m.startswith("cd8_t:") and "the calls are the mixture's" in m]
    assert "cd8_t" not in adata.uns["hcctme_state_params"]["self_train"]["small_populations"]
