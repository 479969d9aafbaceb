"""A small seeded cohort for the comparison tests (no signature library needed).

Patients carry: a condition (responder / resistor), a covariate (age), a pair id (pre/on designs),
cells of two cell types ("A" with states s1/s2/s3, "B" all "unassigned"), negative-binomial counts
with patient effects, and two signature-score columns in obsm["hcctme_scores"]. Also the false-positive-rate
check the null-cohort tests share (:func:`fpr_exceedance`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData
from scipy import stats


def fpr_exceedance(pvalues, alpha: float = 0.05) -> tuple[float, float]:
    """The rate at p < ``alpha`` and the one-sided binomial p-value of 'rate > alpha'."""
    pvalues = np.asarray(pvalues, dtype=float)
    k = int((pvalues < alpha).sum())
    return k / len(pvalues), stats.binomtest(k, len(pvalues), alpha, alternative="greater").pvalue


def cohort(
    n_per: int = 4,
    cells: int = 90,
    n_genes: int = 40,
    *,
    seed: int = 0,
    state_shift: float = 0.0,
    gene_fold: float = 1.0,
    score_shift: float = 0.0,
    levels: tuple[str, ...] = ("responder", "resistor"),
) -> AnnData:
    rng = np.random.default_rng(seed)
    n_pat = n_per * len(levels)
    patients = [f"P{i:02d}" for i in range(n_pat)]
    condition = np.repeat(levels, n_per)
    base = rng.gamma(2.0, 2.0, n_genes)
    obs_rows, blocks, scores = [], [], []
    for p, cond in zip(patients, condition, strict=True):
        other = cond != levels[0]
        logits = np.log([0.3, 0.3, 0.4]) + (np.array([state_shift, 0.0, 0.0]) if other else 0.0)
        q = np.exp(logits) / np.exp(logits).sum()
        q = rng.dirichlet(q * 40)
        n_a = int(rng.binomial(cells, 0.6))
        states = rng.choice(["s1", "s2", "s3"], size=n_a, p=q)
        cell_type = np.array(["A"] * n_a + ["B"] * (cells - n_a))
        state = np.concatenate([states, np.full(cells - n_a, "unassigned")])
        mu = base * np.exp(rng.normal(0.0, 0.2, n_genes))
        if other:
            mu = mu.copy()
            mu[:4] *= gene_fold
        lam = mu[None, :] * rng.gamma(4.0, 0.25, (cells, 1))
        blocks.append(rng.poisson(lam))
        obs_rows.append(pd.DataFrame({
            "patient": p, "response": cond, "cell_type": cell_type, "state_true": state,
            "age": float(rng.integers(40, 80)), "pair": f"pair{patients.index(p) % n_per}",
        }))
        offset = rng.normal(0.0, 0.05) + (score_shift if other else 0.0)
        scores.append(pd.DataFrame({
            "SIG_A": rng.normal(0.3 + offset, 0.1, cells),
            "SIG_B": rng.normal(0.5 + rng.normal(0.0, 0.05), 0.1, cells),
        }))
    obs = pd.concat(obs_rows, ignore_index=True)
    obs.index = [f"cell{i}" for i in range(len(obs))]
    for col in ("patient", "response", "cell_type", "state_true"):
        obs[col] = obs[col].astype("category")
    X = sp.csr_matrix(np.vstack(blocks).astype(np.float32))
    adata = AnnData(X=X, obs=obs, var=pd.DataFrame(index=[f"G{i}" for i in range(n_genes)]))
    adata.layers["counts"] = X.copy()
    frame = pd.concat(scores, ignore_index=True)
    frame.index = adata.obs_names
    adata.obsm["hcctme_scores"] = frame
    return adata


def lognorm(adata: AnnData) -> AnnData:
    """The same cohort with log1p(CP10k) in .X (counts stay in layers)."""
    out = adata.copy()
    X = out.layers["counts"].astype(np.float32).toarray()
    X = np.log1p(X / X.sum(axis=1, keepdims=True) * 1e4)
    out.X = sp.csr_matrix(X.astype(np.float32))
    return out


def nuisance_null(
    n_per: int = 6,
    cells: int = 60,
    *,
    cell_ratio: float = 3.0,
    depth_ratio: float = 2.0,
    n_genes: int = 60,
    genes: list[str] | None = None,
    groups: tuple[str, ...] = ("A", "B", "C"),
    seed: int = 0,
) -> AnnData:
    """A null cohort whose arms differ only in nuisance: resistors have ``cell_ratio`` x the cells per
    patient and ``1 / depth_ratio`` x the sequencing depth of responders.

    Both arms draw patients from one distribution: a Dirichlet composition of four states s1-s4
    (s4 rare, so zeros are common in small samples) within cell type A and of the ``groups`` overall;
    negative-binomial-like counts (patient-level log-normal variation, gamma cell size) scaled by
    depth; per-cell scores SIG_A / SIG_B whose mean is the patient's and whose cell-level noise grows
    as depth falls (a depth-robust score measured less precisely in shallow cells). ``.X`` holds
    log1p(CP10k), ``layers["counts"]`` the counts.
    """
    rng = np.random.default_rng(seed)
    n_pat = 2 * n_per
    names = genes if genes is not None else [f"G{i}" for i in range(n_genes)]
    base = rng.gamma(1.5, 1.0, (len(groups), len(names)))
    state_base = np.array([0.45, 0.3, 0.2, 0.05])
    group_base = np.full(len(groups), 1.0 / len(groups))
    obs_rows, blocks, scores = [], [], []
    for i in range(n_pat):
        other = i >= n_per
        cond = "resistor" if other else "responder"
        n_cells = max(int(cells * (cell_ratio if other else 1.0) * rng.lognormal(0.0, 0.2)), 3 * len(groups))
        depth = 1.0 / depth_ratio if other else 1.0
        group = rng.choice(groups, size=n_cells, p=rng.dirichlet(group_base * 30))
        state = np.where(group == groups[0], rng.choice(["s1", "s2", "s3", "s4"], size=n_cells,
                                                        p=rng.dirichlet(state_base * 20)), "unassigned")
        patient_mu = base * rng.lognormal(0.0, 0.25, base.shape)
        g_idx = np.searchsorted(np.asarray(groups), group, sorter=np.argsort(groups))
        g_idx = np.argsort(groups)[g_idx]
        lam = patient_mu[g_idx] * depth * rng.gamma(5.0, 0.2, (n_cells, 1))
        blocks.append(rng.poisson(lam))
        noise = 0.1 * np.sqrt(1.0 / depth)
        effect = rng.normal(0.0, 0.05, 2)
        scores.append(pd.DataFrame({"SIG_A": 0.3 + effect[0] + rng.normal(0.0, noise, n_cells),
                                    "SIG_B": 0.5 + effect[1] + rng.normal(0.0, noise, n_cells)}))
        obs_rows.append(pd.DataFrame({"patient": f"P{i:02d}", "response": cond, "cell_type": group,
                                      "state_true": state, "age": float(rng.integers(40, 80))}))
    obs = pd.concat(obs_rows, ignore_index=True)
    obs.index = [f"cell{i}" for i in range(len(obs))]
    for col in ("patient", "response", "cell_type", "state_true"):
        obs[col] = obs[col].astype("category")
    counts = np.vstack(blocks).astype(np.float32)
    size = counts.sum(axis=1, keepdims=True)
    size[size == 0] = 1.0
    X = sp.csr_matrix(np.log1p(counts / size * 1e4).astype(np.float32))
    adata = AnnData(X=X, obs=obs, var=pd.DataFrame(index=names))
    adata.layers["counts"] = sp.csr_matrix(counts)
    frame = pd.concat(scores, ignore_index=True)
    frame.index = adata.obs_names
    adata.obsm["hcctme_scores"] = frame
    return adata
