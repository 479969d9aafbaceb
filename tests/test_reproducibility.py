"""Fixed seeds give byte-identical results, and every result records the library version and its
parameters in ``uns``.

The whole chain (simulate_cohort, pp.harmonize_genes, tl.score, call_states, pseudobulk, compare,
enrich, ta_response, crosstalk, tib, resistance_profile) runs once in this process and once in a
fresh interpreter with another PYTHONHASHSEED (so set or dict ordering cannot leak into a result);
the two runs' tables must hash identically (pandas.util.hash_pandas_object).

Run as a script, this file prints the fingerprints of one run as JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata import AnnData

import hcctme as hc

KW = {"condition_key": "response", "sample_key": "patient", "reference": "responder"}


def frame_hash(frame: pd.DataFrame | pd.Series) -> str:
    """Hash of values, index, column names and dtypes (object cells hashed through str)."""
    frame = frame.to_frame() if isinstance(frame, pd.Series) else frame
    objects = [c for c in frame.columns if frame[c].dtype == object]
    values = frame.assign(**{c: frame[c].map(repr) for c in objects}) if objects else frame
    h = hashlib.sha256(pd.util.hash_pandas_object(values, index=True).values.tobytes())
    h.update(repr([(str(c), str(t)) for c, t in frame.dtypes.items()]).encode())
    return h.hexdigest()[:16]


def matrix_hash(X: Any) -> str:
    h = hashlib.sha256()
    if sp.issparse(X):
        X = X.tocsr()
        for part in (X.data, X.indices, X.indptr):
            h.update(np.ascontiguousarray(part).tobytes())
    else:
        h.update(np.ascontiguousarray(np.asarray(X)).tobytes())
    h.update(str(X.shape).encode())
    return h.hexdigest()[:16]


def run_all() -> tuple[AnnData, dict[str, Any]]:
    """Every tool once on a small seeded cohort; returns the AnnData and the tools' outputs."""
    out: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adata = hc.datasets.simulate_cohort(6, 80, n_genes=800, spatial=True, random_state=3)
        out["simulate"] = adata.copy()
        hc.pp.harmonize_genes(adata)
        hc.tl.score(adata)
        out["score_mean"] = hc.tl.score(adata, method="mean", random_state=7, key_added="mean_scores",
                                        copy=True).obsm["mean_scores"]
        hc.tl.call_states(adata, cell_type_key="cell_type", sample_key="patient")
        out["pseudobulk"] = hc.tl.pseudobulk(adata, sample_key="patient")
        hc.tl.compare(adata, **KW, key_added="cmp_scores")
        out["compare_scores"] = hc.get.compare(adata, "cmp_scores")
        hc.tl.compare(adata, **KW, features="composition", groupby="cell_type", key_added="cmp_composition")
        out["compare_composition"] = hc.get.compare(adata, "cmp_composition")
        genes = adata[:, :150].copy()
        hc.tl.compare(genes, **KW, features="genes")
        out["compare_genes"] = hc.get.compare(genes)
        hc.tl.enrich(genes, permutation_num=50, min_size=3, random_state=1)
        out["enrich"] = hc.get.enrich(genes)
        out["genes"] = genes
        hc.tl.ta_response(adata, **KW, min_coverage=0.3)
        out["ta_response"] = hc.get.ta_response(adata, per_sample=True)
        hc.tl.crosstalk(adata, groupby="cell_type", **KW, axes_only=True, n_perms=20, min_cells=5, random_state=2)
        out["crosstalk"] = hc.get.crosstalk(adata, differential=True)
        hc.tl.tib(adata, sample_key="patient", n_perms=20, random_state=4)
        out["tib"] = hc.get.tib(adata)
        hc.tl.resistance_profile(adata, sample_key="patient", condition_key="response", reference="responder")
        out["resistance_profile"] = hc.get.profile(adata)
    return adata, out


def fingerprints(adata: AnnData, out: dict[str, Any]) -> dict[str, str]:
    sim = out["simulate"]
    prints = {
        "simulate.X": matrix_hash(sim.X),
        "simulate.counts": matrix_hash(sim.layers["counts"]),
        "simulate.obs": frame_hash(sim.obs),
        "simulate.var": frame_hash(sim.var),
        "simulate.spatial": matrix_hash(sim.obsm["spatial"]),
        "harmonize": frame_hash(adata.var[["hcctme_symbol"]]),
        "score": frame_hash(adata.obsm["hcctme_scores"]),
        "score_mean": frame_hash(out["score_mean"]),
        "call_states": frame_hash(adata.obs[["hcctme_state", "hcctme_state_confidence", "hcctme_state_context"]]),
        "pseudobulk.X": matrix_hash(out["pseudobulk"].X),
        "pseudobulk.obs": frame_hash(out["pseudobulk"].obs),
    }
    for key in ("compare_scores", "compare_composition", "compare_genes", "enrich", "ta_response", "crosstalk",
                "tib", "resistance_profile"):
        prints[key] = frame_hash(out[key])
    prints["crosstalk.liana"] = frame_hash(hc.get.crosstalk(adata))
    return prints


# --------------------------------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def first_run() -> tuple[AnnData, dict[str, Any]]:
    return run_all()


def test_two_runs_are_byte_identical(first_run):
    here = fingerprints(*first_run)
    env = {**os.environ, "PYTHONHASHSEED": "12345" if os.environ.get("PYTHONHASHSEED") != "12345" else "54321"}
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve())], capture_output=True, text=True,
                          env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    there = json.loads(proc.stdout.strip().splitlines()[-1])
    assert there.keys() == here.keys()
    differ = {k: (here[k], there[k]) for k in here if here[k] != there[k]}
    assert not differ, f"results differ between two runs with the same seeds: {sorted(differ)}"


def test_fingerprints_see_a_different_seed():
    a = hc.datasets.simulate_cohort(4, 50, n_genes=300, random_state=1)
    b = hc.datasets.simulate_cohort(4, 50, n_genes=300, random_state=2)
    assert matrix_hash(a.layers["counts"]) != matrix_hash(b.layers["counts"])
    changed = a.obs.copy()
    changed.iloc[0, changed.columns.get_loc("n_counts")] += 1
    assert frame_hash(changed) != frame_hash(a.obs)


def _provenance(adata: AnnData, out: dict[str, Any]) -> dict[str, tuple[dict, str]]:
    """tool -> (the uns dict it records its provenance in, a parameter that dict must hold)."""
    params = hc.get.params
    return {
        "harmonize_genes": (adata.uns["hcctme_symbol"], "species"),
        "score": (params(adata, "hcctme_scores"), "params"),
        "call_states": (params(adata, "hcctme_state"), "cell_type_key"),
        "pseudobulk": (params(out["pseudobulk"], "hcctme_pseudobulk"), "sample_key"),
        "compare": (params(adata, "cmp_scores"), "features"),
        "enrich": (params(out["genes"], "hcctme_enrich"), "permutation_num"),
        "ta_response": (params(adata, "hcctme_ta_response"), "sample_key"),
        "crosstalk": (params(adata, "hcctme_crosstalk"), "groupby"),
        "tib": (params(adata, "hcctme_tib"), "n_perms"),
        "resistance_profile": (params(adata, "hcctme_profile"), "sample_key"),
    }


def test_every_result_records_library_version_and_parameters(first_run):
    version = hc.sig.library().library_version
    assert version.startswith(hc.__version__)
    missing = {}
    for tool, (record, parameter) in _provenance(*first_run).items():
        recorded = {**record, **(record.get("params") or {})}  # the call's arguments sit in "params"
        if record.get("library_version") != version or parameter not in recorded:
            missing[tool] = sorted(record)
    assert not missing, f"library_version or parameters missing from uns: {missing}"


if __name__ == "__main__":
    print(json.dumps(fingerprints(*run_all())))
