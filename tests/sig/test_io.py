"""Signature schema validator, loaders (GMT, decoupler net, dict, YAML) and the offline gene tables."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import hcctme as ht
from hcctme.sig import SignatureSchemaError, SignatureSet, _genes, _io
from hcctme.sig._model import Signature


def known() -> frozenset[str]:
    return _genes.known_human_symbols()


def entry(**changes) -> dict:
    """A valid library entry; keyword arguments replace fields (None removes one)."""
    base = {
        "id": "TEST_SIG",
        "name": "A test signature",
        "collection": "test_states",
        "cell_context": "macrophage",
        "species": "human",
        "genes_up": ["SPP1", "CD274", "MME"],
        "genes_down": ["FOLR2"],
        "weights": {"SPP1": 2.0},
        "source": {"citation": "Someone 2020 Journal", "pmid": "32976798", "where": "Table S3"},
        "evidence": "published_list",
        "role": "resistance",
        "version": 1,
    }
    for key, value in changes.items():
        if value is None:
            base.pop(key, None)
        else:
            base[key] = value
    return base


def write(path: Path, entries) -> Path:
    path.write_text(yaml.safe_dump(entries, sort_keys=False), encoding="utf-8")
    return path


def read_strict(path: Path):
    return _io.read_yaml(path, strict=True, known_symbols=known())


# --------------------------------------------------------------------------------------------------
# Schema validator: each error names the file and the entry
# --------------------------------------------------------------------------------------------------
def test_valid_entry_passes(tmp_path):
    sigs = read_strict(write(tmp_path / "ok.yaml", [entry()]))
    assert len(sigs) == 1
    sig = sigs[0]
    assert sig.genes_up == ("SPP1", "CD274", "MME") and sig.genes_down == ("FOLR2",)
    assert sig.weights["SPP1"] == 2.0
    assert "PMID 32976798" in sig.citation


def test_validation_fields_are_read_and_round_trip(tmp_path):
    sigs = read_strict(write(tmp_path / "ok.yaml", [entry(validated=True, validation="GSE0 (toy): AUROC 0.91"),
                                                   entry(id="UNTESTED", validated=False,
                                                         validation="no labelled dataset")]))
    assert (sigs[0].validated, sigs[0].validation) == (True, "GSE0 (toy): AUROC 0.91")
    assert (sigs[1].validated, sigs[1].validation) == (False, "no labelled dataset")
    again = read_strict(write(tmp_path / "again.yaml", yaml.safe_load(_io.to_yaml(SignatureSet(sigs)))))
    assert [(s.validated, s.validation) for s in again] == [(s.validated, s.validation) for s in sigs]


def test_excluded_genes_are_read_and_round_trip(tmp_path):
    reason = {"CD74": "HLA class II (antigen-presenting cells)"}
    sigs = read_strict(write(tmp_path / "ok.yaml", [entry(excluded=reason)]))
    assert dict(sigs[0].excluded) == {"CD74": "HLA class II (antigen-presenting cells)"}
    again = read_strict(write(tmp_path / "again.yaml", yaml.safe_load(_io.to_yaml(SignatureSet(sigs)))))
    assert dict(again[0].excluded) == dict(sigs[0].excluded)
    assert "excluded" not in read_strict(write(tmp_path / "none.yaml", [entry()]))[0].to_dict()


def test_entry_without_validation_fields_makes_no_claim(tmp_path):
    sig = read_strict(write(tmp_path / "ok.yaml", [entry()]))[0]
    assert sig.validated is None and sig.validation == ""
    assert "validated" not in sig.to_dict() and "validation" not in sig.to_dict()


def src(**changes):
    base = {"citation": "Someone 2020 Journal", "pmid": "32976798", "where": "Table S3"}
    for key, value in changes.items():
        if value is None:
            base.pop(key)
        else:
            base[key] = value
    return base


ERROR_CASES = {
    "unknown_field": (entry(colour="blue"), "unknown field"),
    "empty_genes_up": (entry(genes_up=[]), "genes_up is empty"),
    "unknown_cell_context": (entry(cell_context="kupffer_blob"), "unknown cell_context"),
    "unknown_role": (entry(role="villain"), "unknown role"),
    "unknown_evidence": (entry(evidence="hearsay"), "unknown evidence"),
    "unknown_species": (entry(species="zebrafish"), "unknown species"),
    "genes_not_a_list": (entry(genes_up="SPP1 CD274"), "must be a list"),
    "genes_down_not_a_list": (entry(genes_down={"FOLR2": 1}), "must be a list"),
    "non_string_gene": (entry(genes_up=["SPP1", 42]), "non-string"),
    "gene_listed_twice": (entry(genes_up=["SPP1", "SPP1"]), "twice"),
    "gene_up_and_down": (entry(genes_down=["SPP1"], weights={}), "both up and down"),
    "weight_for_unknown_gene": (entry(weights={"CD8A": 1.5}), "not in genes_up/genes_down"),
    "weight_not_a_number": (entry(weights={"SPP1": "high"}), "must be a number"),
    "unknown_human_symbol": (entry(genes_up=["SPP1", "NOTAGENE1"]), "not current human symbols"),
    "previous_symbol_in_library": (entry(genes_up=["SPP1", "IL8"]), "not current human symbols"),
    "excluded_not_a_mapping": (entry(excluded=["CD74"]), "excluded must be a mapping"),
    "excluded_without_reason": (entry(excluded={"CD74": " "}), "non-empty reason"),
    "excluded_gene_still_listed": (entry(excluded={"SPP1": "other lineage"}), "both excluded and listed"),
    "missing_citation": (entry(source=src(citation=None)), "citation"),
    "missing_pmid_doi_url": (entry(source=src(pmid=None)), "pmid, doi or url"),
    "missing_where": (entry(source=src(where=None)), "where"),
    "unknown_source_field": (entry(source=src(journal="Cell")), "unknown source field"),
    "source_not_a_mapping": (entry(source="Sharma 2020"), "source must be a mapping"),
    "missing_required_field": (entry(role=None), "missing required field 'role'"),
    "bad_id": (entry(id="has space"), "id must be"),
    "bad_version": (entry(version="one"), "version must be a positive integer"),
    "validated_not_bool": (entry(validated="yes", validation="GSE0 AUROC 0.9"), "validated must be true or false"),
    "validation_not_text": (entry(validated=True, validation=0.91), "validation must be text"),
    "validated_without_reason": (entry(validated=False), "validation is empty"),
    "name_not_text": (entry(name=["x", "y"]), "name must be text, got list"),
    "collection_not_text": (entry(collection={"a": 1}), "collection must be text, got dict"),
    "citation_not_text": (entry(source={"citation": {"a": 1}, "pmid": "1", "where": "Table 1"}),
                          "source.citation must be text, got dict"),
    "weight_negative": (entry(weights={"SPP1": -0.5}), "must be a positive finite number"),
    "weight_zero": (entry(weights={"SPP1": 0}), "must be a positive finite number"),
    "weight_nan": (entry(weights={"SPP1": float("nan")}), "must be a positive finite number"),
    "weight_inf": (entry(weights={"SPP1": float("inf")}), "must be a positive finite number"),
}


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_schema_errors_name_file_and_entry(tmp_path, case):
    bad, message = ERROR_CASES[case]
    path = write(tmp_path / f"{case}.yaml", [entry(id="GOOD_ONE"), bad])
    with pytest.raises(SignatureSchemaError) as err:
        read_strict(path)
    text = str(err.value)
    assert str(path) in text
    assert message in text
    if isinstance(bad.get("id"), str):
        assert repr(bad["id"]) in text


def test_unknown_symbol_error_lists_the_genes(tmp_path):
    path = write(tmp_path / "lib.yaml", [entry(genes_up=["SPP1", "NOTAGENE1", "IL8"])])
    with pytest.raises(SignatureSchemaError, match=r"NOTAGENE1.*IL8|IL8.*NOTAGENE1"):
        read_strict(path)


def test_duplicate_id_within_file(tmp_path):
    path = write(tmp_path / "dup.yaml", [entry(), entry(name="again")])
    with pytest.raises(SignatureSchemaError, match=r"dup\.yaml: signature 'TEST_SIG': duplicate id"):
        read_strict(path)


def test_duplicate_id_across_files(tmp_path):
    write(tmp_path / "a.yaml", [entry()])
    write(tmp_path / "b.yaml", [entry(id="OTHER"), entry()])
    with pytest.raises(SignatureSchemaError) as err:
        _io.read_yaml_dir(tmp_path, strict=True, known_symbols=known())
    assert "b.yaml" in str(err.value) and "'TEST_SIG'" in str(err.value) and "a.yaml" in str(err.value)


def test_entry_not_a_mapping_and_file_not_a_list(tmp_path):
    with pytest.raises(SignatureSchemaError, match="each entry must be a mapping"):
        read_strict(write(tmp_path / "x.yaml", ["just a string"]))
    with pytest.raises(SignatureSchemaError, match="YAML list"):
        read_strict(write(tmp_path / "y.yaml", entry()))
    empty = tmp_path / "empty.yaml"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(SignatureSchemaError, match="empty"):
        read_strict(empty)


def test_user_yaml_needs_only_id_and_genes(tmp_path):
    path = write(tmp_path / "user.yaml", [{"id": "MINE", "genes_up": ["SPP1", "NOTAGENE1"]}])
    sigs = ht.sig.load(path)
    assert sigs.ids == ["MINE"] and sigs["MINE"].genes_up == ("SPP1", "NOTAGENE1")
    # a user file still gets the structural checks
    write(tmp_path / "bad.yaml", [{"id": "MINE", "genes_up": []}])
    with pytest.raises(SignatureSchemaError, match=r"bad\.yaml.*genes_up is empty"):
        ht.sig.load(tmp_path / "bad.yaml")


def test_mouse_library_entry_is_not_checked_against_human_symbols(tmp_path):
    path = write(tmp_path / "m.yaml", [entry(species="mouse", genes_up=["Cd8a", "Spp1"], genes_down=[],
                                             weights={})])
    assert read_strict(path)[0].genes_up == ("Cd8a", "Spp1")


# --------------------------------------------------------------------------------------------------
# Loaders
# --------------------------------------------------------------------------------------------------
@pytest.fixture
def user_set() -> SignatureSet:
    return SignatureSet(
        [
            Signature(id="TAM2", genes_up=("SPP1", "APOE", "TREM2"), name="SPP1+ TAM"),
            Signature(id="TEX", genes_up=("PDCD1", "HAVCR2", "TOX"), genes_down=("TCF7", "IL7R"),
                      weights={"PDCD1": 2.0, "TCF7": 0.5}),
            Signature(id="NEU", genes_up=("MME", "ALPL", "CXCR2")),
        ]
    )


def test_gmt_round_trip(tmp_path, user_set):
    path = tmp_path / "sets.gmt"
    text = user_set.to_gmt(path)
    assert path.read_text(encoding="utf-8") == text
    loaded = ht.sig.load(path)
    assert isinstance(loaded, SignatureSet)
    # signed signatures are written as ID_UP / ID_DOWN lines (GMT has no sign)
    assert loaded.ids == ["TAM2", "TEX_UP", "TEX_DOWN", "NEU"]
    assert loaded["TAM2"].genes_up == user_set["TAM2"].genes_up
    assert loaded["TEX_UP"].genes_up == user_set["TEX"].genes_up
    assert loaded["TEX_DOWN"].genes_up == user_set["TEX"].genes_down
    assert loaded["NEU"].genes_up == user_set["NEU"].genes_up
    # writing again gives the same gene lines
    again = ht.sig.load(str(path)).to_gmt()
    assert [line.split("\t")[2:] for line in again.splitlines()] == [
        line.split("\t")[2:] for line in text.splitlines()
    ]


def test_gmt_strings_and_comments(tmp_path):
    path = tmp_path / "x.gmt"
    path.write_text("# comment\n\nSET A\tdesc\tCD8A\tCD8B\t\tCD8A\n", encoding="utf-8")
    sigs = ht.sig.load(str(path))
    assert sigs.ids == ["SET_A"] and sigs["SET_A"].genes_up == ("CD8A", "CD8B")
    assert sigs["SET_A"].name == "SET A"


def test_malformed_gmt_names_line(tmp_path):
    path = tmp_path / "bad.gmt"
    path.write_text("OK\tdesc\tCD8A\tCD8B\nBROKEN LINE WITH SPACES NOT TABS\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.gmt:2: malformed GMT line"):
        ht.sig.load(path)


def test_gmt_other_errors(tmp_path):
    empty = tmp_path / "empty.gmt"
    empty.write_text("\n# nothing\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no gene sets"):
        ht.sig.load(empty)
    nogenes = tmp_path / "nogenes.gmt"
    nogenes.write_text("A\tdesc\t\t\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"nogenes\.gmt:1.*genes_up is empty"):
        ht.sig.load(nogenes)
    repeated = tmp_path / "rep.gmt"
    repeated.write_text("A\td\tCD8A\nA\td\tCD4\n", encoding="utf-8")
    with pytest.raises(ValueError, match="repeated"):
        ht.sig.load(repeated)
    binary = tmp_path / "bin.gmt"
    binary.write_bytes(b"\xff\xfe\x00\x81\x82")
    with pytest.raises(ValueError, match="not a UTF-8 text file"):
        ht.sig.load(binary)


def test_net_round_trip_signed_and_weighted(user_set):
    net = user_set.to_net()
    assert list(net.columns) == ["source", "target", "weight"]
    tex = net[net["source"] == "TEX"].set_index("target")["weight"]
    assert tex["PDCD1"] == 2.0 and tex["HAVCR2"] == 1.0 and tex["TCF7"] == -0.5 and tex["IL7R"] == -1.0
    loaded = ht.sig.load(net)
    assert loaded.ids == user_set.ids
    for sig in user_set:
        back = loaded[sig.id]
        assert back.genes_up == sig.genes_up
        assert back.genes_down == sig.genes_down
    pd.testing.assert_frame_equal(loaded.to_net(), net)


def test_net_from_decoupler_style_frame():
    net = pd.DataFrame({"source": ["A", "A", "A", "B"], "target": ["CD8A", "GZMB", "TCF7", "SPP1"],
                        "weight": [1, 1, -1, 1]})
    sigs = ht.sig.load(net)
    assert sigs["A"].genes_up == ("CD8A", "GZMB") and sigs["A"].genes_down == ("TCF7",)
    no_weight = ht.sig.load(net.drop(columns="weight"))
    assert no_weight["A"].genes_up == ("CD8A", "GZMB", "TCF7")


def test_net_errors():
    with pytest.raises(KeyError, match="target"):
        ht.sig.load(pd.DataFrame({"source": ["A"], "gene": ["CD8A"]}))
    with pytest.raises(ValueError, match="empty"):
        ht.sig.load(pd.DataFrame({"source": [], "target": []}))
    with pytest.raises(ValueError, match="must hold non-zero finite numbers"):
        ht.sig.load(pd.DataFrame({"source": ["A"], "target": ["CD8A"], "weight": ["heavy"]}))
    with pytest.raises(ValueError, match=r"non-zero finite numbers; found \[inf\]"):  # ULM failed in decoupler
        ht.sig.load(pd.DataFrame({"source": ["A", "A"], "target": ["CD8A", "CD4"], "weight": [np.inf, 1.0]}))


def test_weighted_net_round_trips_exactly():
    """A down gene's weight is a magnitude: to_net -> load gave it back negated (and scored differently)."""
    net = pd.DataFrame({"source": ["A"] * 4, "target": ["CD8A", "GZMB", "CD4", "TCF7"],
                        "weight": [2.0, 1.0, -3.0, -1.0]})
    sigs = ht.sig.load(net)
    assert dict(sigs["A"].weights) == {"CD8A": 2.0, "CD4": 3.0}
    pd.testing.assert_frame_equal(sigs.to_net(), net)
    assert ht.sig.load(sigs.to_net()) == sigs


@pytest.mark.parametrize(("value", "message"), [
    ({"up": ["CD8A", "CD8B", "GZMB"], "down": "CD4"}, r"down genes as a list .* not str 'CD4' \(e\.g\. \['CD4'\]\)"),
    (None, "up genes as a list of gene symbols, not NoneType"),
    (5, "up genes as a list of gene symbols, not int 5"),
])
def test_dict_values_that_are_not_gene_lists_are_refused(value, message):
    """A string of down genes was read letter by letter ('C', 'D', '4'); None and ints gave Python's iteration error."""
    with pytest.raises(TypeError, match=message):
        ht.sig.load({"A": value})


def test_gmt_names_descriptions_and_gene_fields(tmp_path):
    path = tmp_path / "sets.GMT"  # the suffix in any case
    path.write_text("Treg-é\tdesc\tFOXP3\tIL2RA\tCTLA4\n", encoding="utf-8")
    sigs = ht.sig.load(path)
    assert sigs.ids == ["Treg__"] and sigs[0].name == "Treg-é"  # ASCII ids; the name kept (it was refused)
    spaced = tmp_path / "spaced.gmt"
    spaced.write_text("S\tdesc\tCD8A CD8B\tGZMB\n")
    with pytest.raises(ValueError, match="gene field 'CD8A CD8B' holds a space"):
        ht.sig.load(spaced)
    tabbed = ht.sig.load({"T": ["CD8A", "CD8B"]})
    tabbed = SignatureSet([dataclasses.replace(tabbed[0], name="line1\nline2\twith tab")])
    assert ht.sig.load(_write(tmp_path / "t.gmt", tabbed.to_gmt()))["T"].genes_up == ("CD8A", "CD8B")


def _write(path, text):
    path.write_text(text)
    return path


def test_an_existing_path_without_a_dot_is_read_as_a_path(tmp_path, monkeypatch):
    (tmp_path / "mysigs").mkdir()
    ht.sig.to_yaml(ht.sig.load({"A": ["CD8A", "CD8B", "GZMB"]}), tmp_path / "mysigs" / "a.yaml")
    monkeypatch.chdir(tmp_path)
    assert ht.sig.load("mysigs").ids == ["A"]
    with pytest.raises(KeyError, match="no signature 'nothere'"):
        ht.sig.load("nothere")


def test_dict_plain_and_signed():
    sigs = ht.sig.load({"T": ["CD8A", "CD3E"], "S": {"up": ["SPP1"], "down": ["FOLR2"]}})
    assert sigs.ids == ["T", "S"]
    assert sigs["T"].genes_up == ("CD8A", "CD3E") and sigs["T"].genes_down == ()
    assert sigs["S"].genes_up == ("SPP1",) and sigs["S"].genes_down == ("FOLR2",)
    assert sigs.to_dict() == {"T": ["CD8A", "CD3E"], "S": ["SPP1"]}


def test_dict_errors():
    with pytest.raises(TypeError, match="up genes as a list of gene symbols"):
        ht.sig.load({"T": "CD8A"})
    with pytest.raises(ValueError, match="empty"):
        ht.sig.load({})
    with pytest.raises(ValueError, match="'up' and 'down'"):
        ht.sig.load({"T": {"upp": ["CD8A"]}})
    with pytest.raises(SignatureSchemaError, match="genes_up is empty"):
        ht.sig.load({"T": []})


def test_yaml_file_and_dir_round_trip(tmp_path, user_set):
    one = tmp_path / "one.yaml"
    ht.sig.to_yaml(user_set, one)
    loaded = ht.sig.load(one)
    assert [s.to_dict() for s in loaded] == [s.to_dict() for s in user_set]
    directory = tmp_path / "lib"
    directory.mkdir()
    _io.to_yaml(user_set.subset(["TAM2"]), directory / "a.yaml")
    _io.to_yaml(user_set.subset(["TEX", "NEU"]), directory / "b.yml")
    from_dir = ht.sig.load(directory)
    assert sorted(from_dir.ids) == sorted(user_set.ids)
    assert from_dir["TEX"].weights == user_set["TEX"].weights


def test_missing_files_and_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ht.sig.load(tmp_path / "nope.gmt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ht.sig.load(str(tmp_path / "nope.yaml"))
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    with pytest.raises(FileNotFoundError, match=r"no \*\.yaml"):
        ht.sig.load(empty_dir)
    other = tmp_path / "x.csv"
    other.write_text("a,b\n", encoding="utf-8")
    with pytest.raises(ValueError, match="unknown signature file type"):
        ht.sig.load(other)
    with pytest.raises(TypeError, match="cannot load signatures"):
        ht.sig.load(42)
    with pytest.raises(ValueError, match="species"):
        ht.sig.load({"T": ["CD8A"]}, species="rat")


def test_bad_yaml_is_a_value_error(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("- id: A\n  genes_up: [CD8A, CD3E\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"broken\.yaml: not valid YAML"):
        ht.sig.load(path)


# --------------------------------------------------------------------------------------------------
# Mouse signatures: orthologs from the shipped table, never by changing case
# --------------------------------------------------------------------------------------------------
def test_mouse_dict_maps_through_ortholog_table():
    table = _genes.mouse_to_human()
    sigs = ht.sig.load({"MHCII": ["Cd8a", "Cd3e", "H2-Ab1", "H2-Aa"]}, species="mouse")
    sig = sigs["MHCII"]
    assert sig.species == "human"
    assert sig.genes_up[:2] == ("CD8A", "CD3E")
    # H2-Ab1 upper-cased would be "H2-AB1", which is not a human gene; the table gives an HLA gene
    assert table["H2-Ab1"].startswith("HLA-DQB")
    assert table["H2-Aa"].startswith("HLA-DQA")
    assert sig.genes_up[2:] == (table["H2-Ab1"], table["H2-Aa"])
    assert "H2-AB1" not in sig.genes_up and "H2-AB1" not in known()


def test_mouse_case_change_would_be_wrong():
    # orthologs whose human symbol is not the upper-cased mouse symbol
    table = _genes.mouse_to_human()
    for mouse in ("H2-Ab1", "H2-Eb1", "Fam172a"):
        assert table[mouse] != mouse.upper()
    sigs = ht.sig.load({"S": ["Fam172a", "Cd274"]}, species="mouse")
    assert sigs["S"].genes_up == (table["Fam172a"], "CD274")


def test_mouse_gmt_and_net(tmp_path, caplog):
    path = tmp_path / "m.gmt"
    path.write_text("S\tmouse\tCd8a\tGzmb\tNotAMouseGene1\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="hcctme"):
        sigs = ht.sig.load(path, species="mouse")
    assert sigs["S"].genes_up == ("CD8A", "GZMB")
    assert "NotAMouseGene1" in caplog.text
    net = pd.DataFrame({"source": ["S", "S"], "target": ["Cd8a", "Tcf7"], "weight": [2.0, -1.0]})
    signed = ht.sig.load(net, species="mouse")["S"]
    assert signed.genes_up == ("CD8A",) and signed.genes_down == ("TCF7",)
    assert dict(signed.weights) == {"CD8A": 2.0}


def test_mouse_set_without_orthologs_is_an_error():
    with pytest.raises(ValueError, match=r"no human ortholog|none of its mouse genes"):
        ht.sig.load({"S": ["NotAMouseGene1", "CD8A"]}, species="mouse")


def test_mouse_yaml_entry(tmp_path):
    path = write(tmp_path / "m.yaml", [{"id": "M", "species": "mouse", "genes_up": ["Cd8a", "Cd8b1"]}])
    sig = ht.sig.load(path)["M"]
    assert sig.species == "human" and sig.genes_up[0] == "CD8A"


# --------------------------------------------------------------------------------------------------
# The offline gene tables
# --------------------------------------------------------------------------------------------------
def test_human_genes_table():
    table = _genes.human_genes()
    assert list(table.columns) == ["symbol", "ensembl_id"]
    assert len(table) > 40_000
    assert (table["symbol"] != "").all()
    assert table["ensembl_id"].str.match(r"^ENSG\d{11}$").all()
    for symbol in ("CD8A", "MME", "CD274", "SPP1", "FOLR2", "MT1G", "CXCR2P1", "VSIR", "CCN2"):
        assert symbol in known()
    assert _genes.ensembl_to_symbol()["ENSG00000153563"] == "CD8A"


def test_mouse_ortholog_table():
    table = _genes.mouse_orthologs()
    assert list(table.columns) == ["mouse_symbol", "mouse_ensembl_id", "human_symbol", "source"]
    assert table["mouse_ensembl_id"].is_unique  # one preferred ortholog per mouse gene
    assert table["mouse_ensembl_id"].str.match(r"^ENSMUSG\d{11}$").all()
    assert set(table["source"]) <= {"hcop_curated", "biomart_one2one", "biomart_high", "biomart_low", "hcop"}
    assert set(table["human_symbol"]) <= known()
    assert _genes.mouse_to_human()["Cd8a"] == "CD8A"
    assert _genes.human_to_mouse()["CD8A"] == "Cd8a"
    assert _genes.ensembl_to_symbol()["ENSMUSG00000053977"] == "CD8A"


def test_allowlist_table():
    path = Path(_genes.__file__).parent / "data" / "symbol_allowlist.tsv"
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.split("\t") == ["symbol", "reason"]
    allow = _genes.allowlist()
    assert allow, "the allow-list is empty"
    in_tables = set(_genes.human_genes()["symbol"])
    for symbol, reason in allow.items():
        assert symbol and reason.strip(), f"{symbol!r} needs a reason"
        assert symbol not in in_tables, f"{symbol} is in human_genes.tsv.gz; it needs no allow-list entry"


REQUIRED_ALIASES = {
    "CD10": "MME", "PD-L1": "CD274", "PDL1": "CD274", "B7-H1": "CD274", "PD-1": "PDCD1",
    "PD-L2": "PDCD1LG2", "TIM-3": "HAVCR2", "TIM3": "HAVCR2", "2B4": "CD244", "CD66b": "CEACAM8",
    "CD15": "FUT4", "VISTA": "VSIR", "CD155": "PVR", "LAG-3": "LAG3", "CTLA-4": "CTLA4", "IL8": "CXCL8",
    "CD133": "PROM1", "CD90": "THY1", "CD73": "NT5E", "CD39": "ENTPD1", "Gal-9": "LGALS9", "OPN": "SPP1",
    "CD44v": "CD44", "SIRPa": "SIRPA", "aSMA": "ACTA2", "alpha-SMA": "ACTA2", "CD11b": "ITGAM",
    "CD16": "FCGR3A", "CD206": "MRC1", "HLA-DR": "HLA-DRA", "LOX-1": "OLR1", "CD8": "CD8A", "CD3": "CD3E",
    "NKG2A": "KLRC1", "NKG2D": "KLRK1", "VEGF": "VEGFA", "VEGFR2": "KDR", "c-MET": "MET",
    "SDF-1": "CXCL12", "MCP-1": "CCL2", "M-CSF": "CSF1", "SEPT11": "SEPTIN11", "WISP2": "CCN5",
    "CTGF": "CCN2", "CYR61": "CCN1", "FIGF": "VEGFD", "C19orf59": "MCEMP1", "EMR2": "ADGRE2",
    "EMR3": "ADGRE3", "GPR97": "ADGRG3", "H3F3A": "H3-3A", "H3F3B": "H3-3B", "HIST1H2BC": "H2BC4",
    "KIAA1199": "CEMIP", "FAM65B": "RIPOR2", "FAM101B": "RFLNB", "WARS": "WARS1", "MARCH1": "MARCHF1",
    "SEPP1": "SELENOP", "DDX58": "RIGI", "GRASP": "TAMALIN", "ATP5G3": "ATP5MC3",
}


def test_alias_table():
    path = Path(_genes.__file__).parent / "data" / "aliases.tsv"
    table = _genes._read("aliases.tsv")
    assert list(table.columns) == ["alias", "symbol", "kind", "source"]
    assert path.read_text(encoding="utf-8").count("\n") > 100
    # every alias maps to a known current symbol, is not itself a current symbol and is unambiguous
    unknown = sorted(set(table["symbol"]) - known())
    assert not unknown, f"aliases map to symbols that are not known: {unknown}"
    clash = sorted(set(table["alias"]) & known())
    assert not clash, f"aliases that are current symbols: {clash}"
    folded = table.assign(key=table["alias"].str.upper()).groupby("key")["symbol"].nunique()
    assert (folded == 1).all(), folded[folded > 1]
    assert set(table["kind"]) <= {"cd_name", "protein_name", "alias_symbol", "previous_symbol"}
    assert (table["source"].str.strip() != "").all()
    for alias, symbol in REQUIRED_ALIASES.items():
        assert _genes.current_symbol(alias) == symbol, alias
        assert _genes.current_symbol(alias.lower()) in (symbol, None)


def test_current_symbol_rules():
    assert _genes.current_symbol("CD274") == "CD274"
    assert _genes.current_symbol("pd-l1") == "CD274"  # aliases match case-insensitively
    assert _genes.current_symbol("C19ORF53") == "C19orf53"  # upper-cased orf symbols
    assert _genes.current_symbol("NOTAGENE1") is None
    # an alias that differs from a symbol only by case matches exactly: mouse Sirpa is not SIRPA
    assert _genes.current_symbol("SIRPa") == "SIRPA"
    assert _genes.current_symbol("Sirpa") is None
    assert _genes.current_symbol("Cd8a") is None


def test_library_signatures_use_known_symbols():
    directory = ht.sig.library_dir()
    if not list(directory.glob("*.yaml")):
        pytest.skip("no library YAML files yet")
    sigs = ht.sig.library()
    missing = {s.id: [g for g in s.genes if g not in known()] for s in sigs if s.species == "human"}
    assert not any(missing.values()), {k: v for k, v in missing.items() if v}


def test_names_that_become_one_id_are_named_with_the_fix(tmp_path):
    """Sweep 54: "CD8+ T" and "CD8- T" read "gene set names repeated: ['CD8__T']" (GMT), "duplicate signature
    ids" (net), and a dict refused such names outright while the other loaders renamed them."""
    gmt = tmp_path / "sets.gmt"
    gmt.write_text("CD8+ T\tcytotoxic\tCD8A\tCD8B\tGZMB\nCD8- T\thelper\tCD4\tIL7R\tCCR7\n")
    net = pd.DataFrame({"source": ["CD8+ T", "CD8- T"], "target": ["CD8A", "CD4"], "weight": [1.0, 1.0]})
    message = r"names \['CD8\+ T', 'CD8- T'\] all become the id 'CD8__T'.*rename them"
    for source in (gmt, net, {"CD8+ T": ["CD8A", "CD8B"], "CD8- T": ["CD4", "IL7R"]}):
        with pytest.raises(SignatureSchemaError, match=message):
            ht.sig.load(source)
    loaded = ht.sig.load({"CD8+ T": ["CD8A", "CD8B"], "CD4 T": ["CD4", "IL7R"]})
    assert list(loaded.ids) == ["CD8__T", "CD4_T"] and loaded["CD8__T"].name == "CD8+ T"


def test_a_net_subset_with_a_categorical_source_loads_only_its_sets():
    """Sweep 57: unused categories became empty groups ("ANGIOGENESIS: genes_up is empty")."""
    net = ht.sig.to_net()
    net["source"] = net["source"].astype("category")
    loaded = ht.sig.load(net[net["source"] == "TAM2_SPP1"])
    assert loaded.ids == ["TAM2_SPP1"]


def test_a_library_signature_object_keeps_the_library_version():
    library = ht.sig.library()
    assert ht.sig.load(ht.sig.get("TREG")).library_version == library.library_version
    mine = dataclasses.replace(ht.sig.get("TREG"), genes_up=("FOXP3", "IL2RA", "CTLA4"))
    assert ht.sig.load(mine).library_version == "user"


def test_species_does_not_override_a_yaml_entrys_own(tmp_path):
    """load(yaml, species="mouse") read a human entry's genes as mouse symbols (sweep 57): the docstring says the
    argument is for dicts, GMT and nets; a YAML entry says its own species."""
    path = write(tmp_path / "human.yaml", [entry()])
    loaded = ht.sig.load(str(path), species="mouse")
    assert loaded["TEST_SIG"].species == "human" and loaded["TEST_SIG"].genes_up == ("SPP1", "CD274", "MME")
    mouse = ht.sig.load({"M": ["Spp1", "Cd274", "Mme"]}, species="mouse")
    assert mouse["M"].genes_up == ("SPP1", "CD274", "MME")


def test_gmt_export_reads_back_in_decoupler(tmp_path, user_set):
    """Sweep 61: the description was the spaced citation; decoupler's read_gmt, which splits lines on any
    whitespace, read its words ("et", "al.", "2020") as genes of all 84 exported sets."""
    import decoupler as dc

    with_source = Signature(id="CITED", genes_up=("SPP1", "CD44"), source={"citation": "A B et al. 2020", "pmid": "1"})
    sets = ht.sig.load(None) + user_set + SignatureSet([with_source])
    path = tmp_path / "all.gmt"
    sets.to_gmt(path)
    net = dc.pp.read_gmt(str(path))
    read = {name: list(group["target"]) for name, group in net.groupby("source", sort=False)}
    expected = {}
    for s in sets:
        if s.genes_down:
            expected |= {f"{s.id}_UP": list(s.genes_up), f"{s.id}_DOWN": list(s.genes_down)}
        else:
            expected[s.id] = list(s.genes_up)
    assert read == expected
    descriptions = [line.split("\t")[1] for line in path.read_text(encoding="utf-8").splitlines()]
    assert "https://pubmed.ncbi.nlm.nih.gov/1/" in descriptions and "SPP1+_TAM" in descriptions


def test_subset_takes_one_id_as_a_string(user_set):
    """Sweep 61: subset("TAM2") read the id letter by letter ("no signature 'T' in this set")."""
    assert user_set.subset("TAM2").ids == ["TAM2"]
    assert user_set.subset(["NEU", "TAM2"]).ids == ["NEU", "TAM2"]
