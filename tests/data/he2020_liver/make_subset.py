"""Step 2 of 2: build he2020_liver.h5ad from the export written by make_subset.R.

Usage: python make_subset.py EXPORT_DIR
Source: the whole liver sample (2,839 cells x 17,640 genes, raw UMI counts) of He et al. 2020 as shipped in
CuratedAtlasQueryR's ``sample_sce_obj``, with the authors' labels: ``tissue_type`` (Cell_type_in_each_tissue,
the " Liver" suffix dropped), ``merged_type`` (Cell_type_in_merged_data), ``broad`` and ``fine``
(reclustered.broad / reclustered.fine, the authors' per-lineage reclustering).

``cell_type`` (used for validation) = ``tissue_type``, except that the authors' three mononuclear-phagocyte
clusters (Macrophage C1QB_high, Macrophage LST1_high, Monocyte) are resolved by the authors' fine myeloid
clusters: Mac_SDC3, Mac_SPP1, Mac_other (Mac_APOE, Mac_FTL, Mac_RNASE1, Mac_SPARCL1), Classical_Mon (AQP9,
HCAR3, S100A12, S100A8), Intermediate_Mon_FN1, Non_Classical_Mon_FCGR3A, cDC2, and "Myeloid (not reclustered)"
for the few cells the authors left out of the myeloid reclustering.

Subset: at most ``CAP`` cells per ``cell_type`` (a seeded random draw, every cell of smaller types), then the
genes detected in at least one kept cell. Values are the raw UMI counts as distributed.
"""

import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
from scipy import io, sparse

CAP = 44
SEED = 2020
MYELOID = {"Macrophage C1QB_high", "Macrophage LST1_high", "Monocyte"}


def cell_type(tissue: str, fine: object) -> str:
    """Return the authors' tissue-level label, with their myeloid clusters resolved by their fine clusters."""
    if tissue not in MYELOID:
        return tissue
    if not isinstance(fine, str):
        return "Myeloid (not reclustered)"
    if fine.startswith("Classical_Mon"):
        return "Classical_Mon"
    if fine == "Non_Classicial_Mon_FCGR3A":  # the authors' spelling
        return "Non_Classical_Mon_FCGR3A"
    if fine.startswith("Mac_") and fine not in ("Mac_SDC3", "Mac_SPP1"):
        return "Mac_other"
    return fine


src = Path(sys.argv[1])
matrix = io.mmread(src / "matrix.mtx").tocsc()
genes = (src / "genes.txt").read_text().split("\n")[: matrix.shape[0]]
meta = pd.read_csv(src / "obs.csv", index_col=0)
tissue = meta["Cell_type_in_each_tissue"].str.removesuffix(" Liver")
labels = pd.Series([cell_type(t, f) for t, f in zip(tissue, meta["reclustered.fine"], strict=True)],
                   index=meta.index)

rng = np.random.default_rng(SEED)
keep = np.zeros(len(labels), dtype=bool)
for lab in sorted(labels.unique()):
    idx = np.flatnonzero(labels.to_numpy() == lab)
    keep[idx if idx.size <= CAP else rng.choice(idx, CAP, replace=False)] = True

X = sparse.csr_matrix(matrix.T.astype(np.float32))[keep]
detected = np.asarray((X > 0).sum(axis=0)).ravel() > 0
obs = pd.DataFrame({
    "cell_type": pd.Categorical(labels[keep]),
    "tissue_type": pd.Categorical(tissue[keep]),
    "merged_type": pd.Categorical(meta.loc[keep, "Cell_type_in_merged_data"]),
    "broad": pd.Categorical(meta.loc[keep, "reclustered.broad"]),
    "fine": pd.Categorical(meta.loc[keep, "reclustered.fine"]),
    "n_counts": meta.loc[keep, "nCount_RNA"].to_numpy(),
}, index=meta.index[keep].astype(str))
adata = ad.AnnData(X=X[:, detected], obs=obs, var=pd.DataFrame(index=np.asarray(genes)[detected]))
adata.uns["values"] = "raw UMI counts (10x Chromium 3'), as distributed"
adata.write_h5ad(Path(__file__).with_name("he2020_liver.h5ad"), compression="gzip")
print(adata)
print(adata.obs["cell_type"].value_counts().to_string())
