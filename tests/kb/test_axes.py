"""The shipped resistance-axis table, its validator and the kb API."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import yaml

from hcctme import kb
from hcctme.kb import AxisSchemaError, _schema
from hcctme.sig._genes import known_human_symbols

# Every row of shared/reference/resistance_axes.md -> kb id, genes it names (current symbols) and
# therapies it names (matched case-insensitively against therapy name or drug class).
REFERENCE_AXES = {
    "TIB": ("TIB", {"SPP1", "CD44", "ITGAV", "ITGB1", "ITGB5"}, ["SPP1 blockade"]),
    "HGF-MET": ("HGF_MET", {"HGF", "MET"}, ["cabozantinib", "tepotinib", "capmatinib", "tivantinib"]),
    "CXCL12": ("CXCL12_CXCR4", {"CXCL12", "CXCR4"}, ["CXCR4 antagonist"]),
    "CCL2": ("CCL2_CCR2", {"CCL2", "CCR2"}, ["CCR2 antagonist", "carlumab", "bindarit"]),
    "CSF1": ("CSF1_CSF1R", {"CSF1", "CSF1R"}, ["pexidartinib", "emactuzumab", "GW2580"]),
    "CXCR2": ("CXCR2", {"CXCL1", "CXCL2", "CXCL5", "CXCL6", "CXCL8", "CXCR2", "CXCR1"}, ["SB265610"]),
    "CCR5": ("CCR5", {"CCL3", "CCL4", "CCL5", "CCR5"}, []),
    "PD-1": ("PD1", {"CD274", "PDCD1LG2", "PDCD1"}, ["atezolizumab", "nivolumab", "pembrolizumab"]),
    "TIM-3": ("TIM3", {"LGALS9", "HAVCR2"}, ["anti-TIM-3"]),
    "TIGIT": ("TIGIT", {"PVR", "TIGIT"}, ["anti-TIGIT"]),
    "LAG-3": ("LAG3", {"FGL1", "HLA-DRA", "LAG3"}, ["anti-FGL1", "anti-LAG-3"]),
    "CTLA-4": ("CTLA4", {"CD80", "CD86", "CTLA4"}, ["ipilimumab", "tremelimumab"]),
    "VISTA": ("VISTA", {"VSIR", "IGSF11", "SELPLG"}, []),
    "TGFB": ("TGFB", {"TGFB1", "TGFB2", "TGFB3", "TGFBR1", "TGFBR2"}, ["galunisertib", "SM-16"]),
    "IL6": ("IL6", {"IL6", "IL6R", "IL6ST"}, ["anti-IL-6"]),
    "IL10": ("IL10", {"IL10", "IL10RA"}, []),
    "CCR4": ("CCR4", {"CCL17", "CCL22", "CCR4"}, ["CCR4 antagonist"]),
    "VEGF": ("VEGF", {"VEGFA", "PGF", "KDR", "FLT1"}, ["bevacizumab", "ramucirumab", "lenvatinib"]),
    "ANGPT2": ("ANGPT2_TEK", {"ANGPT2", "TEK"}, []),
    "CLCF1": ("CLCF1_CNTFR", {"CLCF1", "CRLF1", "CNTFR", "IL6ST", "LIFR"}, []),
    "TAM RTK": ("TAM_RTK", {"GAS6", "PROS1", "AXL", "MERTK", "TYRO3"}, ["bemcentinib", "DS-1205c", "SLC-391"]),
    "CD47": ("CD47_SIRPA", {"CD47", "SIRPA"}, []),
    "CD40": ("CD40", {"CD40LG", "CD40"}, ["CP-870,893"]),
    "NK checkpoints": ("NK_CHECKPOINTS", {"CEACAM1", "HLA-E", "MICA", "MICB", "KLRC1", "KLRD1", "KLRK1"},
                       ["anti-CEACAM1"]),
    "CD39/CD73": ("ADENOSINE", {"ENTPD1", "NT5E", "ADORA2A", "ADORA2B"}, []),
    "OSM / SAA": ("OSM_SAA", {"SAA1", "OSM", "OSMR", "IL6ST"}, []),
    "FSTL1": ("FSTL1", {"FSTL1"}, ["anti-FSTL1"]),
    "ITGA5/ITGB1": ("ITGA5_ITGB1", {"ITGA5", "ITGB1"}, []),
    "CCL5 loss": ("CCL5_LOSS", {"CCL5", "CCR5"}, []),
    # seed mechanisms added in kb version 2 (issue 15)
    "TACE S100A9": ("TACE_S100A9", {"S100A9"}, []),
    "HAIC oxaliplatin": ("HAIC_OXALIPLATIN", {"PRMT3", "ATP7A", "ATP7B", "SLC22A2"}, []),
    "sorafenib ferroptosis": ("SORAFENIB_FERROPTOSIS", {"SLC7A11", "GPX4"}, []),
    "DLL4-NOTCH2 onco-fetal": ("ONCOFETAL_NOTCH", {"DLL4", "NOTCH2"}, []),
    "FGF19-FGFR4": ("FGF19_FGFR4", {"FGF19", "FGFR4", "KLB"}, []),
    "EGFR under lenvatinib": ("EGFR_LENVATINIB", {"EGFR"}, ["gefitinib"]),
    "IDO1": ("IDO1_KYNURENINE", {"IDO1", "AHR"}, []),
    "CD48-2B4": ("CD48_CD244", {"CD48", "CD244"}, []),
    "IL-35": ("IL35", {"EBI3", "IL12A", "IL12RB2", "IL6ST"}, []),
    "lactate/MCT4": ("LACTATE_MCT", {"SLC16A3", "SLC16A1"}, []),
}


def _axis_genes(axis_id: str) -> set[str]:
    rows = kb.axes(axis_id)
    return {g for name in pd.concat([rows["ligand"], rows["receptor"]]).dropna() for g in name.split("_")}


# ---- shipped table ---------------------------------------------------------------------------------
def test_shipped_table_validates_with_gene_check():
    table = kb.load()  # raises on any schema problem, genes checked against current human symbols
    assert table.version == 2
    assert len(table.axes) == len(REFERENCE_AXES)
    assert kb.version.startswith(f"{table.version}+kb.")


@pytest.mark.parametrize("name", sorted(REFERENCE_AXES))
def test_every_reference_axis_is_present(name):
    axis_id, genes, drugs = REFERENCE_AXES[name]
    assert axis_id in kb.table().ids, f"{name} missing from the kb"
    missing = genes - _axis_genes(axis_id)
    assert not missing, f"{name}: genes {missing} not in the kb pairs"
    therapies = kb.therapies(axis_id)
    text = " ".join(therapies["therapy"].str.lower()) + " " + " ".join(therapies["drug_class"].str.lower())
    for drug in drugs:
        assert drug.lower() in text, f"{name}: therapy {drug!r} not linked"


def test_every_pair_and_therapy_traceable():
    for axis in kb.table().axes:
        assert axis["citations"], axis["id"]
        for cite in axis["citations"]:
            assert cite["pmid"] or cite["doi"] or cite["url"] or "title" in cite["checked"]
        keys = {c["key"] for c in axis["citations"]}
        assert all(t["citation"] in keys for t in axis["therapies"])
    assert kb.therapies()["citation"].notna().all()


def test_axes_table_is_tidy():
    frame = kb.axes()
    assert {"axis", "name", "ligand", "receptor", "interaction", "mediator", "pair_citation", "sender", "receiver",
            "mechanism", "resistance_to", "settings", "therapies", "evidence", "citation", "pmid", "doi", "seed",
            "direction"} <= set(frame.columns)
    assert not frame.duplicated(["axis", "ligand", "receptor"]).any()
    assert set(frame["interaction"]) == {"protein", "metabolite", "marker"}
    assert frame.loc[frame["interaction"] == "marker", "receptor"].isna().all()
    assert set(frame["axis"]) == set(kb.table().ids)
    assert frame.loc[frame["axis"] == "TIB", "pmid"].iloc[0] == "36708811"


def test_therapies_lookup():
    hgf = kb.therapies("HGF_MET")
    assert list(hgf.columns[:5]) == ["axis", "axis_name", "therapy", "tier", "status"]
    assert "cabozantinib" in set(hgf["therapy"])
    assert set(hgf["status"]) <= set(_schema.THERAPY_STATUS)
    both = kb.therapies(["PD1", "CTLA4"])
    assert set(both["axis"]) == {"PD1", "CTLA4"}
    assert len(kb.therapies()) >= len(both)
    assert kb.therapies("VISTA").empty
    with pytest.raises(KeyError, match="unknown resistance axis"):
        kb.therapies("NOT_AN_AXIS")
    with pytest.raises(TypeError, match="axis must be an axis id or a list of them"):  # was Python's iteration error
        kb.axes(3)


def test_axis_pairs_and_annotate():
    pairs = kb.axis_pairs()
    assert list(pairs.columns) == ["ligand", "receptor", "axis", "direction", "sender", "receiver", "interaction"]
    assert set(pairs["interaction"]) == {"protein"}
    with_metabolites = kb.axis_pairs(include_metabolite=True)
    assert {"NT5E", "ENTPD1", "IDO1", "TDO2", "SLC16A3"} <= set(with_metabolites["ligand"]) - set(pairs["ligand"])
    ann = kb.annotate(["SPP1", "CSF1_IL34", "TIGIT", "MICA", "TGFB1", "APOE"],
                      ["CD44", "CSF1R", "PVR", "HCST_KLRK1", "ACVR1_TGFBR1_TGFBR2", "LRP1"])
    assert ann.iloc[0] == "TIB"
    assert ann.iloc[1] == "CSF1_CSF1R"  # complex containing the axis ligand
    assert ann.iloc[2] == "TIGIT"  # reversed orientation in the resource
    assert ann.iloc[3] == "NK_CHECKPOINTS"
    assert ann.iloc[4] == "TGFB"
    assert pd.isna(ann.iloc[5])
    assert kb.annotate(["CCL5"], ["CCR5"]).iloc[0] == "CCR5;CCL5_LOSS"
    # enzymes are not ligands: metabolite pairs are never matched as contacts
    assert kb.annotate(["NT5E", "ENTPD1", "IDO1"], ["ADORA2A", "ADORA2B", "AHR"]).isna().all()
    with pytest.raises(ValueError):
        kb.annotate(["SPP1"], [])
    assert {"SPP1", "CD44", "ITGAV", "PRMT3", "SLC7A11"} <= kb.genes()  # markers included


# ---- validator: one test per error ------------------------------------------------------------------
def _minimal() -> dict:
    return {
        "version": 1,
        "axes": [{
            "id": "AX1", "name": "an axis", "direction": "up", "mechanism": "m", "sender": ["macrophage"],
            "receiver": ["fibroblast"], "pairs": [{"ligand": "SPP1", "receptor": "CD44", "evidence": "paper"}],
            "resistance_to": ["anti-PD-1"], "settings": ["systemic_first_line"],
            "therapies": [{"name": "drug", "drug_class": "c", "target": "SPP1", "tier": "IV", "settings": [],
                           "status": "preclinical", "approval": {"FDA": "not_approved", "EMA": "not_approved",
                                                                 "NMPA": "not_approved"},
                           "citation": "Ref1", "checked": "2026-11-29"}],
            "evidence": "e", "evidence_level": "preclinical_in_vivo", "hcc": True,
            "citations": [{"key": "Ref1", "citation": "A et al. 2023", "pmid": "36708811", "checked": ["pmid"]}],
            "seed": ["B"],
        }],
    }


def _validate(doc):
    return _schema.validate(doc, where="test.yaml", known_symbols=known_human_symbols())


def test_minimal_document_is_valid():
    version, axes = _validate(_minimal())
    assert version == 1 and axes[0]["pairs"][0]["sender"] == ["macrophage"]


def _mutated(path, value, *, delete=False):
    doc = copy.deepcopy(_minimal())
    target = doc
    for key in path[:-1]:
        target = target[key]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


@pytest.mark.parametrize("path, value, message", [
    (("axes", 0, "colour"), "red", "unknown axis field"),
    (("axes", 0, "sender"), ["kupffer"], "unknown cell context"),
    (("axes", 0, "receiver"), ["fibroblast", "nope"], "unknown cell context"),
    (("axes", 0, "pairs", 0, "ligand"), "OPN", "not current human gene symbols"),
    (("axes", 0, "pairs", 0, "receptor"), "ITGAV_NOTAGENE", "not current human gene symbols"),
    (("axes", 0, "pairs", 0, "evidence"), "hearsay", "evidence must be one of"),
    (("axes", 0, "pairs", 0, "weight"), 1, "unknown pair field"),
    (("axes", 0, "pairs"), [], "non-empty unless the axis lists tumour-intrinsic markers"),
    (("axes", 0, "direction"), "sideways", "direction must be one of"),
    (("axes", 0, "evidence_level"), "anecdote", "unknown evidence_level"),
    (("axes", 0, "hcc"), "yes", "hcc must be true or false"),
    (("axes", 0, "seed"), ["Z"], "unknown seed"),
    (("axes", 0, "id"), "bad id!", "id must be"),
    (("axes", 0, "therapies", 0, "status"), "approved", "unknown status"),
    (("axes", 0, "therapies", 0, "tier"), "V", "tier must be one of"),
    (("axes", 0, "therapies", 0, "settings"), ["second_line"], "unknown setting"),
    (("axes", 0, "settings"), [], "settings is empty"),
    (("axes", 0, "settings"), ["neoadjuvant"], "unknown setting"),
    (("axes", 0, "therapies", 0, "approval"), {"FDA": "approved"}, "approval must map exactly"),
    (("axes", 0, "therapies", 0, "approval", "EMA"), "pending", "not in"),
    (("axes", 0, "therapies", 0, "checked"), "recently", "checked must be the date"),
    (("axes", 0, "therapies", 0, "tier"), "I", "needs its trial with an NCT id"),
    (("axes", 0, "therapies", 0, "status"), "approved_other", "tier IV is preclinical evidence only"),
    (("axes", 0, "pairs", 0, "interaction"), "contact", "interaction must be one of"),
    (("axes", 0, "pairs", 0, "interaction"), "metabolite", "mediator"),
    (("axes", 0, "pairs", 0, "mediator"), "adenosine", "mediator is only for"),
    (("axes", 0, "pairs", 0, "citation"), "Ref9", "not one of this axis' citation keys"),
    (("axes", 0, "markers"), ["NOTAGENE1"], "not current human gene symbols"),
    (("axes", 0, "therapies", 0, "citation"), "Ref9", "not one of this axis' citation keys"),
    (("axes", 0, "citations", 0, "pmid"), "PMC123", "is not a PubMed id"),
    (("axes", 0, "citations", 0, "doi"), "doi.org/x", "does not look like a DOI"),
    (("axes", 0, "citations", 0, "checked"), ["abstract"], "unknown checked value"),
    (("axes", 0, "citations"), [], "citations must be a non-empty list"),
    (("version",), 0, "version must be a positive integer"),
    (("extra",), 1, "unknown top-level field"),
])
def test_validator_errors(path, value, message):
    with pytest.raises(AxisSchemaError, match=message):
        _validate(_mutated(path, value))


def test_validator_missing_required_field():
    with pytest.raises(AxisSchemaError, match="missing required field"):
        _validate(_mutated(("axes", 0, "mechanism"), None, delete=True))


def test_validator_duplicate_ids_and_pairs():
    doc = _minimal()
    doc["axes"].append(copy.deepcopy(doc["axes"][0]))
    with pytest.raises(AxisSchemaError, match="duplicate axis id"):
        _validate(doc)
    doc = _minimal()
    doc["axes"][0]["pairs"].append(dict(doc["axes"][0]["pairs"][0]))
    with pytest.raises(AxisSchemaError, match="duplicate pair"):
        _validate(doc)


def test_validator_checked_needs_identifier_and_traceability():
    doc = _minimal()
    del doc["axes"][0]["citations"][0]["pmid"]
    with pytest.raises(AxisSchemaError, match="checked lists pmid but no pmid"):
        _validate(doc)
    doc["axes"][0]["citations"][0]["checked"] = []
    with pytest.raises(AxisSchemaError, match="not traceable"):
        _validate(doc)
    doc["axes"][0]["citations"][0]["checked"] = ["title"]
    _validate(doc)  # a confirmed title is enough


def test_load_user_file(tmp_path):
    path = tmp_path / "axes.yaml"
    path.write_text(yaml.safe_dump(_minimal()))
    table = kb.load(path)
    assert table.ids == ["AX1"] and table.version == 1
    path.write_text("version: 1\naxes: [\n")
    with pytest.raises(AxisSchemaError, match="not valid YAML"):
        kb.load(path)
    with pytest.raises(FileNotFoundError):
        kb.load(tmp_path / "missing.yaml")
    doc = _minimal()
    doc["axes"][0]["pairs"][0]["ligand"] = "NOTAGENE1"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(AxisSchemaError, match=str(path).replace("\\", "\\\\")):
        kb.load(path)
    assert kb.load(path, check_genes=False).ids == ["AX1"]


def test_contexts_per_pair_override():
    osm = kb.axes("OSM_SAA").set_index("ligand")
    assert osm.loc["OSM", "sender"] == "neutrophil" and osm.loc["OSM", "receiver"] == "cd8_t"
    assert set(osm.loc[["SAA1"], "sender"]) == {"hepatocyte"}
    assert np.all(kb.axes()["sender"].str.len() > 0)


def test_the_table_and_the_lookups_are_safe_to_edit_and_follow_the_table_order():
    """Sweep 61: kb.table() handed out the cached table (clearing a therapy list emptied every later kb.therapies
    call); a generator of axis ids was used up by the type check (0 rows, no error); therapies within a tier followed
    the order of the ids asked for, not the table's; setting=["tace"] said "unknown treatment setting"."""
    before = kb.therapies("PD1")
    edited = kb.table()
    edited["PD1"]["therapies"].clear()
    pd.testing.assert_frame_equal(kb.therapies("PD1"), before)
    assert len(kb.therapies(a for a in ["PD1", "VEGF"])) == len(kb.therapies(["PD1", "VEGF"])) > 0
    assert len(kb.axes(iter(["PD1", "VEGF"]))) == len(kb.axes(["PD1", "VEGF"])) > 0
    pd.testing.assert_frame_equal(kb.therapies(["VEGF", "HGF_MET"]), kb.therapies(["HGF_MET", "VEGF"]))
    every = kb.therapies()
    some = kb.therapies(["VEGF", "HGF_MET"])
    pd.testing.assert_frame_equal(some, every[every["axis"].isin(["VEGF", "HGF_MET"])].reset_index(drop=True))
    with pytest.raises(TypeError, match="setting must be one treatment setting"):
        kb.therapies(setting=["tace"])
