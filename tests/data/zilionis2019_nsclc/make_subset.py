"""Step 2 of 2: build zilionis2019_nsclc.h5ad from the export written by make_subset.R.

Usage: python make_subset.py EXPORT_DIR
Keeps every cell (300) and gene (20,388) of scGate's ``query.seurat`` with the log-normalised values
(``data`` slot) and the authors' labels: ``major`` (Major.cell.type), ``minor`` (Minor.subset), and
``cell_type`` = ``major`` with the authors' tumour mononuclear-phagocyte compartment (tMoMacDC) split by
their minor subsets into tMacrophages (tMac1-9, tMacCycl), tMonocytes (tMono1-3), tDC2 and tMonoDC, and the
authors' patient-specific (tumour-cell) clusters Patient1-7-specific pooled as "Tumour cells (patient-specific)".
"""

import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
from scipy import io, sparse


def cell_type(major: str, minor: str) -> str:
    """Return the authors' major label, with tMoMacDC resolved by their minor subset and tumour clusters pooled."""
    if major.startswith("Patient") and major.endswith("-specific"):
        return "Tumour cells (patient-specific)"
    if major != "tMoMacDC":
        return major
    if minor.startswith("tMac"):
        return "tMacrophages"
    if minor.startswith("tMono") and minor != "tMonoDC":
        return "tMonocytes"
    return minor  # tDC2, tMonoDC


src = Path(sys.argv[1])
matrix = io.mmread(src / "matrix.mtx").tocsc()
genes = (src / "genes.txt").read_text().split("\n")[: matrix.shape[0]]
meta = pd.read_csv(src / "obs.csv", index_col=0)
obs = pd.DataFrame({
    "cell_type": pd.Categorical([cell_type(a, b) for a, b in zip(meta["Major.cell.type"], meta["Minor.subset"],
                                                                  strict=True)]),
    "major": pd.Categorical(meta["Major.cell.type"]),
    "minor": pd.Categorical(meta["Minor.subset"]),
    "patient": pd.Categorical(meta["Patient"]),
    "tissue": pd.Categorical(meta["Tissue"]),
}, index=meta.index.astype(str))
adata = ad.AnnData(X=sparse.csr_matrix(matrix.T.astype(np.float32)), obs=obs, var=pd.DataFrame(index=genes))
adata.uns["values"] = "log-normalised (Seurat LogNormalize, data slot), inDrop UMI counts"
adata.write_h5ad(Path(__file__).with_name("zilionis2019_nsclc.h5ad"), compression="gzip")
print(adata)
print(adata.obs["cell_type"].value_counts().to_string())
