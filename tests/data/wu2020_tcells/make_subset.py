"""Build wu2020_tcells.h5ad from scirpy's test file ``wu2020_200_v0_6.h5ad``.

Usage: python make_subset.py path/to/wu2020_200_v0_6.h5ad
Keeps every cell (200) and gene (3,000) and the counts as they are; keeps the authors' cluster
(``cluster_orig``) and patient/sample/source; drops scirpy's TCR columns.
"""

import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse

src = ad.read_h5ad(sys.argv[1])
obs = pd.DataFrame({
    "cluster": pd.Categorical(src.obs["cluster_orig"].astype(str)),
    "patient": pd.Categorical(src.obs["patient"].astype(str)),
    "sample": pd.Categorical(src.obs["sample"].astype(str)),
    "source": pd.Categorical(src.obs["source"].astype(str)),
}, index=src.obs_names.astype(str))
adata = ad.AnnData(X=sparse.csr_matrix(src.X, dtype=np.float32), obs=obs, var=pd.DataFrame(index=src.var_names))
adata.uns["values"] = "UMI counts (10x Genomics 5')"
adata.write_h5ad(Path(__file__).with_name("wu2020_tcells.h5ad"), compression="gzip")
print(adata)
