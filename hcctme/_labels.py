"""Cell-type labels: their spelling, folded before any recognition rule reads them, and label maps as tables.

Accents are removed ("Hépatocytes" -> "hepatocytes"), Greek letters spelled out (phi glued, as in
"MΦ" -> "mphi"; alpha, beta, gamma, delta as words), and the few Cell Ontology words (CELLxGENE
``cell_type`` names) that the rules spell differently are replaced (:data:`CELL_ONTOLOGY_WORDS`).
Cell Ontology names such as "CD8-positive, alpha-beta T cell", "Kupffer cell" or "endothelial cell
of hepatic sinusoid" are otherwise read by the rules as they are.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

import pandas as pd

from hcctme._constants import Defaults

# Greek letters of cell-type labels; phi is glued to the preceding letter as in "MΦ" -> "mphi".
_GREEK = {"\u03c6": "phi", "\u03d5": "phi", "\u03b1": " alpha ", "\u03b2": " beta ", "\u03b3": " gamma ",
          "\u03b4": " delta "}

# Cell Ontology wording -> the word the recognition rules use.
CELL_ONTOLOGY_WORDS: dict[str, str] = {
    "neoplastic": "malignant",  # CL:0001063 "neoplastic cell"
}
_WORDS = re.compile(r"\b(" + "|".join(map(re.escape, CELL_ONTOLOGY_WORDS)) + r")\b")


def fold(label: object) -> str:
    """Lower-case ``label``, remove accents, spell out Greek letters and replace Cell Ontology words.

    Punctuation is kept (the caller decides how to read it).
    """
    text = str(label).lower()
    for letter, spelled in _GREEK.items():
        text = text.replace(letter, spelled)
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return _WORDS.sub(lambda m: CELL_ONTOLOGY_WORDS[m.group(1)], text)


def map_table(context_map: Mapping[str, str | None] | None) -> pd.DataFrame:
    """A ``{label: context}`` map as a table with the columns ``label`` and ``context`` (None: ``"unassigned"``).

    Results store cell-type labels as values, never as dict keys: anndata writes a key holding "/"
    ("CD4/CD8 T cells") as nested groups, which read back as another structure, or fail to write where
    one label is the start of another ("Lymphocytes", "Lymphocytes/cell-cycle").
    """
    items = [(str(label), context or Defaults.UNASSIGNED) for label, context in (context_map or {}).items()]
    return pd.DataFrame(items, columns=["label", "context"], dtype=object)


def map_from_table(table: pd.DataFrame) -> dict[str, str]:
    """The ``{label: context}`` map of a :func:`map_table` table."""
    return dict(zip(table["label"].astype(str), table["context"].astype(str), strict=True))


def maps_as_dicts(record: Mapping[str, object]) -> dict[str, object]:
    """``record`` with each :func:`map_table` table value read back as its ``{label: context}`` dict."""
    return {name: map_from_table(value) if _is_map_table(value) else value for name, value in record.items()}


def _is_map_table(value: object) -> bool:
    return isinstance(value, pd.DataFrame) and list(value.columns) == ["label", "context"]
