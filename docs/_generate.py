"""Pages generated from the library at build time: one per signature family, the knowledge base, tutorials."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

import hcctme as ht

REPO = Path(__file__).resolve().parents[1]


def _cell(value: object) -> str:
    """A value as the text of a Markdown table cell."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    return str(value).replace("|", "\\|").replace("\n", " ").strip()


def _table(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows]) + "\n"


def _source(sig: ht.sig.Signature) -> str:
    source = dict(sig.source)
    parts = [source.get("citation") or sig.citation]
    if source.get("pmid"):
        parts.append(f"PMID {source['pmid']}")
    if source.get("doi"):
        parts.append(f"doi:{source['doi']}")
    return "; ".join(p for p in parts if p)


def signature_pages(out: Path) -> list[str]:
    """One page per signature family (``collection``) with genes, citations and validation when recorded."""
    listing = ht.sig.list()
    library = ht.sig.library()
    names = []
    for collection, members in listing.groupby("collection", sort=True):
        rows = []
        for sig_id in members["id"]:
            sig = library[sig_id]
            row = {"id": sig.id, "name": sig.name, "context": sig.cell_context, "role": sig.role,
                   "evidence": sig.evidence, "genes up": ", ".join(sig.genes_up),
                   "genes down": ", ".join(sig.genes_down), "source": _source(sig)}
            if "validation" in members.columns:
                row["validation"] = members.set_index("id").loc[sig_id, "validation"]
            rows.append(row)
        frame = pd.DataFrame(rows)
        name = f"signatures_{collection}"
        title = collection.replace("_", " ").capitalize()
        text = (f"# {title}\n\n{len(frame)} signature(s) of the `{collection}` family, library version "
                f"`{library.library_version}`. Score them with `hcctme.tl.score(adata, {list(frame['id'])!r})`.\n\n"
                + _table(frame))
        (out / f"{name}.md").write_text(text, encoding="utf-8")
        names.append(name)
    return names


def kb_page(out: Path) -> str:
    """The knowledge base: each resistance axis with its ligand-receptor pairs, therapies and citations."""
    axes = ht.kb.axes()
    parts = [f"# Knowledge base: resistance axes\n\nVersion `{ht.kb.version}`: {axes['axis'].nunique()} axes, "
             f"{len(axes)} ligand-receptor pairs. `hcctme.kb.axes()` returns this table; "
             "`hcctme.tl.crosstalk` annotates interactions with these axes.\n"]
    for axis, rows in axes.groupby("axis", sort=True):
        first = rows.iloc[0]
        parts.append(f"\n## {axis}: {first['name']}\n\n{_cell(first['mechanism'])}\n\n"
                     f"- resistance to: {_cell(first['resistance_to'])}\n- therapies: {_cell(first['therapies'])}\n"
                     f"- evidence: {_cell(first['evidence_level'])}; {_cell(first['citation'])} "
                     f"(PMID {_cell(first['pmid'])})\n\n")
        pairs = rows[["ligand", "receptor", "sender", "receiver", "direction", "pair_evidence"]]
        parts.append(_table(pairs))
    (out / "kb.md").write_text("".join(parts), encoding="utf-8")
    return "kb"


def tutorial_pages(out: Path) -> list[str]:
    """Copies of the tutorials (rendered by myst-nb without being executed)."""
    names = []
    for notebook in sorted((REPO / "tutorials").glob("*.ipynb")):
        shutil.copyfile(notebook, out / notebook.name)
        names.append(notebook.stem)
    return names


def _toctree(caption: str, names: list[str]) -> str:
    entries = "\n".join(names)
    return f"```{{toctree}}\n:caption: {caption}\n:maxdepth: 1\n\n{entries}\n```\n"


def write_all(out: Path) -> None:
    """(Re)write every generated page under ``out`` with an index page per group."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    sig_names = signature_pages(out)
    (out / "signatures.md").write_text(
        "# Signature library\n\nOne page per signature family, generated from the library shipped with this "
        "version (`hcctme.sig.list()`).\n\n" + _toctree("Families", sig_names), encoding="utf-8")
    kb_page(out)
    tutorials = tutorial_pages(out)
    (out / "tutorials.md").write_text(
        "# Tutorials\n\nThe notebooks of `tutorials/`, shown as they are stored (not executed here).\n\n"
        + _toctree("Tutorials", tutorials), encoding="utf-8")
