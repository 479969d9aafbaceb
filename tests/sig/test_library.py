"""The curated signature library (signatures/*.yaml): loads strictly and holds every agreed id."""

from __future__ import annotations

import subprocess
import sys

import pytest

import hcctme as ht
from hcctme._constants import CELL_CONTEXTS, Defaults
from hcctme.sig import _genes

# id -> (cell_context, collection, role), as fixed by the lead (.briefs/SIGNATURE_IDS.md).
EXPECTED: dict[str, tuple[str, str, str]] = {
    # cell-type markers
    "MARKER_T_CELL": ("t_cell", "cell_type_markers", "marker"),
    "MARKER_CD8_T": ("cd8_t", "cell_type_markers", "marker"),
    "MARKER_CD4_T": ("cd4_t", "cell_type_markers", "marker"),
    "MARKER_NK": ("nk", "cell_type_markers", "marker"),
    "MARKER_B_CELL": ("b_cell", "cell_type_markers", "marker"),
    "MARKER_PLASMA": ("plasma", "cell_type_markers", "marker"),
    "MARKER_MYELOID": ("myeloid", "cell_type_markers", "marker"),
    "MARKER_MACROPHAGE": ("macrophage", "cell_type_markers", "marker"),
    "MARKER_MONOCYTE": ("monocyte", "cell_type_markers", "marker"),
    "MARKER_NEUTROPHIL": ("neutrophil", "cell_type_markers", "marker"),
    "MARKER_DENDRITIC": ("dendritic", "cell_type_markers", "marker"),
    "MARKER_FIBROBLAST": ("fibroblast", "cell_type_markers", "marker"),
    "MARKER_ENDOTHELIAL": ("endothelial", "cell_type_markers", "marker"),
    "MARKER_HEPATOCYTE": ("hepatocyte", "cell_type_markers", "marker"),
    "MARKER_TUMOUR": ("tumour", "cell_type_markers", "marker"),
    # called states
    "CD8_TEX_TERMINAL": ("cd8_t", "cd8_t_states", "resistance"),
    "CD8_TEX_PROGENITOR": ("cd8_t", "cd8_t_states", "response"),
    "CD8_TEFF": ("cd8_t", "cd8_t_states", "response"),
    "TREG": ("cd4_t", "cd4_t_states", "resistance"),
    "TAM1_FOLR2": ("macrophage", "macrophage_states", "resistance"),
    "TAM2_SPP1": ("macrophage", "macrophage_states", "resistance"),
    "TAM3_MT1G": ("macrophage", "macrophage_states", "state"),
    "NEU_CD10_ALPL": ("neutrophil", "neutrophil_states", "resistance"),
    "PMN_MDSC": ("neutrophil", "neutrophil_states", "resistance"),
    "M_MDSC": ("monocyte", "monocyte_states", "resistance"),
    "CAF_ECM_MYCAF": ("fibroblast", "fibroblast_states", "resistance"),
    "CAF_TGFB_MYCAF": ("fibroblast", "fibroblast_states", "resistance"),
    "CAF_WOUND_MYCAF": ("fibroblast", "fibroblast_states", None),
    "CAF_IFNG_ICAF": ("fibroblast", "fibroblast_states", None),
    "CAF_IL_ICAF": ("fibroblast", "fibroblast_states", None),
    "CAF_DETOX_ICAF": ("fibroblast", "fibroblast_states", None),
    "ENDO_ONCOFETAL_PLVAP": ("endothelial", "endothelial_states", "resistance"),
    # scored programmes
    "TREG_CCR4_CCR8": ("cd4_t", "treg_programs", "resistance"),
    "MACRO_M1": ("macrophage", "macrophage_polarisation", "response"),
    "MACRO_M2": ("macrophage", "macrophage_polarisation", "resistance"),
    "NEU_N1": ("neutrophil", "neutrophil_programs", "response"),
    "NEU_N2": ("neutrophil", "neutrophil_programs", "resistance"),
    "NET_FORMATION": ("neutrophil", "neutrophil_programs", "resistance"),
    "ICAF": ("fibroblast", "caf_programs", "resistance"),
    "TA_ABRS": ("any", "ta_response", "response"),
    "TA_TEFF": ("any", "ta_response", "response"),
    "TA_TREG": ("any", "ta_response", "resistance"),
    "TA_ANGIOGENESIS": ("any", "ta_response", "resistance"),
    "TA_MYELOID_INFLAMMATION": ("any", "ta_response", "resistance"),
    "TA_ONCOFETAL": ("any", "ta_response", "resistance"),
    "HYPOXIA": (None, "tumour_programs", "resistance"),
    "VASCULOGENIC_MIMICRY": (None, "tumour_programs", "resistance"),
    "STEMNESS": (None, "tumour_programs", "resistance"),
    "DRUG_EFFLUX": (None, "tumour_programs", "resistance"),
    "EXOSOME_BIOGENESIS": (None, "tumour_programs", "resistance"),
    "IFN_ALPHA_RESPONSE": ("any", "hallmark", "response"),
    "IFN_GAMMA_RESPONSE": ("any", "hallmark", "response"),
    "CHOLESTEROL_HOMEOSTASIS": ("any", "hallmark", "resistance"),
    "BILE_ACID_METABOLISM": ("any", "hallmark", "resistance"),
    "NOTCH_SIGNALING": ("any", "hallmark", "resistance"),
    "ANGIOGENESIS": ("any", "hallmark", "resistance"),
    "TGFB_SIGNALING": ("any", "hallmark", "resistance"),
    "EMT": ("any", "hallmark", "resistance"),
}

# State signatures of one collection are compared on the same cells.
STATE_COLLECTIONS = ("cd8_t_states", "cd4_t_states", "macrophage_states", "neutrophil_states",
                     "monocyte_states", "fibroblast_states", "endothelial_states")


@pytest.fixture(scope="module")
def lib():
    return ht.sig.library()


def test_library_loads_strictly(lib):
    assert len(lib) >= len(EXPECTED)
    assert str(lib.library_version)


@pytest.mark.parametrize("sig_id", sorted(EXPECTED))
def test_expected_id_present_with_context_collection_role(lib, sig_id):
    context, collection, role = EXPECTED[sig_id]
    sig = lib[sig_id]
    assert sig.collection == collection
    if context is not None:
        assert sig.cell_context == context
    else:  # tumour programmes: "any" unless the source is tumour-cell specific
        assert sig.cell_context in ("any", "tumour")
    if role is not None:
        assert sig.role == role
    else:  # Kieffer clusters without a reported resistance link
        assert sig.role in ("state", "response", "resistance")


def test_every_cell_context_has_a_marker_signature(lib):
    markers = {s.cell_context for s in lib if s.role == "marker"}
    assert set(CELL_CONTEXTS) - {"any"} <= markers
    for s in lib:
        if s.role == "marker":
            assert s.collection == "cell_type_markers"
            assert s.id == f"MARKER_{s.id.removeprefix('MARKER_')}"


def test_states_are_called_inside_their_collection(lib):
    for s in lib:
        if s.collection.endswith("_states"):
            assert s.collection == f"{s.cell_context}_states", s.id


def test_every_entry_is_cited(lib):
    for s in lib:
        src = s.source
        assert src.get("citation"), s.id
        assert src.get("pmid") or src.get("doi"), s.id
        assert src.get("where"), s.id
        if src.get("pmid"):
            assert src["pmid"].isdigit(), s.id
        if src.get("doi"):
            assert src["doi"].startswith("10."), s.id
        assert s.evidence in ("published_list", "marker_panel", "derived")
        assert s.species == "human" and s.version >= 1


def test_gene_lists_are_long_enough_and_current(lib):
    known = _genes.known_human_symbols()
    for s in lib:
        assert len(s.genes_up) >= Defaults.MIN_GENES, s.id
        assert not set(s.genes_up) & set(s.genes_down), s.id
        unknown = [g for g in s.genes if g not in known]
        assert not unknown, (s.id, unknown)


def test_old_symbols_were_updated(lib):
    old = {"IL8", "SEPT11", "WISP2", "CTGF", "FIGF", "C19orf59", "EMR2", "EMR3", "GPR97", "H3F3A", "HIST1H2BC",
           "KIAA1199", "FAM65B", "VEGF", "LYZ2", "DDX58", "METTL7B", "LINC00152", "MIR4435-1HG", "FAM102A", "RAB7",
           "HRASLS2", "IL23", "FASL"}
    for s in lib:
        assert not old & set(s.genes), (s.id, old & set(s.genes))


def test_states_of_one_collection_are_distinguishable(lib):
    for collection in STATE_COLLECTIONS:
        states = [s for s in lib if s.collection == collection]
        assert states, collection
        for i, a in enumerate(states):
            for b in states[i + 1:]:
                shared = set(a.genes_up) & set(b.genes_up)
                assert len(shared) <= 0.2 * min(len(a.genes_up), len(b.genes_up)), (a.id, b.id, shared)


def test_list_shows_the_library_with_citations(lib):
    df = ht.sig.list()
    assert {"id", "name", "collection", "cell_context", "role", "n_genes", "citation"} <= set(df.columns)
    assert set(EXPECTED) <= set(df["id"])
    assert df["citation"].str.len().gt(0).all()


def test_list_from_the_command_line():
    out = subprocess.run([sys.executable, "-c", "import hcctme as ht; print(ht.sig.list())"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "TAM2_SPP1" in out.stdout or "MARKER_" in out.stdout
