"""hcctme.tl.score: exactness against pyucell / scanpy / decoupler, input kinds, invariance, errors."""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata import AnnData

import hcctme
from hcctme.tl._score import ScoringWarning

N_CELLS, N_GENES = 300, 2000


# --------------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------------
def _genes(n: int = N_GENES) -> np.ndarray:
    return np.array([f"G{i}" for i in range(n)])


def _ties_counts(seed: int = 0, n: int = N_CELLS, g: int = N_GENES, density: float = 0.15) -> sp.csr_matrix:
    """Random sparse small integers: many ties among nonzeros, rows of varied depth."""
    rng = np.random.default_rng(seed)
    X = sp.random(n, g, density=density, format="csr", random_state=seed,
                  data_rvs=lambda k: rng.integers(1, 6, k)).astype(np.float32)
    X = sp.diags(rng.uniform(0.3, 1.0, n).round(1)) @ X  # varied depth (still tied values)
    X = sp.csr_matrix(X, dtype=np.float32)
    X.eliminate_zeros()
    return X


def _real_like(seed: int = 1, n: int = N_CELLS, g: int = N_GENES) -> sp.csr_matrix:
    """Negative-binomial counts with gene-specific means, normalised to 1e4 and log1p'd."""
    rng = np.random.default_rng(seed)
    mu = np.exp(rng.normal(-1.5, 1.5, g))
    lib = rng.lognormal(0, 0.4, n)[:, None]
    lam = rng.gamma(2.0, (mu * lib) / 2.0)
    counts = rng.poisson(lam).astype(np.float32)
    counts[:, :5] = 0  # a few genes never detected
    norm = counts / np.maximum(counts.sum(1, keepdims=True), 1) * 1e4
    return sp.csr_matrix(np.log1p(norm).astype(np.float32))


def _adata(X, genes=None) -> AnnData:
    genes = _genes(X.shape[1]) if genes is None else genes
    obs = pd.DataFrame({"group": np.tile(["a", "b", "c"], X.shape[0] // 3 + 1)[: X.shape[0]]},
                       index=[f"cell{i}" for i in range(X.shape[0])])
    return AnnData(X, obs=obs, var=pd.DataFrame(index=genes))


def _signatures(seed: int = 3, genes=None) -> dict:
    """Unsigned, signed, with absent genes; shared genes between signatures."""
    rng = np.random.default_rng(seed)
    genes = _genes() if genes is None else genes
    sigs = {f"S{i}": list(rng.choice(genes[:600], 20, replace=False)) for i in range(4)}
    sigs["S_missing"] = [*list(rng.choice(genes, 12, replace=False)), "NOT_A_GENE1", "NOT_A_GENE2"]
    sigs["S_signed"] = {"up": list(rng.choice(genes, 10, replace=False)),
                        "down": [*list(rng.choice(genes, 6, replace=False)), "NOT_A_GENE3"]}
    sigs["S_small"] = list(genes[[1, 5, 9]])
    return sigs


def _pyucell_form(sigs: dict) -> dict:
    out = {}
    for k, v in sigs.items():
        if isinstance(v, dict):
            out[k] = [f"{g}+" for g in v["up"]] + [f"{g}-" for g in v["down"]]
        else:
            out[k] = list(v)
    return out


def _pyucell(adata: AnnData, sigs: dict, max_rank: int) -> pd.DataFrame:
    pyucell = pytest.importorskip("pyucell")
    tmp = AnnData(adata.X.copy(), obs=pd.DataFrame(index=adata.obs_names), var=pd.DataFrame(index=adata.var_names))
    pyucell.compute_ucell_scores(tmp, _pyucell_form(sigs), max_rank=max_rank, n_jobs=1, suffix="")
    return tmp.obs[list(sigs)]


def _scores(adata, sigs, **kw) -> pd.DataFrame:
    kw.setdefault("min_coverage", 0.5)
    out = hcctme.tl.score(adata, sigs, copy=True, **kw) if not adata.isbacked else None
    if out is None:
        hcctme.tl.score(adata, sigs, **kw)
        return adata.obsm[kw.get("key_added", "hcctme_scores")]
    return out.obsm[kw.get("key_added", "hcctme_scores")]


# --------------------------------------------------------------------------------------------------
# UCell == pyucell
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("max_rank", [20, 40, 300, 1500, 5000])
def test_ucell_equals_pyucell_random_sparse_with_ties(max_rank):
    adata = _adata(_ties_counts())
    sigs = _signatures()
    ours = _scores(adata, sigs, max_rank=max_rank)
    ref = _pyucell(adata, sigs, max_rank)
    assert list(ours.columns) == list(sigs)
    assert ours.dtypes.unique().tolist() == [np.float32]
    np.testing.assert_allclose(ours.to_numpy(), ref.to_numpy(), atol=1e-5, rtol=0)
    if max_rank >= 40:
        assert ours["S_signed"].max() > 0 and ours["S0"].std() > 0


@pytest.mark.parametrize("max_rank", [50, 1500])
def test_ucell_equals_pyucell_real_like(max_rank):
    adata = _adata(_real_like())
    sigs = _signatures(seed=5)
    np.testing.assert_allclose(_scores(adata, sigs, max_rank=max_rank).to_numpy(),
                               _pyucell(adata, sigs, max_rank).to_numpy(), atol=1e-5, rtol=0)


def test_ucell_equals_pyucell_dense_float64_and_tied_group_at_max_rank():
    # every row: 10 genes at 3.0, then a tie of 20 genes at 1.0 straddling max_rank=20
    X = np.zeros((30, 200))
    X[:, :10] = 3.0
    X[:, 10:30] = 1.0
    X[::2, 30:60] = 0.5
    adata = _adata(X)
    sigs = {"A": [f"G{i}" for i in range(5, 15)], "B": [f"G{i}" for i in range(25, 45)],
            "C": {"up": [f"G{i}" for i in range(0, 8)], "down": [f"G{i}" for i in range(8, 14)]}}
    for max_rank in (20, 21, 25):
        np.testing.assert_allclose(_scores(adata, sigs, max_rank=max_rank).to_numpy(),
                                   _pyucell(adata, sigs, max_rank).to_numpy(), atol=1e-5, rtol=0)


@pytest.mark.parametrize("n_genes, max_rank", [(15, 10), (40, 15)])
def test_ucell_refuses_a_signature_longer_than_max_rank(n_genes, max_rank, digest):
    """As R UCell: its U statistic left [0, 1] (up to 1.4) and, past twice max_rank, reversed (pyucell agrees)."""
    adata = _adata(_real_like())
    sigs = {"SHORT": [f"G{i}" for i in range(100, 110)], "LONG": [f"G{i}" for i in range(n_genes)]}
    before = digest(adata)
    with pytest.raises(ValueError, match=rf"max_rank={max_rank} is below the length of signature\(s\) "
                                         rf"'LONG \({n_genes} genes\)'"):
        hcctme.tl.score(adata, sigs, max_rank=max_rank)
    assert digest(adata) == before
    assert _scores(adata, sigs, max_rank=n_genes)["LONG"].between(0, 1).all()
    assert _scores(adata, {"LONG": sigs["LONG"]}, method="mean", max_rank=max_rank)["LONG"].std() > 0


def test_ucell_scaled_data_warns_and_equals_pyucell():
    X = _real_like().toarray()
    X = (X - X.mean(0)) / (X.std(0) + 1e-3)
    adata = _adata(X.astype(np.float32))
    sigs = _signatures(seed=7)
    with pytest.warns(ScoringWarning, match="negative values"):
        ours = _scores(adata, sigs, max_rank=300)
    np.testing.assert_allclose(ours.to_numpy(), _pyucell(adata, sigs, 300).to_numpy(), atol=1e-5, rtol=0)


def test_ucell_empty_rows_and_explicit_zeros():
    X = _ties_counts(seed=2).tolil()
    X[0, :] = 0
    X[3, 7] = 0
    X = X.tocsr()
    X.data[:50] = 0.0  # explicit zeros stored in the CSR structure
    adata = _adata(X)
    sigs = _signatures()
    ours = _scores(adata, sigs, max_rank=200)
    assert (ours.iloc[0] == 0).all()
    np.testing.assert_allclose(ours.to_numpy(), _pyucell(adata, sigs, 200).to_numpy(), atol=1e-5, rtol=0)


# --------------------------------------------------------------------------------------------------
# input kinds, chunking, threads
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def reference():
    adata = _adata(_real_like(seed=11))
    sigs = _signatures(seed=13)
    return adata, sigs, {m: _scores(adata, sigs, method=m) for m in ("ucell", "mean")}


def test_dense_csc_layer_raw_equal_csr(reference):
    adata, sigs, ref = reference
    X = adata.X
    for method in ("ucell", "mean"):
        expected = ref[method].to_numpy()
        np.testing.assert_allclose(_scores(_adata(X.toarray()), sigs, method=method).to_numpy(), expected,
                                   atol=1e-6)
        np.testing.assert_allclose(_scores(_adata(X.tocsc()), sigs, method=method).to_numpy(), expected,
                                   atol=1e-6)
        other = _adata(sp.csr_matrix(X.shape, dtype=np.float32))
        other.layers["lognorm"] = X.copy()
        np.testing.assert_allclose(_scores(other, sigs, method=method, layer="lognorm").to_numpy(), expected,
                                   atol=1e-6)
        raw = _adata(X.copy())
        raw.raw = raw
        small = raw[:, :100].copy()  # raw keeps every gene, X only 100
        np.testing.assert_allclose(_scores(small, sigs, method=method).to_numpy(), expected, atol=1e-6)
        np.testing.assert_allclose(_scores(small, sigs, method=method, use_raw=True).to_numpy(), expected,
                                   atol=1e-6)


def test_backed_h5ad_equals_in_memory(reference, tmp_path):
    adata, sigs, ref = reference
    for fmt, X in (("csr", adata.X), ("dense", adata.X.toarray())):
        path = tmp_path / f"{fmt}.h5ad"
        _adata(X).write_h5ad(path)
        backed = ad.read_h5ad(path, backed="r")
        for method in ("ucell", "mean"):
            hcctme.tl.score(backed, sigs, method=method, chunk_size=64)
            got = backed.obsm["hcctme_scores"]
            assert got.index.equals(adata.obs_names)
            np.testing.assert_allclose(got.to_numpy(), ref[method].to_numpy(), atol=1e-6)
        with pytest.raises(ValueError, match="backed"):
            hcctme.tl.score(backed, sigs, copy=True)
        backed.file.close()


def test_dask_array_equals_in_memory(reference):
    da = pytest.importorskip("dask.array")
    adata, sigs, ref = reference
    for X in (da.from_array(adata.X.toarray(), chunks=(70, 500)),
              da.from_array(adata.X, chunks=(90, -1), asarray=False)):
        dadata = _adata(X)
        for method in ("ucell", "mean"):
            hcctme.tl.score(dadata, sigs, method=method)
            np.testing.assert_allclose(dadata.obsm["hcctme_scores"].to_numpy(), ref[method].to_numpy(),
                                       atol=1e-6)
        hcctme.tl.score(dadata, sigs, chunk_size=41)
        np.testing.assert_allclose(dadata.obsm["hcctme_scores"].to_numpy(), ref["ucell"].to_numpy(), atol=1e-6)


@pytest.mark.slow
def test_dask_distributed_client(reference):
    distributed = pytest.importorskip("distributed")
    da = pytest.importorskip("dask.array")
    adata, sigs, ref = reference
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None):
        dadata = _adata(da.from_array(adata.X, chunks=(100, -1), asarray=False))
        hcctme.tl.score(dadata, sigs)
    np.testing.assert_allclose(dadata.obsm["hcctme_scores"].to_numpy(), ref["ucell"].to_numpy(), atol=1e-6)


@pytest.mark.parametrize("method", ["ucell", "mean", "aucell", "ulm"])
def test_chunk_size_and_n_jobs_invariance(reference, method):
    adata, sigs, _ = reference
    base = _scores(adata, sigs, method=method).to_numpy()
    settings = ((1, 1), (7, 2), (64, -1), (10_000, 2)) if method in ("ucell", "mean") else ((64, 2), (299, 1))
    for chunk_size, n_jobs in settings:
        got = _scores(adata, sigs, method=method, chunk_size=chunk_size, n_jobs=n_jobs).to_numpy()
        np.testing.assert_allclose(got, base, atol=1e-6, rtol=0)
    if method == "ucell":  # independent cells: bit-identical
        assert np.array_equal(_scores(adata, sigs, chunk_size=13, n_jobs=2).to_numpy(), base)


def test_progress_bar_setting_does_not_change_scores(reference):
    adata, sigs, ref = reference
    before = hcctme.settings.progress
    try:
        for progress in (True, False):
            hcctme.settings.progress = progress
            got = _scores(adata, sigs, chunk_size=50)
            np.testing.assert_array_equal(got.to_numpy(), ref["ucell"].to_numpy())
    finally:
        hcctme.settings.progress = before


# --------------------------------------------------------------------------------------------------
# mean == scanpy score_genes; decoupler delegation
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dense", [False, True])
@pytest.mark.parametrize("seed", [0, 42])
def test_mean_equals_scanpy_score_genes(dense, seed):
    sc = pytest.importorskip("scanpy")
    X = _real_like(seed=3)
    adata = _adata(X.toarray() if dense else X)
    sigs = {k: v for k, v in _signatures(seed=17).items() if not isinstance(v, dict)}
    ours = _scores(adata, sigs, method="mean", random_state=seed)
    for name, genes in sigs.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sc.tl.score_genes(adata, genes, score_name=name, random_state=seed)
        np.testing.assert_allclose(ours[name].to_numpy(), adata.obs[name].to_numpy(), atol=1e-6, rtol=0)
    assert not np.array_equal(
        ours.to_numpy(), _scores(adata, sigs, method="mean", random_state=seed + 1).to_numpy())


def test_mean_is_deterministic_and_leaves_global_rng_alone():
    adata = _adata(_real_like(seed=4))
    sigs = _signatures(seed=19)
    np.random.seed(123)
    expected_next = np.random.random()
    np.random.seed(123)
    a = _scores(adata, sigs, method="mean", random_state=7)
    assert np.random.random() == expected_next
    b = _scores(adata, sigs, method="mean", random_state=7)
    np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())


def test_mean_signed_is_up_minus_down():
    sc = pytest.importorskip("scanpy")
    adata = _adata(_real_like(seed=8))
    up, down = [f"G{i}" for i in range(10, 30)], [f"G{i}" for i in range(200, 215)]
    ours = _scores(adata, {"X": {"up": up, "down": down}}, method="mean")
    sc.tl.score_genes(adata, up, score_name="up", random_state=0)
    sc.tl.score_genes(adata, down, score_name="down", random_state=0)
    np.testing.assert_allclose(ours["X"].to_numpy(), (adata.obs["up"] - adata.obs["down"]).to_numpy(), atol=1e-6)


@pytest.mark.parametrize("method", ["aucell", "ulm"])
def test_decoupler_methods_equal_decoupler_on_whole_matrix(method):
    dc = pytest.importorskip("decoupler")
    adata = _adata(_real_like(seed=9))
    sigs = {k: v for k, v in _signatures(seed=21).items() if not isinstance(v, dict)}
    ours = _scores(adata, sigs, method=method, chunk_size=77)
    net = pd.DataFrame([(k, g, 1.0) for k, v in sigs.items() for g in v if g in adata.var_names],
                       columns=["source", "target", "weight"])
    tmp = adata[:, np.argsort(adata.var_names.to_numpy(dtype=str))].copy()  # AUCell's ties: by gene name
    getattr(dc.mt, method)(tmp, net, tmin=3, empty=False)
    ref = tmp.obsm[f"score_{method}"][list(sigs)]
    np.testing.assert_allclose(ours.to_numpy(), ref.to_numpy(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("method", ["aucell", "ulm"])
def test_decoupler_methods_read_signed_integers_as_their_values(method):
    """np.ptp wrapped around in int8 (127 - -128 = -1): a varying cell was read as constant and scored 0."""
    rng = np.random.default_rng(0)
    X = rng.integers(-20, 20, (30, 60)).astype(np.int8)
    X[0, :2] = [127, -128]
    sigs = {"S": [f"G{i}" for i in range(10)], "T": [f"G{i}" for i in range(20, 32)]}
    as_int = _scores(_adata(X), sigs, method=method)
    as_float = _scores(_adata(X.astype(np.float32)), sigs, method=method)
    np.testing.assert_array_equal(as_int.to_numpy(), as_float.to_numpy())


@pytest.mark.parametrize("method", ["aucell", "ulm"])
def test_decoupler_methods_are_free_of_gene_order_and_score_an_empty_cell_0(method):
    """decoupler's AUCell ranks tied values (every zero) by column position: on pbmc68k_reduced's .raw, a gene
    permutation moved 691 of 700 cells' AUCell scores by up to 0.056, and an all-zero cell scored up to 0.072."""
    X = _real_like(seed=9).toarray()
    X[0] = 0
    adata = _adata(sp.csr_matrix(X))
    sigs = {k: v for k, v in _signatures(seed=21).items() if not isinstance(v, dict)}
    ours = _scores(adata, sigs, method=method, chunk_size=77).to_numpy()
    shuffled = adata[:, np.random.default_rng(3).permutation(adata.n_vars)].copy()
    np.testing.assert_array_equal(_scores(shuffled, sigs, method=method, chunk_size=77).to_numpy(), ours)
    assert np.all(ours[0] == 0)


def test_ulm_uses_signed_weights_and_aucell_scores_up_genes():
    adata = _adata(_real_like(seed=10))
    sigs = {"X": {"up": [f"G{i}" for i in range(20)], "down": [f"G{i}" for i in range(40, 60)]}}
    ulm = _scores(adata, sigs, method="ulm")
    flipped = _scores(adata, {"X": {"up": sigs["X"]["down"], "down": sigs["X"]["up"]}}, method="ulm")
    np.testing.assert_allclose(ulm.to_numpy(), -flipped.to_numpy(), atol=1e-5)
    aucell = hcctme.tl.score(adata, sigs, method="aucell", copy=True)
    assert aucell.uns["hcctme_scores_params"]["genes_used"]["X"] == sigs["X"]["up"]


# --------------------------------------------------------------------------------------------------
# results, coverage, gene names
# --------------------------------------------------------------------------------------------------
def test_results_layout_and_h5ad_round_trip(tmp_path):
    adata = _adata(_real_like())
    sigs = _signatures()
    assert hcctme.tl.score(adata, sigs, key_added="my_scores") is None
    frame = adata.obsm["my_scores"]
    assert isinstance(frame, pd.DataFrame) and frame.index.equals(adata.obs_names)
    assert (frame.dtypes == np.float32).all()
    assert ((frame >= 0) & (frame <= 1)).all().all()
    info = adata.uns["my_scores_params"]
    assert info["method"] == "ucell" and info["params"]["max_rank"] == 1500
    assert info["coverage"]["S_missing"] == pytest.approx(12 / 14)
    assert info["coverage"]["S0"] == 1.0
    assert set(info["genes_used"]) == set(sigs)
    assert "NOT_A_GENE1" not in info["genes_used"]["S_missing"]
    assert info["genes_down_used"]["S_signed"] == sigs["S_signed"]["down"][:6]
    assert isinstance(info["library_version"], str)
    adata.write_h5ad(tmp_path / "scored.h5ad")
    back = ad.read_h5ad(tmp_path / "scored.h5ad")
    np.testing.assert_array_equal(back.obsm["my_scores"].to_numpy(), frame.to_numpy())
    assert back.uns["my_scores_params"]["method"] == "ucell"


def test_low_coverage_signatures_left_out_with_one_warning():
    adata = _adata(_real_like())
    sigs = {"GOOD": [f"G{i}" for i in range(10)],
            "HALF_MISSING": [f"G{i}" for i in range(3)] + [f"NOPE{i}" for i in range(7)],
            "TWO_GENES": ["G1", "G2"],
            "ABSENT": ["NOPE1", "NOPE2", "NOPE3"]}
    with pytest.warns(ScoringWarning) as record:
        out = hcctme.tl.score(adata, sigs, copy=True)
    texts = [str(r.message) for r in record if issubclass(r.category, ScoringWarning)]
    assert len(texts) == 1
    for sid in ("HALF_MISSING", "TWO_GENES", "ABSENT"):
        assert sid in texts[0]
    assert list(out.obsm["hcctme_scores"].columns) == ["GOOD"]
    assert out.uns["hcctme_scores_params"]["dropped"] == ["HALF_MISSING", "TWO_GENES", "ABSENT"]
    # min_coverage lowers the bar, never below MIN_GENES genes found
    with pytest.warns(ScoringWarning, match="TWO_GENES"):
        out = hcctme.tl.score(adata, sigs, min_coverage=0.2, copy=True)
    assert list(out.obsm["hcctme_scores"].columns) == ["GOOD", "HALF_MISSING"]


def test_a_set_of_fewer_than_three_genes_is_not_sent_to_min_coverage(caplog):
    """Sweep 55: TAM3_MT1G (2 of 2 genes measured) was listed under 'lower min_coverage to score them anyway' in
    every run (six times in tutorial 05), a fix that cannot work; a user's 2-gene set the same."""
    adata = hcctme.datasets.simulate_cohort(4, 50, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ScoringWarning)
        with caplog.at_level("INFO", logger="hcctme"):
            hcctme.tl.score(adata, ["TAM3_MT1G", "TAM2_SPP1"], min_coverage=0.0)
    assert list(hcctme.get.scores(adata).columns) == ["TAM2_SPP1"]
    assert "never scored: TAM3_MT1G (2 genes)" in caplog.text
    with pytest.warns(ScoringWarning) as record:
        hcctme.tl.score(adata, {"PAIR": ["CD8A", "CD8B"], "CD8": ["CD8A", "CD8B", "CD3E"]}, min_coverage=0.0)
    text = " ".join(str(r.message) for r in record)
    assert "your gene set(s) PAIR (2 genes) have fewer than 3 genes in all" in text and "min_coverage (" not in text
    with pytest.warns(ScoringWarning) as record:  # 2 of 3 genes measured (67 %): the floor, not the coverage
        hcctme.tl.score(adata, {"MOST": ["CD8A", "CD8B", "NOT_A_GENE"], "CD8": ["CD8A", "CD8B", "CD3E"]})
    text = " ".join(str(r.message) for r in record)
    assert "MOST (2/3 genes found, fewer than 3)" in text and "Lower min_coverage" not in text
    with pytest.raises(hcctme.tl.TooFewGenesError, match="no min_coverage scores them"):
        hcctme.tl.score(adata, {"MOST": ["CD8A", "CD8B", "NOT_A_GENE"]}, min_coverage=0.0)
    # the set is short, not the data: the error said the data's names measure too few genes (sweep 62)
    with pytest.raises(hcctme.tl.TooFewGenesError, match=r"^your gene set\(s\) PAIR \(2 genes\) have fewer than 3"):
        hcctme.tl.score(adata, {"PAIR": ["CD8A", "CD8B"]})


def test_the_users_unscorable_gene_sets_are_named_first_in_the_warning_and_the_report():
    """Behind more than 30 library signatures left out, a user's set was cut from the warning ("... (40 in all)")
    and the report said nothing."""
    from hcctme.report._build import _dropped_note

    adata = hcctme.datasets.simulate_cohort(4, 50, n_genes=600, random_state=0)
    sigs = hcctme.sig.library() + hcctme.sig.load({"MY_OWN_SET": ["NOPE1", "NOPE2", "NOPE3", "CD8A"]})
    with pytest.warns(ScoringWarning) as record:
        hcctme.tl.score(adata, sigs)
    text = next(str(r.message) for r in record if issubclass(r.category, ScoringWarning))
    # 1 of its 4 genes: below the 3-gene floor, named first among those no min_coverage scores (sweep 55: it was
    # sent to min_coverage with the others)
    assert "found: your gene set(s) MY_OWN_SET (1/4 genes found, fewer than 3)" in text
    dropped = adata.uns["hcctme_scores_params"]["dropped"]
    assert "MY_OWN_SET" in dropped and len(dropped) > 31
    note = _dropped_note(adata.uns["hcctme_scores_params"])
    assert "lists shorter than the 3-gene scoring minimum: 1 of the library: TAM3_MT1G." in note  # sweep 61
    assert f"too few of their genes in the data: your gene set(s) MY_OWN_SET; {len(dropped) - 2} of the library: " \
        in note


def test_a_panel_of_human_symbols_too_small_for_any_signature_is_too_few_genes():
    """The hint fits the names: human symbols measure too few genes (Zheng 2017's 533), no advice to harmonise."""
    panel = ["CD8A", "CD3E", "PTPRC", "GZMB", "MKI67", "ACTB", "GAPDH", "CD4"]
    adata = AnnData(np.ones((5, len(panel)), dtype=np.float32), var=pd.DataFrame(index=panel))
    with pytest.raises(hcctme.tl.TooFewGenesError, match="8 gene names are human symbols: they measure too few"):
        hcctme.tl.score(adata, ["TAM2_SPP1", "CD8_TEX_TERMINAL"])
    ensembl = AnnData(np.ones((5, 3), dtype=np.float32),
                      var=pd.DataFrame(index=["ENSG00000153563", "ENSG00000167286", "ENSG00000081237"]))
    with pytest.raises(ValueError, match=r"run hcctme\.pp\.harmonize_genes"):
        hcctme.tl.score(ensembl, ["TAM2_SPP1"])


def test_harmonised_symbols_are_used():
    X = _real_like()
    adata = _adata(X, genes=np.array([f"ENSG{i:011d}" for i in range(N_GENES)]))
    symbols = pd.Series(_genes(), index=adata.var_names, dtype=object)
    symbols.iloc[::50] = np.nan  # unmapped: keep the original name
    adata.var["hcctme_symbol"] = symbols
    sigs = {"A": [f"G{i}" for i in range(1, 30)]}
    out = hcctme.tl.score(adata, {**sigs, "B": ["G50", "G100", "G150", "G1", "G2", "G3"]}, min_coverage=0.5,
                          copy=True)
    ours = out.obsm["hcctme_scores"]
    np.testing.assert_array_equal(ours["A"].to_numpy(), _scores(_adata(X), sigs)["A"].to_numpy())
    # G50, G100, G150 are unmapped (NaN symbol): they keep their Ensembl names and are not found
    assert out.uns["hcctme_scores_params"]["coverage"]["B"] == 0.5
    assert out.uns["hcctme_scores_params"]["genes_used"]["B"] == ["G1", "G2", "G3"]


@pytest.mark.skipif(not list(hcctme.sig.library_dir().glob("*.yaml")), reason="library not built yet")
def test_whole_library_scores_on_symbols():
    lib = hcctme.sig.library()
    genes = np.array(lib.genes()[:1500] + [f"FILLER{i}" for i in range(500)])
    adata = _adata(_real_like(g=len(genes)), genes=genes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ScoringWarning)
        hcctme.tl.score(adata)
    info = adata.uns["hcctme_scores_params"]
    assert info["library_version"] == lib.library_version
    assert adata.obsm["hcctme_scores"].shape[1] == len(lib) - len(info["dropped"]) > 0


# --------------------------------------------------------------------------------------------------
# bad input: clear errors, AnnData untouched
# --------------------------------------------------------------------------------------------------
def _small():
    adata = _adata(_real_like(n=60, g=300))
    adata.uns["keep"] = {"a": 1}
    return adata, {"A": [f"G{i}" for i in range(10)]}


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("method", ["ucell", "mean", "aucell"])
@pytest.mark.parametrize("dense", [False, True])
def test_nonfinite_values_raise_and_leave_input_untouched(value, method, dense, digest):
    adata, sigs = _small()
    X = adata.X.toarray() if dense else adata.X.copy()
    if dense:
        X[40, 3] = value
    else:
        X.data[-5] = value
    adata.X = X
    before = digest(adata)
    with pytest.raises(ValueError, match="NaN or infinite"):
        hcctme.tl.score(adata, sigs, method=method, chunk_size=16)
    assert digest(adata) == before


def test_errors_name_the_problem(digest):
    adata, sigs = _small()
    before = digest(adata)
    cases = [
        (dict(method="gsva"), ValueError, "method"),
        (dict(layer="counts"), KeyError, "counts"),
        (dict(layer=3), TypeError, "layer"),
        (dict(max_rank=0), ValueError, "max_rank"),
        (dict(max_rank=1.5), TypeError, "max_rank"),
        (dict(max_rank=True), TypeError, "max_rank"),
        (dict(chunk_size=0), ValueError, "chunk_size"),
        (dict(chunk_size="100"), TypeError, "chunk_size"),
        (dict(n_jobs=0), ValueError, "n_jobs"),
        (dict(n_jobs=2.0), TypeError, "n_jobs"),
        (dict(min_coverage=1.5), ValueError, "min_coverage"),
        (dict(min_coverage="high"), TypeError, "min_coverage"),
        (dict(random_state="seed"), TypeError, "random_state"),
        (dict(key_added=""), TypeError, "key_added"),
        (dict(copy="yes"), TypeError, "copy"),
        (dict(use_raw=True), ValueError, "raw"),
        (dict(use_raw="yes"), TypeError, "use_raw"),
    ]
    for kwargs, error, text in cases:
        with pytest.raises(error, match=text):
            hcctme.tl.score(adata, sigs, **kwargs)
    with pytest.raises(ValueError, match="harmonize_genes"):
        hcctme.tl.score(adata, {"A": ["ENSG1", "ENSG2", "ENSG3"], "B": ["Cd8a", "Gzmb", "Prf1"]})
    with pytest.raises(TypeError, match="AnnData"):
        hcctme.tl.score(adata.X, sigs)
    with pytest.raises(TypeError):
        hcctme.tl.score(adata, 42)
    assert digest(adata) == before


def test_empty_anndata_raises():
    sigs = {"A": ["G1", "G2", "G3"]}
    for shape in ((0, 10), (10, 0)):
        adata = _adata(sp.csr_matrix(shape, dtype=np.float32))
        with pytest.raises(ValueError, match="empty"):
            hcctme.tl.score(adata, sigs)


def test_duplicated_gene_names_are_refused(digest):
    adata, sigs = _small()
    names = adata.var_names.to_numpy().copy()
    names[100] = "G3"  # G3 now names two columns
    names[200] = "G250"  # a duplicate no signature uses is refused too (the AnnData is ill-formed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adata.var_names = names
    before = digest(adata)
    with pytest.raises(ValueError, match=r"2 gene name\(s\) are duplicated \('G3', 'G250'\).*var_names_make_unique"):
        hcctme.tl.score(adata, sigs)
    with pytest.raises(ValueError, match=r"'G250'.*var_names_make_unique"):
        hcctme.tl.score(adata, {"B": ["G10", "G11", "G12", "G13"]}, method="aucell")
    assert digest(adata) == before


def test_bool_and_integer_matrices():
    adata, sigs = _small()
    counts = sp.csr_matrix(np.rint(adata.X.toarray() * 3).astype(np.int64))
    as_float = _scores(_adata(counts.astype(np.float64)), sigs).to_numpy()
    np.testing.assert_allclose(_scores(_adata(counts), sigs).to_numpy(), as_float, atol=1e-7)
    np.testing.assert_allclose(_scores(_adata(counts.astype(np.int32).toarray()), sigs).to_numpy(), as_float,
                               atol=1e-7)
    with pytest.raises(TypeError, match="dtype"):
        hcctme.tl.score(_adata(counts.toarray() > 0), sigs)


def test_copy_returns_scored_copy_and_leaves_original(digest):
    adata, sigs = _small()
    before = digest(adata)
    out = hcctme.tl.score(adata, sigs, copy=True)
    assert digest(adata) == before
    assert "hcctme_scores" in out.obsm and out is not adata


def test_other_matrix_layouts_equal_csr(reference):
    adata, sigs, ref = reference
    X = adata.X
    expected = ref["ucell"].to_numpy()
    # non-canonical CSR: unsorted indices, and in 10 rows one entry split into two duplicates
    rng = np.random.default_rng(0)
    indptr, indices, data = [0], [], []
    for i in range(X.shape[0]):
        cols = X.indices[X.indptr[i]:X.indptr[i + 1]].copy()
        vals = X.data[X.indptr[i]:X.indptr[i + 1]].copy()
        order = rng.permutation(cols.size)
        cols, vals = cols[order], vals[order]
        if i < 10 and cols.size:
            vals[0] /= 2
            cols, vals = np.append(cols, cols[0]), np.append(vals, vals[0])
        indices.append(cols)
        data.append(vals)
        indptr.append(indptr[-1] + cols.size)
    messy = sp.csr_matrix((np.concatenate(data), np.concatenate(indices), np.array(indptr)), shape=X.shape)
    assert not messy.has_canonical_format
    for other in (messy, sp.csr_array(X), np.asfortranarray(X.toarray()), X.tocoo().tocsr().astype(np.float64)):
        for method in ("ucell", "mean"):
            got = _scores(_adata(other), sigs, method=method, chunk_size=97).to_numpy()
            np.testing.assert_allclose(got, ref[method].to_numpy(), atol=1e-6)
    assert np.abs(_scores(_adata(messy), sigs).to_numpy() - expected).max() < 1e-6


def test_dask_sparse_column_chunks_and_nonfinite():
    da = pytest.importorskip("dask.array")
    X = _real_like(seed=12, n=120, g=400)
    sigs = {"A": [f"G{i}" for i in range(20)], "B": [f"G{i}" for i in range(100, 130)]}
    expected = _scores(_adata(X), sigs).to_numpy()
    dadata = _adata(da.from_array(X, chunks=(50, 150), asarray=False))
    hcctme.tl.score(dadata, sigs)
    np.testing.assert_allclose(dadata.obsm["hcctme_scores"].to_numpy(), expected, atol=1e-6)
    bad = X.toarray()
    bad[77, 3] = np.nan
    dbad = _adata(da.from_array(bad, chunks=(50, 400)))
    with pytest.raises(ValueError, match="NaN or infinite"):
        hcctme.tl.score(dbad, sigs)
    assert "hcctme_scores" not in dbad.obsm


def test_float16_mean_and_an_empty_cell_under_ulm():
    """Sweep 54: method='mean' crashed inside scipy on dense float16; ULM failed in decoupler's p-value correction
    ('`ps` must be within [0, 1]') on a cell with no counts, which now scores 0 as under UCell."""
    adata = AnnData(_real_like().toarray().astype(np.float16), var=pd.DataFrame(index=_genes()))
    sets = {"A": list(_genes()[:40]), "B": list(_genes()[40:80])}
    hcctme.tl.score(adata, sets, method="mean")
    assert np.isfinite(hcctme.get.scores(adata).to_numpy()).all()
    counts = _ties_counts().tolil()
    counts[3, :] = 0
    empty = AnnData(sp.csr_matrix(counts), var=pd.DataFrame(index=_genes()))
    empty.X.eliminate_zeros()
    hcctme.tl.score(empty, sets, method="ulm")
    scores = hcctme.get.scores(empty).to_numpy()
    assert (scores[3] == 0).all() and np.isfinite(scores).all()
    full = AnnData(sp.csr_matrix(_ties_counts()), var=pd.DataFrame(index=_genes()))
    hcctme.tl.score(full, sets, method="ulm")  # the other cells score as without the empty one
    keep = np.arange(N_CELLS) != 3
    assert np.allclose(scores[keep], hcctme.get.scores(full).to_numpy()[keep], atol=1e-5)


def test_a_set_without_enough_genes_up_is_named_for_that():
    adata = AnnData(_ties_counts(), var=pd.DataFrame(index=_genes()))
    genes = list(_genes())
    with pytest.warns(ScoringWarning, match=r"signed \(2 of its 2 genes_up found: aucell reads genes_up only\)"):
        hcctme.tl.score(adata, {"signed": {"up": genes[:2], "down": genes[5:10]}, "ok": genes[:5]}, method="aucell")


@pytest.mark.parametrize("method", ["mean", "ulm"])
def test_value_methods_warn_of_raw_counts_and_rank_methods_do_not(method):
    """Sweep 63 (He 2020, counts in X): method="mean" scored raw counts silently, its scores tracking depth
    (r = -0.67 against -0.39 on log1p(CP10k)); the value methods warn now, the rank methods need not."""
    counts = np.random.default_rng(0).poisson(2.0, (60, 40)).astype(np.float32)
    adata = AnnData(counts, var=pd.DataFrame(index=[f"G{i}" for i in range(40)]))
    sets = {"A": [f"G{i}" for i in range(10)]}
    with pytest.warns(ScoringWarning, match=f"holds raw counts: {method} reads expression values as they are"):
        hcctme.tl.score(adata, sets, method=method)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hcctme.tl.score(adata, sets, method="ucell")
        logged = adata.copy()
        logged.X = np.log1p(counts)
        hcctme.tl.score(logged, sets, method=method)
