"""Step 2 of 2: build wu2021_tnbc.h5ad from the export written by make_subset.R.

Usage: python make_subset.py EXPORT_DIR
Source: every cell (1,564) of the triple-negative breast tumour CID4465 of Wu et al. 2021 as shipped in
spacedeconv's ``single_cell_data_2`` (raw UMI counts), with the authors' three annotation levels: ``major``
(celltype_major), ``minor`` (celltype_minor) and ``subset`` (celltype_subset).

``cell_type`` (used for validation) = ``minor``, except that the authors' CAFs (CAFs MSC iCAF-like, CAFs
myCAF-like), macrophages and CD4+ T cells are resolved by their ``subset`` clusters (iCAF-like s1/s2,
Transitioning s3, myCAF-like s4/s5; Myeloid_c1_LAM1_FABP5, Myeloid_c2_LAM2_APOE, Myeloid_c9_Macrophage_2_CXCL10,
Myeloid_c10_Macrophage_1_EGR1; T_cells_c0_CD4+_CCR7, c1_CD4+_IL7R, c2_CD4+_T-regs_FOXP3, c3_CD4+_Tfh_CXCL13).

Subset: every cell; the genes detected in at least one cell. Values are the raw UMI counts as distributed.
"""

import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
from scipy import io, sparse

RESOLVED = {"CAFs MSC iCAF-like", "CAFs myCAF-like", "Macrophage", "T cells CD4+"}


def cell_type(minor: str, subset: str) -> str:
    """Return the authors' minor label, with their CAFs, macrophages and CD4+ T cells resolved by subset."""
    return subset if minor in RESOLVED else minor


src = Path(sys.argv[1])
matrix = io.mmread(src / "matrix.mtx").tocsc()
genes = (src / "genes.txt").read_text().split("\n")[: matrix.shape[0]]
meta = pd.read_csv(src / "obs.csv", index_col=0)
X = sparse.csr_matrix(matrix.T.astype(np.float32))
detected = np.asarray((X > 0).sum(axis=0)).ravel() > 0
obs = pd.DataFrame({
    "cell_type": pd.Categorical([cell_type(a, b) for a, b in zip(meta["celltype_minor"], meta["celltype_subset"],
                                                                  strict=True)]),
    "major": pd.Categorical(meta["celltype_major"]),
    "minor": pd.Categorical(meta["celltype_minor"]),
    "subset": pd.Categorical(meta["celltype_subset"]),
}, index=meta.index.astype(str))
adata = ad.AnnData(X=X[:, detected], obs=obs, var=pd.DataFrame(index=np.asarray(genes)[detected]))
adata.uns["values"] = "raw UMI counts (10x Chromium 3'), as distributed"
adata.write_h5ad(Path(__file__).with_name("wu2021_tnbc.h5ad"), compression="gzip")
print(adata)
print(adata.obs["cell_type"].value_counts().to_string())
