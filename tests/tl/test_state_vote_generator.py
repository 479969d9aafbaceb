"""call_states(refine="graph") on the independent evaluation generator: the measured effect of the vote."""

from __future__ import annotations

import logging

import pytest

import hcctme
from benchmarks.states_eval import with_graph
from tests.tl._state_generator import evaluate, generate


@pytest.mark.slow
def test_graph_vote_on_independent_generator():
    pytest.importorskip("igraph")
    adata = with_graph(generate("10x", seed=7, n_patients=8, cells_per_patient=500), "graph")
    hcctme.tl.score(adata)
    kwargs = {"cell_type_key": "cell_type", "sample_key": "patient"}
    hcctme.tl.call_states(adata, **kwargs)
    hcctme.tl.call_states(adata, **kwargs, refine="graph", key_added="voted")
    cells, voted = evaluate(adata), evaluate(adata, key="voted")
    text = f"per cell {cells['ari'].round(2).to_dict()} ECE {cells['ece']:.3f}\n" \
           f"voted {voted['ari'].round(2).to_dict()} ECE {voted['ece']:.3f}"
    print(f"\n{text}")
    logging.getLogger("hcctme").info("graph vote on the independent generator:\n%s", text)
    # measured on this seed (per cell -> voted), release 2.7: CD8 0.83 -> 0.87, CD4 0.94 -> 0.94, macrophages
    # 0.80 -> 0.80, neutrophils 0.85 -> 0.84, CAFs 0.69 -> 0.63, endothelial 0.02 -> 0.02; ECE 0.023 -> 0.022.
    # Release 2.6 had neutrophils 0.77 -> 0.85: the purified "none of these" seeds reach per cell what the vote
    # added. Over two seeds and four settings (benchmarks/states_eval.py --refine graph, release 2.3) the vote
    # gained CD8 / neutrophil ARI but cost ECE in the noisy setting (0.047 -> 0.057) and CAF ARI under high stress
    # (0.72 -> 0.67), so it is an option, not the default. Release 2.35 (each patient centred on its
    # score-adjusted mean) measures CD8 T cells 0.849 per cell, 0.862 voted: the vote gains less than 0.02 there.
    ari, ari_voted = cells["ari"], voted["ari"]
    assert ari_voted["CD8+ T cells"] >= ari["CD8+ T cells"]
    assert ari_voted["Neutrophils"] >= ari["Neutrophils"] - 0.02
    assert ari_voted["CD4+ T cells"] >= ari["CD4+ T cells"] - 0.02
    assert ari_voted["Macrophages"] >= ari["Macrophages"] - 0.02
    assert voted["ece"] <= 0.05
    # artefact cells set aside by the per-cell step stay unassigned
    flagged = adata.obs["voted_artefact"].astype(str) != ""
    assert (adata.obs.loc[flagged, "voted"].astype(str) == "unassigned").all()
