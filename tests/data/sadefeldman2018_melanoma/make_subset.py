"""Step 2 of 2: build sadefeldman2018_melanoma.h5ad from the export written by make_subset.R.

Usage: python make_subset.py EXPORT_DIR
Keeps every cell (550) and gene (3,523) of scFeatures' ``example_scrnaseq``: the authors' cluster label
(``cellTypes`` -> ``obs["cluster"]``), patient, response and therapy; values as distributed (``data`` slot).
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
obs = pd.read_csv(src / "obs.csv", index_col=0)
obs = pd.DataFrame({
    "cluster": pd.Categorical(obs["cellTypes"]),
    "patient": pd.Categorical(obs["patient"]),
    "response": pd.Categorical(obs["respond"]),
    "therapy": pd.Categorical(obs["therapy"]),
}, index=obs.index.astype(str))
adata = ad.AnnData(X=sparse.csr_matrix(matrix.T.astype(np.float32)), obs=obs, var=pd.DataFrame(index=genes))
adata.uns["values"] = "as distributed by scFeatures (data slot): a monotone transform of GEO log2(TPM + 1)"
adata.write_h5ad(Path(__file__).with_name("sadefeldman2018_melanoma.h5ad"), compression="gzip")
print(adata)
