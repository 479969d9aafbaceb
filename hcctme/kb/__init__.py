"""Knowledge base of HCC resistance axes: ligand-receptor pairs, mechanisms, therapies, citations.

``kb.axes(axis, setting=...)`` is the curated table (one row per axis x ligand x receptor, or marker
gene of a tumour-intrinsic axis), ``kb.therapies(axis, setting=...)`` the drugs linked to each axis
sorted by evidence tier (I approved in HCC for the setting ... IV preclinical) with their approval
status per region and supporting trial, ``kb.axis_pairs()`` / ``kb.annotate()`` map LIANA
interactions to axes (protein contacts only; enzyme -> metabolite pairs are never contacts) and
``kb.version`` identifies the shipped table. The source of truth is ``hcctme/kb/data/axes.yaml``; it
is validated when first read. Provenance of every citation: ``hcctme/kb/CITATIONS.md``.
"""

from typing import Any

from hcctme.kb._axes import AxisTable, annotate, axes, axis_pairs, genes, load, table, therapies
from hcctme.kb._schema import AxisSchemaError

__all__ = ["AxisSchemaError", "AxisTable", "annotate", "axes", "axis_pairs", "genes", "load", "table",
           "therapies", "version"]


def __getattr__(name: str) -> Any:
    if name == "version":  # read lazily: the table is validated on first use, not at import
        from hcctme.kb._axes import get_version

        return get_version()
    raise AttributeError(f"module 'hcctme.kb' has no attribute {name!r}")
