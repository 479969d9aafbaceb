"""The lineage rule of library 2.1: a gene that marks another lineage is not an UP gene of a list.

A state or programme list read from a within-lineage comparison (e.g. Treg against other CD4 T cells) can
carry genes that are far higher in another lineage of the same tissue (HLA class II of B cells and myeloid
cells in a T-cell list); scored in whole tissue, such a list marks the other lineage. The rule, fixed from
sources independent of the validation datasets:

1. HLA class II genes (``HLA-D*``) and ``CD74`` (invariant chain) belong to the antigen-presenting lineages
   (B cells, monocytes/macrophages, dendritic cells) and are not UP genes of any other lineage's list;
2. in lists of immune cells: a top-10 marker of an Azimuth human PBMC level-2 cell type
   (Hao et al. 2021 Cell 184:3573, PMID 34062119, the source the library's T, NK, monocyte, plasmablast and
   dendritic markers already cite) of another immune lineage family (blood has no stromal or tumour cells,
   so it says nothing about those lists); cycling clusters (markers of proliferation) and the blood-only HSPC, platelet
   and erythrocyte clusters are not lineages of the library and are not used;
3. an UP gene of another lineage family's ``MARKER_*`` list in ``signatures/cell_types.yaml`` (each cited).

A gene that one of these sources also gives as a marker of the list's own family is kept (it marks both);
a marker of the parent ``myeloid`` or ``t_cell`` list belongs to every family under it. The ``MARKER_*`` lists
are the rule's source and are not themselves filtered by it (MZB1, an Azimuth plasmablast and pDC marker, stays
in both lists: a known ambiguity of the source).

The same sources give the rule for DOWN genes: a gene that marks the list's own lineage family (e.g. TCF7 or
IL7R in a CD8 T-cell list) is down only against the list's sibling states; scored in whole tissue it lowers the
score of the own lineage against every other, so it is not a DOWN gene. HLA class II genes are the exception:
their loss is the defining HLA-DR-low phenotype (M-MDSC, Bronte et al. 2016 Nat Commun 7:12150). Genes removed by the
rule are recorded per entry under ``excluded:`` with the reason; ``test_library.py`` checks the library.
"""

from __future__ import annotations

from collections.abc import Iterable

from hcctme._constants import MARKER_COLLECTION
from hcctme.sig import Signature

# Lineage family of each library cell_context (hepatocyte and tumour: HCC cells are of hepatocyte origin).
FAMILY = {
    "t_cell": "t_nk", "cd8_t": "t_nk", "cd4_t": "t_nk", "nk": "t_nk",
    "b_cell": "b", "plasma": "b",
    "monocyte": "mono_mac", "macrophage": "mono_mac",
    "dendritic": "dendritic",
    "neutrophil": "neutrophil",
    "fibroblast": "fibroblast",
    "endothelial": "endothelial",
    "hepatocyte": "parenchymal", "tumour": "parenchymal",
}
# Parent lists whose markers belong to every family under them.
PARENT_FAMILIES = {"myeloid": {"mono_mac", "dendritic", "neutrophil"}, "t_cell": {"t_nk"}}
APC_FAMILIES = frozenset({"b", "mono_mac", "dendritic"})
IMMUNE_FAMILIES = frozenset({"t_nk", "b", "mono_mac", "dendritic", "neutrophil"})

# Azimuth human PBMC reference, level-2 top-10 markers (https://azimuth.hubmapconsortium.org/references/human_pbmc/),
# as transcribed in the R list genes_azi (code index file id 26171298686); family of each cell type.
AZIMUTH_PBMC_TOP10 = {
    ("B intermediate", "b"): "MS4A1 TNFRSF13B IGHM IGHD AIM2 CD79A LINC01857 RALGPS2 BANK1 CD79B",
    ("B memory", "b"): "MS4A1 COCH AIM2 BANK1 SSPN CD79A TEX9 RALGPS2 TNFRSF13C LINC01781",
    ("B naive", "b"): "IGHM IGHD CD79A IL4R MS4A1 CXCR4 BTG1 TCL1A CD79B YBX3",
    ("Plasmablast", "b"): "IGHA2 MZB1 TNFRSF17 DERL3 TXNDC5 TNFRSF13B POU2AF1 CPNE5 PLAAT2 NT5DC2",
    ("CD4 CTL", "t_nk"): "GZMH CD4 FGFBP2 ITGB1 GZMA CST7 GNLY B2M IL32 NKG7",
    ("CD4 Naive", "t_nk"): "TCF7 CD4 CCR7 IL7R FHIT LEF1 MAL NOSIP LDHB PIK3IP1",
    ("CD4 TCM", "t_nk"): "IL7R TMSB10 CD4 ITGB1 LTB TRAC AQP3 LDHB IL32 MAL",
    ("CD4 TEM", "t_nk"): "IL7R CCL5 FYB1 GZMK IL32 GZMA KLRB1 TRAC LTB AQP3",
    ("Treg", "t_nk"): "RTKN2 FOXP3 CD4 IL2RA TIGIT CTLA4 FCRL3 LAIR2 IKZF2",
    ("CD8 Naive", "t_nk"): "CD8B S100B CCR7 RGS10 NOSIP LINC02446 LEF1 CRTAM CD8A OXNAD1",
    ("CD8 TCM", "t_nk"): "CD8B ANXA1 CD8A KRT1 LINC02446 YBX3 IL7R TRAC NELL2 LDHB",
    ("CD8 TEM", "t_nk"): "CCL5 GZMH CD8A TRAC KLRD1 NKG7 GZMK CST7 CD8B TRGC2",
    ("NK", "t_nk"): "GNLY TYROBP NKG7 FCER1G GZMB TRDC PRF1 FGFBP2 SPON2 KLRF1",
    ("NK CD56bright", "t_nk"): "XCL2 FCER1G SPINK2 TRDC KLRC1 XCL1 SPTSSB PPP1R9A NCAM1 TNFRSF11A",
    ("ILC", "t_nk"): "KIT TRDC TTLL10 LINC01229 SOX4 KLRB1 TNFRSF18 TNFRSF4 IL1R1 HPGDS",
    ("dnT", "t_nk"): "PTPN3 MIR4422HG NUCB2 CAV1 DTHD1 GZMA MYB FXYD2 GZMK",
    ("gdT", "t_nk"): "TRDC TRGC1 TRGC2 KLRC1 NKG7 TRDV2 CD7 TRGV9 KLRD1 KLRG1",
    ("MAIT", "t_nk"): "KLRB1 NKG7 GZMK IL7R SLC4A10 GZMA CXCR6 PRSS35 RBM24 NCR3",
    ("CD14 Mono", "mono_mac"): "S100A9 CTSS S100A8 LYZ VCAN S100A12 IL1B CD14 G0S2 FCN1",
    ("CD16 Mono", "mono_mac"): "CDKN1C FCGR3A PTPRC LST1 IER5 MS4A7 RHOC IFITM3 AIF1 HES4",
    ("ASDC", "dendritic"): "PPP1R14A LILRA4 AXL IL3RA SCT SCN9A LGMN DNASE1L3 CLEC4C GAS6",
    ("cDC1", "dendritic"): "CLEC9A DNASE1L3 C1orf54 IDO1 CLNK CADM1 FLT3 ENPP1 XCR1 NDRG2",
    ("cDC2", "dendritic"): "FCER1A HLA-DQA1 CLEC10A CD1C ENHO PLD4 GSN SLC38A1 NDRG2 AFF3",
    ("pDC", "dendritic"): "ITM2C PLD4 SERPINF1 LILRA4 IL3RA TPM2 MZB1 SPIB IRF4 SMPD3",
}


def _cite(sources: list[str]) -> str:
    """The first two sources of a reason, and how many more."""
    more = f" (+{len(sources) - 2} more)" if len(sources) > 2 else ""
    return "; ".join(sources[:2]) + more


def is_hla_class_ii(gene: str) -> bool:
    """HLA class II chains and the invariant chain CD74."""
    return gene.startswith("HLA-D") or gene == "CD74"


def _owner_families(context: str) -> set[str]:
    if context in PARENT_FAMILIES:
        return set(PARENT_FAMILIES[context])
    return {FAMILY[context]} if context in FAMILY else set()


def lineage_markers(markers: Iterable[Signature], *, azimuth: bool = True) -> dict[str, list[tuple[set[str], str]]]:
    """Gene -> [(families it marks, where that is stated)] from Azimuth and the library's marker lists."""
    out: dict[str, list[tuple[set[str], str]]] = {}
    for (cell_type, family), genes in AZIMUTH_PBMC_TOP10.items() if azimuth else ():
        for gene in genes.split():
            out.setdefault(gene, []).append(({family}, f"Azimuth PBMC {cell_type} top-10 marker"))
    for sig in markers:
        for gene in sig.genes_up:
            out.setdefault(gene, []).append((_owner_families(sig.cell_context), f"{sig.id} gene"))
    return out


def _families_and_markers(sig: Signature, markers: Iterable[Signature]) -> tuple[set[str], dict]:
    """The lineage families ``sig`` belongs to (empty for marker lists and context-free lists) and the
    marker table of the other lists (:func:`lineage_markers`)."""
    own = _owner_families(sig.cell_context)
    if not own or sig.collection == MARKER_COLLECTION:
        return set(), {}
    return own, lineage_markers((m for m in markers if m.id != sig.id), azimuth=bool(own & IMMUNE_FAMILIES))


def foreign_genes(sig: Signature, markers: Iterable[Signature]) -> dict[str, str]:
    """UP genes of ``sig`` that the lineage rule excludes, each with its reason (empty when none)."""
    own, table = _families_and_markers(sig, markers)
    if not own:
        return {}
    out: dict[str, str] = {}
    for gene in sig.genes_up:
        if is_hla_class_ii(gene):
            if not own & APC_FAMILIES:
                out[gene] = "lineage rule: HLA class II / invariant chain (antigen-presenting cells)"
            continue
        marks = table.get(gene, [])
        foreign = [why for families, why in marks if families and not families & own]
        if foreign and not any(families & own for families, _ in marks):
            out[gene] = "lineage rule: " + _cite(sorted(set(foreign)))
    return out


def own_lineage_down_genes(sig: Signature, markers: Iterable[Signature]) -> dict[str, str]:
    """DOWN genes of ``sig`` that mark its own lineage family, each with its reason (empty when none)."""
    own, table = _families_and_markers(sig, markers)
    if not own:
        return {}
    out: dict[str, str] = {}
    for gene in sig.genes_down:
        if is_hla_class_ii(gene):
            continue
        mine = sorted({why for families, why in table.get(gene, []) if families & own})
        if mine:
            out[gene] = "lineage rule (down): marks the own lineage: " + _cite(mine)
    return out
