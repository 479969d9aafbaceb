"""Build zheng2017_hcc_cd8.h5ad from the T-cell example of the sscClust package.

Usage: python make_subset.py path/to/TCell.d100.sigG.exp.txt.gz path/to/TCell.d100.cellInfo.txt
Source: github.com/Japrin/sscClust, ``inst/extdata/`` (commit 26f6329e939780df41b2711344d669fb5ab5c98b). 100 CD8+
T cells, drawn at random by the package authors (L. Zheng, first author of the paper) from the Smart-seq2 data of
Zheng et al. 2017 (hepatocellular carcinoma, GSE98638), with the authors' major cluster (``majorCluster``), patient and
site (``loc``: P peripheral blood, N adjacent non-tumour liver, T tumour); expression of about 500 of the authors'
cluster signature genes, normalised and centred per patient by the authors (values can be negative).
Subset: the two rows without a gene symbol (``NA``) are dropped; every cell and every other gene is kept, values as
distributed.
"""

import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse

SITES = {"P": "peripheral blood", "N": "adjacent non-tumour liver", "T": "tumour"}

expr = pd.read_csv(sys.argv[1], sep="\t", keep_default_na=False)
expr = expr[expr["geneSymbol"].ne("NA") & expr["geneSymbol"].ne("")]
info = pd.read_csv(sys.argv[2], sep="\t", keep_default_na=False).set_index("sample")
values = expr.drop(columns=["geneID", "geneSymbol"]).T
info = info.loc[values.index]
obs = pd.DataFrame({
    "cluster": pd.Categorical(info["majorCluster"]),
    "patient": pd.Categorical(info["patient"]),
    "site": pd.Categorical(info["loc"].map(SITES)),
}, index=values.index.astype(str))
var = pd.DataFrame({"entrez_id": expr["geneID"].astype(str).to_numpy()}, index=expr["geneSymbol"].astype(str))
adata = ad.AnnData(X=sparse.csr_matrix(values.to_numpy(dtype=np.float32)), obs=obs, var=var)
adata.uns["values"] = ("log-scale expression of the authors' Smart-seq2 data (Zheng et al. 2017), normalised and "
                       "centred per patient by the authors, as distributed in sscClust (values can be negative)")
adata.write_h5ad(Path(__file__).with_name("zheng2017_hcc_cd8.h5ad"), compression="gzip")
print(adata)
print(adata.obs["cluster"].value_counts().to_string())
