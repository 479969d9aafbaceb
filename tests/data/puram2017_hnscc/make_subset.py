"""Step 2 of 2: build puram2017_hnscc.h5ad from the text export written by make_subset.R.

Usage: python make_subset.py EXPORT_DIR
Keeps every cell (180) and every gene (7,943) of CHETAH's ``headneck_ref``; stores the values as
they are distributed (log2(TPM/10 + 1), Puram et al. 2017) in a CSR float32 matrix.
"""

import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse

src = Path(sys.argv[1])
expr = pd.read_csv(src / "expr.csv.gz", index_col=0)
obs = pd.read_csv(src / "obs.csv", index_col=0)
if list(expr.columns) != list(obs.index):
    raise ValueError("cells in expr.csv.gz and obs.csv differ")
adata = ad.AnnData(
    X=sparse.csr_matrix(expr.to_numpy(dtype=np.float32).T),
    obs=pd.DataFrame({"cell_type": pd.Categorical(obs["cell_type"])}, index=obs.index),
    var=pd.DataFrame(index=expr.index.astype(str)),
)
adata.uns["values"] = "log2(TPM/10 + 1)"
adata.write_h5ad(Path(__file__).with_name("puram2017_hnscc.h5ad"), compression="gzip")
print(adata)
