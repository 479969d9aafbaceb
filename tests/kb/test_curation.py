"""Curation of the shipped kb: corrected biology, LIANA coverage, evidence tiers, trials and settings."""

from __future__ import annotations

import copy
import re

import pandas as pd
import pytest

from hcctme import kb
from hcctme.kb import AxisSchemaError, _schema
from hcctme.kb._schema import split_complex
from hcctme.sig._genes import known_human_symbols

# pivotal trials the issue names: therapy (as in the kb) -> (axis, trial name, NCT id, tier)
PIVOTAL = {
    "atezolizumab + bevacizumab": ("PD1", "IMbrave150", "NCT03434379", "I"),
    "durvalumab + tremelimumab (STRIDE)": ("PD1", "HIMALAYA", "NCT03298451", "I"),
    "nivolumab + ipilimumab": ("PD1", "CheckMate 9DW", "NCT04039607", "I"),
    "camrelizumab + rivoceranib (apatinib)": ("PD1", "CARES-310", "NCT03764293", "I"),
    "toripalimab + bevacizumab": ("PD1", "HEPATORCH", "NCT04723004", "I"),
    "tislelizumab (first line)": ("PD1", "RATIONALE-301", "NCT03412773", "II"),
    "sintilimab + IBI305 (bevacizumab biosimilar)": ("PD1", "ORIENT-32", "NCT03794440", "I"),
    "sorafenib": ("VEGF", "SHARP", "NCT00105443", "I"),
    "lenvatinib": ("VEGF", "REFLECT", "NCT01761266", "I"),
    "regorafenib": ("VEGF", "RESORCE", "NCT01774344", "I"),
    "cabozantinib": ("VEGF", "CELESTIAL", "NCT01908426", "I"),
    "ramucirumab": ("VEGF", "REACH-2", "NCT02435433", "I"),
    "donafenib": ("VEGF", "ZGDH3", "NCT02645981", "I"),
    "tiragolumab + atezolizumab + bevacizumab": ("TIGIT", "MORPHEUS-Liver", "NCT04524871", "III"),
    "cobolimab (TSR-022) + dostarlimab (TSR-042)": ("TIM3", None, "NCT03680508", "III"),
    "relatlimab + nivolumab (+/- bevacizumab)": ("LAG3", None, "NCT04567615", "III"),
    "BMS-986253 + nivolumab": ("CXCR2", None, "NCT04050462", "III"),
    "BMS-813160 + nivolumab (neoadjuvant)": ("CCL2_CCR2", None, "NCT04123379", "III"),
}


def _pair_sets(frame: pd.DataFrame) -> set[tuple[frozenset[str], frozenset[str]]]:
    return {(frozenset(split_complex(a)), frozenset(split_complex(b)))
            for a, b in zip(frame["ligand"], frame["receptor"], strict=True)}


def _pairs(axis: str) -> set[tuple[str, str]]:
    rows = kb.axes(axis)
    rows = rows[rows["interaction"] != "marker"]
    return set(zip(rows["ligand"], rows["receptor"], strict=True))


# ---- corrected biology (review_science.md section 2) ------------------------------------------------
def test_tam_receptor_ligands():
    pairs = _pairs("TAM_RTK")
    assert ("PROS1", "AXL") not in pairs  # Protein S activates TYRO3 and MERTK, not AXL
    assert {("PROS1", "TYRO3"), ("PROS1", "MERTK"), ("GAS6", "AXL")} <= pairs


def test_receptor_complexes_are_complete():
    assert ("HLA-E", "KLRC1_KLRD1") in _pairs("NK_CHECKPOINTS")
    assert ("HLA-E", "KLRC1") not in _pairs("NK_CHECKPOINTS")
    osm = {rec for lig, rec in _pairs("OSM_SAA") if lig == "OSM"}
    assert osm == {"OSMR_IL6ST"}
    clcf1 = {(frozenset(split_complex(lig)), frozenset(split_complex(rec))) for lig, rec in _pairs("CLCF1_CNTFR")}
    assert (frozenset({"CLCF1"}), frozenset({"CNTFR", "IL6ST", "LIFR"})) in clcf1
    assert (frozenset({"CLCF1", "CRLF1"}), frozenset({"CNTFR", "IL6ST"})) in clcf1


def test_enzymes_are_metabolite_pairs_not_contacts():
    adenosine = kb.axes("ADENOSINE")
    assert set(adenosine["interaction"]) == {"metabolite"}
    assert adenosine["mediator"].str.contains("adenosine").all()
    assert {("NT5E", "ADORA2B"), ("ENTPD1", "ADORA2B")} <= _pairs("ADENOSINE")
    contacts = _pair_sets(kb.axis_pairs())
    for ligand in ("ENTPD1", "NT5E", "IDO1", "TDO2", "SLC16A3"):
        assert not any(ligand in lig for lig, _ in contacts), ligand


# ---- every pair against LIANA's consensus resource ---------------------------------------------------
def test_pairs_in_liana_consensus_or_cited():
    li = pytest.importorskip("liana")
    resource = li.resource.select_resource("consensus")  # bundled with liana: works offline
    known = _pair_sets(resource)
    rows = kb.axes()
    rows = rows[rows["interaction"] != "marker"]
    absent = []
    for row in rows.itertuples():
        lig, rec = frozenset(split_complex(row.ligand)), frozenset(split_complex(row.receptor))
        covered = any((lig <= a and rec <= b) or (lig <= b and rec <= a) for a, b in known)
        if not covered:
            absent.append(f"{row.axis}:{row.ligand}->{row.receptor}")
            assert isinstance(row.pair_citation, str) and row.pair_citation, (
                f"{row.axis} {row.ligand}->{row.receptor} is not in LIANA's consensus and cites no paper for it")
    # the pairs LIANA lacks, each carrying its own citation (changes here need a curation decision)
    assert sorted(absent) == sorted([
        "VISTA:VSIR->SELPLG", "NK_CHECKPOINTS:CEACAM1->CEACAM1", "FSTL1:FSTL1->TLR4",
        "ADENOSINE:NT5E->ADORA2A", "ADENOSINE:NT5E->ADORA2B", "IDO1_KYNURENINE:IDO1->AHR",
        "IDO1_KYNURENINE:TDO2->AHR", "LACTATE_MCT:SLC16A3->SLC16A1"])


def test_every_gene_is_a_current_symbol():
    assert not kb.genes() - known_human_symbols()


# ---- identifiers ------------------------------------------------------------------------------------
def test_identifiers_are_well_formed():
    cites = [c for axis in kb.table().axes for c in axis["citations"]]
    pmids = [c["pmid"] for c in cites if c["pmid"]]
    dois = [c["doi"] for c in cites if c["doi"]]
    assert pmids and dois
    assert all(re.fullmatch(r"[1-9][0-9]{6,8}", p) for p in pmids), pmids
    assert all(re.fullmatch(r"10\.[0-9]{4,9}/\S+", d) for d in dois), dois
    ncts = [t["trial"]["nct"] for a in kb.table().axes for t in a["therapies"] if t["trial"] and t["trial"]["nct"]]
    ncts += [n["nct"] for a in kb.table().axes for t in a["therapies"] for n in t["negative_trials"] if n["nct"]]
    assert len(ncts) > 20 and all(re.fullmatch(r"NCT[0-9]{8}", n) for n in ncts)
    # one key, one paper: a key reused across axes always names the same identifiers
    by_key: dict[str, tuple] = {}
    for c in cites:
        assert by_key.setdefault(c["key"], (c["pmid"], c["doi"], c["url"])) == (c["pmid"], c["doi"], c["url"]), c


# ---- tiers, trials, status ----------------------------------------------------------------------------
def test_tiers_and_trials():
    table = kb.therapies()
    assert set(table["tier"]) == set(_schema.TIERS)
    ranks = table["tier"].map({t: i for i, t in enumerate(_schema.TIERS)})
    assert ranks.is_monotonic_increasing  # sorted by tier
    top = table[table["tier"].isin(["I", "II"])]
    assert top["nct"].str.fullmatch(r"NCT[0-9]{8}").all()
    assert (top.loc[top["tier"] == "II", "trial_outcome"] == "positive").all()
    assert top.loc[top["tier"] == "II", "trial_phase"].str.contains("3").all()  # a positive phase 2 is tier III
    assert top.loc[top["tier"] == "I", "trial_outcome"].isin(["positive", "activity"]).all()
    tier1 = table[table["tier"] == "I"]
    assert tier1[["fda", "ema", "nmpa"]].eq("approved").any(axis=1).all()
    assert (tier1["status"] == "approved_hcc").all()
    assert not (table["trial_outcome"] == "negative").any()  # negative trials are never support
    dated = table["checked"] != "unverified"
    assert table.loc[dated, "checked"].str.fullmatch(r"2026-(11-29|12-0[56])").all()  # the curation dates


def test_second_line_approvals_and_negative_phase_3_trials_are_recorded():
    """Sweep 55: nivolumab + ipilimumab and pembrolizumab after sorafenib hold FDA approvals in HCC (2020, full in
    2025; 2018, kept after ODAC's 2021 vote) but were tier III and II with FDA 'unverified'; the EU's first-line
    nivolumab + ipilimumab approval (2025) read 'unverified'; CheckMate 459, LEAP-002 and COSMIC-312's OS were in no
    row, though README says negative phase 3 results are recorded."""
    table = kb.therapies(axis="PD1").set_index("therapy")
    for name in ("nivolumab + ipilimumab (after sorafenib)", "pembrolizumab (after sorafenib)"):
        assert table.loc[name, ["tier", "status", "fda"]].tolist() == ["I", "approved_hcc", "approved"]
    assert table.loc["nivolumab + ipilimumab", "ema"] == "approved"
    assert table.loc["camrelizumab + rivoceranib (apatinib)", "fda"] == "not_approved"  # two FDA CRLs
    negatives = " ".join(kb.therapies()["negative_trials"].astype(str))
    for trial in ("CheckMate 459", "LEAP-002", "COSMIC-312 (overall survival)"):
        assert trial in negatives
    assert table.loc["nivolumab (monotherapy)", "fda"] == "withdrawn"
    # the EU label of toripalimab (2024) holds nasopharyngeal and oesophageal cancer only (sweep 56)
    assert table.loc["toripalimab + bevacizumab", ["ema", "nmpa"]].tolist() == ["not_approved", "approved"]


def test_tepotinib_cites_its_hcc_trials_not_a_review():
    """It cited seed review A only (no PMID, DOI or NCT): now the randomised phase 1b/2 against sorafenib, which met
    its endpoint (tier III: phase 2), and the single-arm trial after sorafenib in the note."""
    row = kb.therapies("HGF_MET").set_index("therapy").loc["tepotinib"]
    expected = ("III", "NCT01988493", "positive", "33972742")
    assert (row["tier"], row["nct"], row["trial_outcome"], row["pmid"]) == expected
    assert "Decaens2021" in row["note"] and "Ryoo BY" in row["citation"]


@pytest.mark.parametrize("therapy", sorted(PIVOTAL))
def test_pivotal_trials(therapy):
    axis, trial, nct, tier = PIVOTAL[therapy]
    row = kb.therapies(axis).set_index("therapy").loc[therapy]
    assert row["nct"] == nct and row["tier"] == tier
    # the paper behind the link is the trial report (or the trial record), never a review or mouse paper
    if trial is not None:
        assert row["trial"] == trial and trial in row["citation"]
    else:
        assert nct in row["citation"]


def test_negative_phase3_recorded_as_negative():
    tigit = kb.therapies("TIGIT").set_index("therapy").loc["tiragolumab + atezolizumab + bevacizumab"]
    assert tigit["tier"] == "III"
    assert "IMbrave152/SKYSCRAPER-14 (NCT05904886, phase 3): negative" in tigit["negative_trials"]
    tivantinib = kb.therapies("HGF_MET").set_index("therapy").loc["tivantinib"]
    assert "METIV-HCC (NCT01755767" in tivantinib["negative_trials"] and tivantinib["status"] == "discontinued"
    pembro = kb.therapies("PD1").set_index("therapy").loc["pembrolizumab (after sorafenib)"]
    assert pembro["trial"] == "KEYNOTE-394" and "KEYNOTE-240" in pembro["negative_trials"]


def test_cabozantinib_on_vegf_axis_cites_celestial():
    row = kb.therapies("VEGF").set_index("therapy").loc["cabozantinib"]
    assert row["trial"] == "CELESTIAL" and row["pmid"] == "29972759"
    hgf = kb.therapies("HGF_MET").set_index("therapy").loc["cabozantinib"]
    assert hgf["pmid"] == "29972759"  # no longer the preclinical Dong 2019 paper


def test_galunisertib_status_is_unverified_not_guessed():
    row = kb.therapies("TGFB").set_index("therapy").loc["galunisertib (LY2157299) + sorafenib"]
    assert row["checked"] == "unverified" and row["tier"] == "III"


# ---- settings -----------------------------------------------------------------------------------------
def test_settings_select_axes_and_therapies():
    assert set(kb.axes(setting="haic")["axis"]) == {"HAIC_OXALIPLATIN"}
    tace = set(kb.axes(setting="tace")["axis"])
    assert {"TACE_S100A9", "CD47_SIRPA", "IL6", "PD1", "VEGF"} <= tace and "HAIC_OXALIPLATIN" not in tace
    assert "TACE_S100A9" in set(kb.axes(setting="conversion")["axis"])
    tace_drugs = kb.therapies(setting="tace")
    assert set(tace_drugs["therapy"]) == {"durvalumab + bevacizumab + TACE"}
    assert tace_drugs["settings"].str.contains("tace").all()
    first = kb.therapies("PD1", setting="systemic_first_line")
    assert "atezolizumab + bevacizumab" in set(first["therapy"]) and "pembrolizumab (after sorafenib)" not in set(
        first["therapy"])
    assert set(kb.therapies(setting="adjuvant")["therapy"]) == {"atezolizumab + bevacizumab (adjuvant)"}
    for call in (kb.axes, kb.therapies):
        with pytest.raises(ValueError, match="unknown treatment setting"):
            call(setting="second_line")


def test_intrinsic_axes_are_markers_only():
    haic = kb.axes("HAIC_OXALIPLATIN")
    assert set(haic["interaction"]) == {"marker"}
    assert set(haic["ligand"]) == {"PRMT3", "ATP7A", "ATP7B", "SLC22A2", "XRCC6"}
    assert not set(kb.axis_pairs()["axis"]) & {"HAIC_OXALIPLATIN", "TACE_S100A9", "SORAFENIB_FERROPTOSIS"}


# ---- validator rules for trials and tiers -------------------------------------------------------------
def _doc_with_therapy(**therapy) -> dict:
    base = {"name": "drug", "drug_class": "c", "target": "SPP1", "tier": "II", "settings": ["systemic_first_line"],
            "status": "trial", "approval": {"FDA": "unverified", "EMA": "unverified", "NMPA": "unverified"},
            "trial": {"name": "T1", "nct": "NCT01234567", "phase": "3", "randomised": True, "outcome": "positive"},
            "citation": "Ref1", "checked": "2026-11-29"}
    base.update(therapy)
    return {"version": 1, "axes": [{
        "id": "AX1", "name": "an axis", "direction": "up", "mechanism": "m", "sender": ["macrophage"],
        "receiver": ["fibroblast"], "pairs": [{"ligand": "SPP1", "receptor": "CD44", "evidence": "paper"}],
        "resistance_to": [], "settings": ["systemic_first_line"], "therapies": [base], "evidence": "e",
        "evidence_level": "clinical", "hcc": True,
        "citations": [{"key": "Ref1", "citation": "A et al.", "pmid": "36708811", "checked": ["pmid"]}],
        "seed": ["B"]}]}


def _check(doc):
    return _schema.validate(doc, where="t.yaml", known_symbols=known_human_symbols())


def test_valid_tier_ii_document():
    _, axes = _check(_doc_with_therapy())
    assert axes[0]["therapies"][0]["trial"]["nct"] == "NCT01234567"


@pytest.mark.parametrize("change, message", [
    ({"trial": {"name": "T1", "nct": "NCT123", "phase": "3", "randomised": True, "outcome": "positive"}},
     "not a ClinicalTrials.gov id"),
    ({"trial": {"name": "T1", "nct": "NCT01234567", "phase": "3", "randomised": True, "outcome": "negative"}},
     "a negative trial is not support"),
    ({"trial": {"name": "T1", "nct": "NCT01234567", "phase": "2", "randomised": False, "outcome": "activity"}},
     "tier II needs a positive randomised phase 3 trial"),
    ({"trial": {"name": "T1", "nct": "NCT01234567", "phase": "1b/2", "randomised": True, "outcome": "positive"}},
     "tier II needs a positive randomised phase 3 trial"),
    ({"trial": None}, "needs its trial with an NCT id"),
    ({"settings": []}, "needs the setting"),
    ({"tier": "I"}, "tier I needs status approved_hcc"),
    ({"status": "approved_hcc"}, "status approved_hcc but no region records an approval"),
    ({"negative_trials": [{"name": "T2", "phase": "3", "randomised": True, "outcome": "positive"}]},
     "every negative_trials entry must have outcome negative"),
    ({"tier": "III", "trial": None, "status": "trial"}, "tier III needs a clinical trial"),
    ({"trial": {"name": "T1", "nct": "NCT01234567", "phase": "3", "randomised": "yes", "outcome": "positive"}},
     "randomised must be true or false"),
])
def test_validator_trial_rules(change, message):
    doc = _doc_with_therapy(**change)
    if change.get("trial", 0) is None:
        del doc["axes"][0]["therapies"][0]["trial"]
    with pytest.raises(AxisSchemaError, match=message):
        _check(doc)


def test_validator_tier_i_with_approval():
    doc = _doc_with_therapy(tier="I", status="approved_hcc",
                            approval={"FDA": "approved", "EMA": "unverified", "NMPA": "not_approved"})
    _, axes = _check(copy.deepcopy(doc))
    assert axes[0]["therapies"][0]["approval"]["FDA"] == "approved"


def test_citations_md_lists_every_key_and_trial():
    from importlib import resources

    text = resources.files("hcctme.kb").joinpath("CITATIONS.md").read_text(encoding="utf-8")
    keys = {c["key"] for axis in kb.table().axes for c in axis["citations"]}
    missing = sorted(k for k in keys if f"| {k} |" not in text)
    assert not missing, f"kb/CITATIONS.md lacks citation keys {missing}"
    for trial in ("CELESTIAL", "IMbrave152/SKYSCRAPER-14", "NCT05904886", "NCT03680508", "NCT05337137"):
        assert trial in text


def test_citations_md_regimen_table_is_the_kb():
    """CITATIONS.md's "Tier I/II regimens" table says how each status was checked: its tier and FDA / EMA / NMPA
    columns are the shipped kb's (session 57: the kb recorded toripalimab + bevacizumab EMA not_approved, the table
    still said unverified)."""
    from importlib import resources

    text = resources.files("hcctme.kb").joinpath("CITATIONS.md").read_text(encoding="utf-8")
    table = text.split("## Tier I/II regimens")[1].split("\n\n")[1]
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in table.splitlines()
            if line.startswith("|") and not line.startswith(("|---", "| therapy"))]
    therapies = kb.therapies()
    assert len(rows) >= 10
    for name, tier, setting, fda, ema, nmpa, *_ in rows:
        kb_rows = therapies[(therapies["therapy"] == name) & therapies["settings"].str.contains(setting)]
        assert len(kb_rows), name
        for _, row in kb_rows.iterrows():
            assert (row["tier"], row["fda"], row["ema"], row["nmpa"]) == (tier, fda, ema, nmpa), (name, row["axis"])
