"""A small seeded ligand-receptor cohort for the crosstalk tests (no signature library needed).

Genes are drawn from LIANA's bundled consensus resource (plus SPP1 and CD44); every patient has
``n_groups`` cell groups of ``cells_per_group`` cells with Poisson counts around group baselines and
patient batch effects; resistors (odd patients) carry a planted SPP1 gain in macrophages and a CD44
gain in fibroblasts unless ``null``. ``.X`` is log1p(normalize_total(1e4)), ``layers["counts"]``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

GROUPS = ("Macrophages", "Fibroblasts", "T cells", "Tumour", "Endothelial", "B cells")


def resource_genes() -> list[str]:
    import liana as li

    res = li.rs.select_resource("consensus")
    return sorted({g for name in pd.concat([res["ligand"], res["receptor"]]).unique() for g in name.split("_")})


def lr_cohort(n_patients: int = 8, cells_per_group: int = 25, *, n_groups: int = 5, n_genes: int = 150,
              fold: float = 3.0, null: bool = False, seed: int = 0) -> AnnData:
    rng = np.random.default_rng(seed)
    genes = list(rng.choice(resource_genes(), n_genes, replace=False))
    for gene in ("SPP1", "CD44"):
        if gene not in genes:
            genes.append(gene)
    groups = GROUPS[:n_groups]
    base = rng.lognormal(-1.0, 1.0, size=(len(groups), len(genes)))
    col = {g: i for i, g in enumerate(genes)}
    base[0, col["SPP1"]] = 2.0
    base[1, col["CD44"]] = 1.5
    blocks, obs = [], []
    for p in range(n_patients):
        response = "resistor" if p % 2 else "responder"
        batch = rng.lognormal(0.0, 0.2, size=len(genes))
        for k, group in enumerate(groups):
            mu = base[k] * batch
            if response == "resistor" and not null:
                mu = mu.copy()
                if k == 0:
                    mu[col["SPP1"]] *= fold
                if k == 1:
                    mu[col["CD44"]] *= fold
            lib = rng.lognormal(0.0, 0.3, size=(cells_per_group, 1))
            blocks.append(rng.poisson(mu[None, :] * lib))
            obs += [(f"p{p}", response, group)] * cells_per_group
    counts = np.vstack(blocks).astype(np.float32)
    obs = pd.DataFrame(obs, columns=["patient", "response", "cell_type"],
                       index=[f"c{i}" for i in range(len(obs))])
    size = counts.sum(axis=1, keepdims=True)
    size[size == 0] = 1.0
    X = np.log1p(counts / size * 1e4).astype(np.float32)
    adata = AnnData(sp.csr_matrix(X), obs=obs, var=pd.DataFrame(index=genes))
    adata.layers["counts"] = sp.csr_matrix(counts)
    return adata
