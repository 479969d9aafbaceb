"""False-positive rate of score comparisons when the conditions were sequenced to different depths.

Null cohorts of the demo simulator (``simulate_cohort(null=True)``: responders and resistors drawn from one
distribution); the responders' counts are binomially thinned to half (the resistors read 2x deeper, as when the
two arms were sequenced in different runs) and ``X`` is their log1p(CP10k). Six signatures are scored with
``tl.score`` (UCell) on ``X`` and on ``pp.equalize_depth``'s layer, and compared per sample with
``tl.compare(features="scores")`` (Mann-Whitney, the automatic method; wls; moderated). The control cohorts are
the same without the depth difference. Prints each rate at p < 0.05 with its Wilson 95 % interval, and how many
cohorts ``tl.compare`` warned of their depth::

    python benchmarks/compare_depth_null.py --cohorts 60
"""

from __future__ import annotations

import argparse
import logging
import warnings

import numpy as np
import scipy.sparse as sp
from anndata import AnnData

import hcctme

SIGNATURES = ["TA_ABRS", "TA_TEFF", "TA_TREG", "TAM2_SPP1", "CAF_ECM_MYCAF", "TREG"]
METHODS = ("mannwhitney", "wls", "moderated")


def thinned(counts: sp.spmatrix, fraction: np.ndarray, rng: np.random.Generator) -> sp.csr_matrix:
    """Each cell's counts binomially thinned to its ``fraction``."""
    out = sp.csr_matrix(counts, dtype=np.float32, copy=True)
    out.data = rng.binomial(out.data.astype(np.int64), np.repeat(fraction, np.diff(out.indptr))).astype(np.float32)
    out.eliminate_zeros()
    return out


def lognorm(counts: sp.csr_matrix) -> sp.csr_matrix:
    X = counts.copy()
    total = np.asarray(X.sum(axis=1)).ravel()
    X.data *= np.repeat(1e4 / np.maximum(total, 1.0), np.diff(X.indptr)).astype(np.float32)
    np.log1p(X.data, out=X.data)
    return X


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def cohort(seed: int, depth_gap: bool) -> AnnData:
    """A null cohort of 8 patients x 200 cells; with ``depth_gap`` the responders read half as deep."""
    adata = hcctme.datasets.simulate_cohort(8, 200, null=True, n_genes=2000, random_state=2000 + seed)
    responder = (adata.obs["response"] == "responder").to_numpy()
    fraction = np.where(responder, 0.5, 1.0) if depth_gap else np.ones(adata.n_obs)
    adata.layers["counts"] = thinned(adata.layers["counts"], fraction, np.random.default_rng(seed))
    adata.X = lognorm(adata.layers["counts"])
    return adata


def rates(n_cohorts: int) -> None:
    hits: dict[tuple[str, str, str], list[bool]] = {}
    warned = {"depth": 0, "control": 0}
    for seed in range(n_cohorts):
        for case in ("depth", "control"):
            adata = cohort(seed, case == "depth")
            hcctme.pp.equalize_depth(adata, "patient")
            for scored_on, layer in (("X", None), ("equalised", "hcctme_depth_equalized")):
                hcctme.tl.score(adata, SIGNATURES, layer=layer)
                for method in METHODS:
                    with warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter("always")
                        hcctme.tl.compare(adata, condition_key="response", sample_key="patient",
                                          reference="responder", features="scores", method=method)
                    if scored_on == "X" and method == METHODS[0]:
                        warned[case] += any("sequencing depth" in str(w.message) for w in caught)
                    p = hcctme.get.compare(adata)["pvalue"].to_numpy()
                    hits.setdefault((case, scored_on, method), []).extend((p < 0.05).tolist())
    print(f"{n_cohorts} null cohorts per case, {len(SIGNATURES)} signatures each")
    for (case, scored_on, method), h in hits.items():
        k, n = int(np.sum(h)), len(h)
        lo, hi = wilson(k, n)
        print(f"{case:8s} scores on {scored_on:10s} {method:12s} {k:4d}/{n} = {k / n:.3f} (95 % {lo:.3f}-{hi:.3f})")
    print(f"cohorts warned of their depth (scores on X): depth gap {warned['depth']} of {n_cohorts}, "
          f"control {warned['control']} of {n_cohorts}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohorts", type=int, default=60)
    args = parser.parse_args()
    logging.getLogger("hcctme").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    rates(args.cohorts)


if __name__ == "__main__":
    main()
