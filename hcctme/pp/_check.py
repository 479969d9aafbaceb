"""``check_input``: what an AnnData holds, before any tool runs on it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from hcctme import _validate
from hcctme._constants import Keys
from hcctme._logging import logger
from hcctme.sig import _genes

# how to reach log-normalised values, by the matrix found holding counts (only X's counts are copied to a layer)
_LOGNORM_FIX = {
    "X": ("keep the counts as a layer and log-normalise X (adata.layers['counts'] = adata.X.copy(); "
          "sc.pp.normalize_total(adata, target_sum=1e4); sc.pp.log1p(adata)), or pass layer= / use_raw= naming the "
          "log-normalised matrix"),
    "raw": "pass use_raw=False where X holds the log-normalised values (the tools read .raw by default)",
}
_LOGNORM_FIX_LAYER = "pass layer= naming the log-normalised matrix, or layer=None to read X"


def check_input(adata: AnnData, *, layer: str | None = None, use_raw: bool | None = None) -> dict[str, Any]:
    """Inspect an AnnData and say what hcctme will see in it; nothing is modified.

    Parameters
    ----------
    adata
        Annotated data matrix.
    layer
        Layer to inspect instead of ``.X``.
    use_raw
        Inspect ``.raw`` (``None``: scanpy's rule, ``.raw`` when present and no layer is given).

    Returns
    -------
    dict
        The input report:

        - ``matrix``: which matrix was read (``"X"``, ``"raw"`` or ``"layers['name']"``), ``shape``,
          ``sparse``, ``dtype``;
        - ``kind``: ``"counts"`` (non-negative integers), ``"lognorm"`` (non-negative, non-integer,
          max < 50), ``"scaled"`` (negative values) or ``"other"``, from a sample of up to 2000 cells;
        - ``has_nan`` (NaN or infinite values in that sample);
        - ``gene_id_type`` (``"ensembl"``, ``"symbol"`` or ``"unknown"``) and ``species``
          (``"human"``, ``"mouse"``, ``"unknown"``), by the rule of
          :func:`hcctme.sig._genes.gene_id_type`, with the counts behind them in ``gene_ids``, of the
          names the tools match (the harmonised symbols after :func:`hcctme.pp.harmonize_genes`);
        - ``n_duplicated_genes`` / ``duplicated_genes`` (examples, of those names) and ``n_duplicated_cells``;
        - ``harmonised``: whether ``var["hcctme_symbol"]`` exists; ``counts_layer``: whether
          ``layers["counts"]`` holds integer counts;
        - ``issues``: a list of plain-language problems and how to fix them (empty when fine).
    """
    _validate.anndata(adata, allow_empty=True)
    X, var_names = _validate.matrix(adata, layer=layer, use_raw=use_raw)
    if layer is not None:
        which = f"layers[{layer!r}]"
    elif use_raw or (use_raw is None and adata.raw is not None):
        which = "raw"
    else:
        which = "X"

    issues: list[str] = []
    kind: str | None = None
    has_nan = False
    if X is None:
        issues.append(f"adata.{which} is empty (None)")
    elif X.shape[0] and X.shape[1]:
        kind = _validate.matrix_kind(X, check_finite=False)
        has_nan = _has_nonfinite(X)
        if has_nan:
            issues.append(f"{which} has NaN or infinite values; replace them (np.nan_to_num) or fix the "
                          "normalisation step that produced them")
    else:
        issues.append(f"the AnnData is empty ({adata.n_obs} cells x {adata.n_vars} genes)")

    matched = _validate.gene_names(adata, var_names)  # the names the tools match: harmonised symbols if any
    ids = _genes.gene_id_type(matched)
    dups = matched[matched.duplicated()].unique()
    n_dup_cells = int(adata.obs_names.duplicated().sum())
    harmonised = Keys.SYMBOL in adata.var.columns
    counts_layer, counts_nonfinite = None, False
    if Keys.COUNTS in adata.layers:
        try:
            counts_layer = _validate.matrix_kind(adata.layers[Keys.COUNTS], check_finite=False) == "counts"
            counts_nonfinite = counts_layer and _has_nonfinite(adata.layers[Keys.COUNTS])  # refused by the tools
            counts_layer = counts_layer and not counts_nonfinite
        except TypeError:
            counts_layer = False

    if ids["id_type"] == "ensembl":
        issues.append("genes are Ensembl ids; run hcctme.pp.harmonize_genes(adata) to map them to symbols")
    elif ids["species"] == "mouse":
        issues.append("genes look like mouse symbols; run hcctme.pp.harmonize_genes(adata, species='mouse') "
                      "to map them to human orthologs")
    elif ids["id_type"] == "unknown" and len(var_names):
        issues.append("no gene name is a known human/mouse symbol or Ensembl id; if symbols are in a var "
                      "column, pass it as harmonize_genes(adata, gene_symbols=...)")
    if len(dups) and not pd.Index(var_names).is_unique:
        fix = ("raw = adata.raw.to_adata(); raw.var_names_make_unique(); adata.raw = raw" if which == "raw"
               else "adata.var_names_make_unique()")
        issues.append(f"{len(dups)} duplicated gene name(s) (e.g. {list(map(str, dups[:5]))}); call {fix}")
    elif len(dups):
        issues.append(f"{len(dups)} harmonised gene symbol(s) name more than one gene (e.g. "
                      f"{list(map(str, dups[:5]))}): a gene left unmapped keeps its own name, another gene's "
                      "symbol; drop or rename one gene of each")
    if n_dup_cells:
        issues.append(f"{n_dup_cells} duplicated cell name(s); call adata.obs_names_make_unique()")
    if kind == "scaled":
        issues.append(f"{which} looks scaled (negative values); scoring wants counts or log-normalised data "
                      "(pass layer= or use_raw=)")
    elif kind == "counts":  # scoring reads them, crosstalk and the profile (and so hcctme run) refuse them
        issues.append(f"{which} holds raw counts; crosstalk and the resistance profile (and hcctme run) need "
                      f"log-normalised values: {_LOGNORM_FIX.get(which, _LOGNORM_FIX_LAYER)}")
    if counts_nonfinite:
        issues.append("layers['counts'] holds NaN or infinite values besides integer counts; pseudobulk and compare "
                      "need raw counts: replace them with the counts they should be")
    elif counts_layer is False:
        issues.append("layers['counts'] is not integer counts; pseudobulk and compare need raw counts")

    report: dict[str, Any] = {
        "matrix": which,
        "shape": tuple(int(s) for s in (X.shape if X is not None else (0, 0))),
        "sparse": bool(X is not None and _validate.is_sparse(X)),
        "dtype": str(X.dtype) if X is not None else None,
        "kind": kind,
        "has_nan": bool(has_nan),
        "gene_id_type": ids["id_type"],
        "species": ids["species"],
        "gene_ids": {k: v for k, v in ids.items() if k.startswith("n")},
        "n_duplicated_genes": len(dups),
        "duplicated_genes": [str(d) for d in dups[:20]],
        "n_duplicated_cells": n_dup_cells,
        "harmonised": harmonised,
        "counts_layer": counts_layer,
        "issues": issues,
    }
    logger.info("check_input: %s %s x %s, %s, %s %s genes, %d issue(s)", which, report["shape"][0],
                report["shape"][1], kind, ids["species"], ids["id_type"], len(issues))
    return report


def _has_nonfinite(X: Any) -> bool:
    block = _validate._row_sample(X, X.shape[0])
    values = _validate._values(block)
    if not np.issubdtype(values.dtype, np.floating):
        return False
    return bool(not np.all(np.isfinite(values)))
