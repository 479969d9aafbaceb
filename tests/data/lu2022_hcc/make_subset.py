"""Step 2 of 2: build lu2022_hcc.h5ad from the export written by make_subset.R.

Usage: python make_subset.py EXPORT_DIR
Source: the single-cell example of the gdGSE package, 1,000 cells of the primary tumours of the 10 HCC patients of
Lu et al. 2022 (GSE149614) with the authors' major cell type, and the first 5,000 genes of the authors' count matrix
(raw UMI counts, 10x Chromium 3'). ``cell_type`` is gdGSE's ``CellType`` as distributed; ``patient`` and ``sample``
are read from the authors' cell barcodes (``HCC01T_AAACGGGTCTGACCTC``: patient HCC01, sample HCC01T = its primary
tumour). Subset: none (every cell and gene of the example).
"""

import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
from scipy import io, sparse

src = Path(sys.argv[1])
matrix = io.mmread(src / "matrix.mtx").tocsc()
genes = (src / "genes.txt").read_text().split("\n")[: matrix.shape[0]]
meta = pd.read_csv(src / "obs.csv", index_col=0)
sample = meta.index.str.split("_").str[0]
obs = pd.DataFrame({
    "cell_type": pd.Categorical(meta["cell_type"]),
    "sample": pd.Categorical(sample),
    "patient": pd.Categorical(sample.str.rstrip("T")),
}, index=meta.index.astype(str))
adata = ad.AnnData(X=sparse.csr_matrix(matrix.T.astype(np.float32)), obs=obs, var=pd.DataFrame(index=genes))
adata.uns["values"] = "raw UMI counts (10x Chromium 3'), as distributed"
adata.write_h5ad(Path(__file__).with_name("lu2022_hcc.h5ad"), compression="gzip")
print(adata)
print(adata.obs["cell_type"].value_counts().to_string())
