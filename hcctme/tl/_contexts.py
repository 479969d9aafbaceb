"""Resolve a user's cell-type labels to the library's ``cell_context`` vocabulary.

A label is resolved in this order:

1. ``context_map[label]`` when the user gave one (a value of ``None`` or ``"unassigned"`` keeps
   the label out of state calling);
2. otherwise the built-in recognition rules below;
3. otherwise ``None`` ("unassigned"): an unknown label is never guessed.

Built-in recognition
--------------------
The label is lower-cased, accents are removed and Greek letters spelled out ("MΦ" -> "mphi";
:func:`hcctme._labels.fold`, which also reads Cell Ontology wording), and every character that is
not a letter or digit (``+ - _ / . ( )`` ...) becomes a space, so "CD8+ T cells", "CD8 T",
"cd8_t", "CD8-T" and "CD8T" read alike. Independent rules (regular expressions on that text,
the table :data:`RULES`) each propose a context; the proposals are combined as follows:

* a context is dropped when a more specific one was also proposed (``cd8_t`` beats ``t_cell``,
  ``macrophage`` beats ``myeloid``; see :data:`hcctme._constants.CONTEXT_PARENTS`);
* "malignant hepatocytes" and the like are ``tumour`` (tumour beats hepatocyte);
* when two or more contexts remain that share a parent the label is read as that parent
  ("CD4/CD8 T cells" -> ``t_cell``, "Mono/Mac" -> ``myeloid``);
* otherwise the label is ambiguous ("T/NK cells") and stays unassigned;
* a label whose "/"-separated parts name cell types of their own is read from those: "Macrophage/Tumour"
  names tumour on its own (not as a qualifier, as in "tumour T cells") and stays unassigned, as does
  "Mast/Macrophage" (a part naming a cell type without a context).

Notable readings: "Tregs"/"T reg"/"regulatory T"/"T regulatory"/"reg. T"/"Th17"/"Tfh" -> ``cd4_t``;
"Tex"/"Tpex"/"CTL" -> ``cd8_t``; "TAMs"/"Kupffer"/"monocyte-derived macrophages" -> ``macrophage``; "TANs"/"PMN"/
"PMN-MDSC"/"G-MDSC" -> ``neutrophil``; "M-MDSC" -> ``monocyte``; "MDSC" alone -> ``myeloid``;
"CAFs"/"myCAF"/"iCAF"/"HSC"/"stellate"/"myofibroblasts" -> ``fibroblast`` ("HSC" is read as
hepatic stellate cell, the liver meaning; haematopoietic stem cells are usually "HSPC", which
is not recognised); "moDC"/"cDC1"/"pDC"/"mregDC" -> ``dendritic``; "tumour"/"tumor"/"malignant"/
"cancer cells"/"HCC" -> ``tumour`` but "tumour-associated ..."/"tumour-infiltrating ..." are read
by the cell type that follows. Not recognised on purpose (left unassigned): cluster numbers,
"NKT", "MAIT"-like innate T subsets other than plain T-cell words, mast cells, cholangiocytes,
pericytes, "epithelial", "lymphocytes", "granulocytes", "doublets", "unknown".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pandas as pd

from hcctme import _labels
from hcctme._constants import CELL_CONTEXTS, CONTEXT_PARENTS, Defaults

# Contexts a label may be mapped to ("any" is a signature context, not a cell population).
MAPPABLE_CONTEXTS: tuple[str, ...] = tuple(c for c in CELL_CONTEXTS if c != "any")

# Lineages: a cell-type marker of another lineage than a cell's context marks a doublet or ambient
# RNA (a T cell high in a macrophage or hepatocyte marker score); within one lineage markers are
# shared (NK and CD8 T cytotoxic genes, S100A8/9 in monocytes and neutrophils) and are not used.
LINEAGES: dict[str, str] = {
    "t_cell": "t_nk", "cd8_t": "t_nk", "cd4_t": "t_nk", "nk": "t_nk", "b_cell": "b", "plasma": "b",
    "myeloid": "myeloid", "macrophage": "myeloid", "monocyte": "myeloid", "neutrophil": "myeloid",
    "dendritic": "myeloid", "fibroblast": "fibroblast", "endothelial": "endothelial",
    "hepatocyte": "epithelial", "tumour": "epithelial",
}

_NOT_TUMOUR_FOLLOWERS = r"(?!\s*(associated|infiltrating|derived|resident|educated|adjacent|microenv))"

# (context, pattern) on the normalised label; every matching rule proposes its context.
RULES: tuple[tuple[str, str], ...] = (
    # T cells
    ("cd8_t", r"\bcd8(a|b)?(t|tcells?|tc|ts)?\b"),
    ("cd8_t", r"\b(tex|tpex|texprog|texterm|ctls?|tc1|cytotoxic\s*t|killer\s*t|exhausted\s*(cd8\s*)?t)\b"),
    ("cd8_t", r"\b(tex|tpex|ctl)s?\b"),
    ("cd4_t", r"\bcd4(t|tcells?|ts)?\b"),
    ("cd4_t", r"\b(t\s*regs?|tregs?|regulatory\s*t|t\s*regulatory|reg\s*t|th\s*(1|2|9|17|22)|th(1|2|9|17|22)s?|"
              r"tfh|tfr|t\s*helper|helper\s*t)\b"),
    ("t_cell", r"\bt\s*(cell|cells|lymphocytes?|lymph)\b"),
    ("t_cell", r"^(t|ts|t\s*cells?)$"),
    ("t_cell", r"\b(gd\s*t|gamma\s*delta|tcr\s*gd|tem|tcm|temra|trm|tn|naive\s*t|memory\s*t|effector\s*t|cycling\s*t|"
               r"proliferating\s*t)\b"),
    ("t_cell", r"\bt\b"),
    # NK, B, plasma
    ("nk", r"\b(nk|nks|nk\s*cells?|natural\s*killers?)\b"),
    ("nk", r"\bcd56\s*(bright|dim)\b"),
    ("b_cell", r"\b(b|bs|b\s*cells?|b\s*lymphocytes?|naive\s*b|memory\s*b|gc\s*b|germinal\s*centre\s*b)\b"),
    ("plasma", r"\b(plasma|plasma\s*cells?|plasmablasts?|plasmacytes?)\b"),
    # myeloid
    ("myeloid", r"\b(myeloid|myeloids|myeloid\s*cells?|mdscs?|mononuclear\s*phagocytes?)\b"),
    ("macrophage", r"\b(macrophages?|macro|macs?|mphi|mphis|tams?|kupffer|kupffer\s*cells?|kcs?\s*kupffer|mo\s*mac|"
                   r"momac|momf)\b"),
    ("monocyte", r"\b(monocytes?|mono|monos|cmono|ncmono|classical\s*mono\w*|m\s*mdscs?|mo\s*mdscs?)\b"),
    ("neutrophil", r"\b(neutrophils?|neutro|neu|neus|tans?|pmns?|pmn\s*mdscs?|g\s*mdscs?|polymorphonuclear)\b"),
    ("dendritic", r"\b(dendritic|dendritic\s*cells?|dcs?|cdcs?|cdc1|cdc2|pdcs?|mregdcs?|modcs?|lamp3\s*dcs?|"
                  r"langerhans)\b"),
    # stroma and parenchyma
    ("fibroblast", r"\b(fibroblasts?|fibro|cafs?|mycafs?|icafs?|apcafs?|caf\s*s1|myofibroblasts?|hscs?|stellate|"
                   r"hepatic\s*stellate\s*cells?)\b"),
    ("endothelial", r"\b(endothelial|endothelium|endothelial\s*cells?|endo|ecs?|lsecs?|lecs?|vecs?)\b"),
    ("hepatocyte", r"\b(hepatocytes?|hepatocyte\s*like)\b"),
    ("tumour", r"\b(malignant|hepatoma|hccs?|hcc\s*cells?|carcinoma)\b"),
    ("tumour", r"\b(tumou?rs?|cancer|cancers)" + _NOT_TUMOUR_FOLLOWERS + r"\b"),
)

# Labels that name a mixture or a non-cell: never resolved whatever else they contain.
_NEVER = re.compile(r"\b(doublets?|multiplets?|unknown|unassigned|undefined|low\s*quality|ambient|mixed|nkt|nk\s*t)\b")

# Checked before the rules: specific phrasings whose words would otherwise propose two contexts.
_OVERRIDES: tuple[tuple[str, str], ...] = (
    ("macrophage", r"\b(mono\w*|mo)\s*derived\s*(macrophages?|macs?|mphi)\b"),
    ("dendritic", r"\b(mono\w*|mo)\s*derived\s*(dendritic|dcs?)\b"),
    ("neutrophil", r"\b(pmn|g)\s*mdscs?\b"),
    ("monocyte", r"\b(m|mo)\s*mdscs?\b"),
    ("fibroblast", r"\b(cancer|tumou?r)\s*associated\s*fibroblasts?\b"),
)

# When both are proposed, the first wins (the label qualifies the second).
_DOMINATES: tuple[tuple[str, str], ...] = (("tumour", "hepatocyte"),)

# Proposals that only stand alone: "tumour T cells", "tumour endothelial cells" are T and
# endothelial cells; "tumour cells", "malignant hepatocytes" are tumour.
_WEAK: frozenset[str] = frozenset({"tumour"})

_RULES = tuple((ctx, re.compile(p)) for ctx, p in RULES)
# cell types with no context: a label naming one beside a context's ("Mast/Macrophage") is ambiguous
_OTHER_CELL_TYPES = re.compile(r"\b(mast|cholangiocytes?|pericytes?|epithelial|nkt|mait|keratinocytes?|"
                               r"melanocytes?|erythro\w*|platelets?|smooth muscle|adipocytes?|neurons?)\b")
_OVERRIDE_RULES = tuple((ctx, re.compile(p)) for ctx, p in _OVERRIDES)


def normalise(label: object) -> str:
    """Return the text the rules read.

    :func:`hcctme._labels.fold` (accents, Greek letters, Cell Ontology words), then letters and digits
    only, single spaces.
    """
    text = re.sub(r"[^a-z0-9]+", " ", _labels.fold(label))
    # "cd8t" / "cd4tcells": split a trailing t (cells) glued to cd4/cd8 is handled by the rules.
    return re.sub(r"\s+", " ", text).strip()


def _ancestors(context: str) -> set[str]:
    out = set()
    while context in CONTEXT_PARENTS:
        context = CONTEXT_PARENTS[context]
        out.add(context)
    return out


def _combine(found: set[str], *, weak: frozenset[str] = _WEAK) -> tuple[str | None, str]:
    """Combine proposed contexts into one, or None when ambiguous; returns (context, reason)."""
    if not found:
        return None, "no rule matched"
    if len(found - weak - {"hepatocyte"}) >= 1:
        found = found - weak
    for winner, loser in _DOMINATES:
        if winner in found and loser in found:
            found = found - {loser}
    # drop ancestors of more specific proposals
    specific = {c for c in found if not any(c in _ancestors(o) for o in found if o != c)}
    if len(specific) == 1:
        return next(iter(specific)), "rule"
    parents = [(_ancestors(c)) for c in specific]
    shared = set.intersection(*parents) if parents else set()
    if shared:
        # the closest shared parent (contexts have at most one parent level here)
        return sorted(shared)[0], f"shared parent of {sorted(specific)}"
    return None, f"ambiguous: {sorted(specific)}"


def recognise(label: object) -> tuple[str | None, str]:
    """Resolve one label with the built-in rules: ``(context or None, reason)``."""
    text = normalise(label)
    if not text or _NEVER.search(text):
        return None, "not a cell type" if text else "empty label"
    for ctx, pattern in _OVERRIDE_RULES:
        if pattern.search(text):
            return ctx, "rule"
    parts = [part for part in str(label).split("/") if normalise(part)]
    if len(parts) > 1:  # "Macrophage/Tumour", "Mast/Macrophage": each part may name a cell type of its own
        found_parts = [recognise(part)[0] for part in parts]
        if any(ctx is None and _OTHER_CELL_TYPES.search(normalise(part))
               for ctx, part in zip(found_parts, parts, strict=True)):
            return None, f"ambiguous: a part of {str(label)!r} names a cell type without a context"
        named = {ctx for ctx in found_parts if ctx is not None}
        if len(named) > 1:  # tumour named on its own is no qualifier ("tumour T cells" are T cells)
            return _combine(named, weak=frozenset())
    found = {ctx for ctx, pattern in _RULES if pattern.search(text)}
    return _combine(found)


@dataclass(frozen=True)
class Resolution:
    """How each distinct label was resolved."""

    mapping: dict[str, str | None]  # label -> context or None
    source: dict[str, str]  # label -> "context_map" | "rule" | why unresolved

    @property
    def unmapped(self) -> list[str]:
        return [label for label, ctx in self.mapping.items() if ctx is None]

    def table(self) -> pd.DataFrame:
        """One row per label: ``label``, ``context`` (``"unassigned"`` for None) and ``source``."""
        table = _labels.map_table(self.mapping)
        table["source"] = [self.source[label] for label in self.mapping]
        return table


def check_context_map(context_map: Mapping[str, str | None] | None) -> dict[str, str | None]:
    """Validate a user's ``context_map`` (label -> cell_context, or None to leave unassigned)."""
    if context_map is None:
        return {}
    if not isinstance(context_map, Mapping):
        raise TypeError(
            f"context_map must be a dict {{label: cell_context}}, got {type(context_map).__name__}"
        )
    out: dict[str, str | None] = {}
    bad = {}
    for label, ctx in context_map.items():
        if ctx is None or (isinstance(ctx, str) and ctx == Defaults.UNASSIGNED):
            out[str(label)] = None
        elif isinstance(ctx, str) and ctx in MAPPABLE_CONTEXTS:
            out[str(label)] = ctx
        else:
            bad[str(label)] = ctx
    if bad:
        raise ValueError(
            f"context_map values must be cell_context names; not in the vocabulary: {bad}. "
            f"Valid values: {list(MAPPABLE_CONTEXTS)} (or None / 'unassigned' to leave a label out)"
        )
    return out


def resolve(labels: Iterable[object], context_map: Mapping[str, str | None] | None = None) -> Resolution:
    """Resolve the distinct labels (first-seen order) to contexts.

    Labels present in ``context_map`` take its value; the others are read by :func:`recognise`.
    """
    user = check_context_map(context_map)
    mapping: dict[str, str | None] = {}
    source: dict[str, str] = {}
    for label in dict.fromkeys(str(x) for x in labels):
        if label in user:
            mapping[label], source[label] = user[label], "context_map"
        else:
            mapping[label], source[label] = recognise(label)
    return Resolution(mapping, source)


def usage_hint(labels: Iterable[str]) -> str:
    """An example ``context_map`` for the given labels (shown in error messages)."""
    labels = list(labels)[:3] or ["my label"]
    example = ", ".join(f"{label!r}: '<cell_context>'" for label in labels)
    return (
        f"pass context_map={{{example}}} with values from {list(MAPPABLE_CONTEXTS)}, "
        "e.g. context_map={'CD8 TILs': 'cd8_t', 'Mac_SPP1': 'macrophage'}"
    )
