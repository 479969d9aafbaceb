"""Step 2 of 2: build villani2017_dc.h5ad from the export written by make_subset.R.

Usage: python make_subset.py EXPORT_DIR
Source: the human blood dendritic cells of Villani et al. 2017 (Smart-seq2, GSE94820) as shipped in SCIBER's
``HumanDC``: 576 cells in two batches, each cell labelled with the authors' sort gate (``cell_type``: CD141, CD1C,
pDC, DoubleNeg) and 859 genes, with the values as distributed (log-scale expression). ``plate`` is read from the
authors' cell names (``CD141_P10_S73``: gate, plate P10, well S73). Subset: none (every cell and gene of HumanDC).
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
obs = pd.DataFrame({
    "cell_type": pd.Categorical(meta["cell_type"]),
    "batch": pd.Categorical(meta["batch"]),
    "plate": pd.Categorical(meta.index.str.split("_").str[1]),
}, index=meta.index.astype(str))
adata = ad.AnnData(X=sparse.csr_matrix(matrix.T.astype(np.float32)), obs=obs, var=pd.DataFrame(index=genes))
adata.uns["values"] = "log-scale expression of 859 genes (Smart-seq2), as distributed in SCIBER's HumanDC"
adata.write_h5ad(Path(__file__).with_name("villani2017_dc.h5ad"), compression="gzip")
print(adata)
print(pd.crosstab(adata.obs["cell_type"], adata.obs["batch"]).to_string())
