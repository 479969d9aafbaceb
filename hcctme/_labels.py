"""Spelling of cell-type labels, folded before any recognition rule reads them.

Accents are removed ("Hépatocytes" -> "hepatocytes"), Greek letters spelled out (phi glued, as in
"MΦ" -> "mphi"; alpha, beta, gamma, delta as words), and the few Cell Ontology words (CELLxGENE
``cell_type`` names) that the rules spell differently are replaced (:data:`CELL_ONTOLOGY_WORDS`).
Cell Ontology names such as "CD8-positive, alpha-beta T cell", "Kupffer cell" or "endothelial cell
of hepatic sinusoid" are otherwise read by the rules as they are.
"""

from __future__ import annotations

import re
import unicodedata

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
