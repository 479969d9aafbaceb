"""Step 2 of 2: build kang2018_pbmc_ifnb.h5ad from the export written by make_subset.R.

Usage: python make_subset.py EXPORT_DIR
Keeps every cell (1,556) and gene (1,267) of muscat's ``example_sce``: log-normalised values (``logcounts``),
the authors' cell type (``cluster_id`` -> ``obs["cell_type"]``), the condition (``group_id``: ctrl / stim,
6 h interferon-beta) and the sample; ``obs["condition_cell_type"]`` = "<condition>: <cell type>".
Cell names get the sample as prefix (barcodes repeat across samples).
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
meta = pd.read_csv(src / "obs.csv")
obs = pd.DataFrame({
    "cell_type": pd.Categorical(meta["cluster"]),
    "condition": pd.Categorical(meta["group"]),
    "sample": pd.Categorical(meta["sample"]),
    "condition_cell_type": pd.Categorical(meta["group"] + ": " + meta["cluster"]),
}, index=(meta["sample"] + "_" + meta["cell"]).to_numpy())
adata = ad.AnnData(X=sparse.csr_matrix(matrix.T.astype(np.float32)), obs=obs, var=pd.DataFrame(index=genes))
adata.uns["values"] = "log-normalised (scater logNormCounts), 10x Genomics UMI counts"
adata.write_h5ad(Path(__file__).with_name("kang2018_pbmc_ifnb.h5ad"), compression="gzip")
print(adata)
print(adata.obs["condition_cell_type"].value_counts().to_string())
