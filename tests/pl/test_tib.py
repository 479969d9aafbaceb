"""hcctme.pl.tib's legend."""

from __future__ import annotations

from hcctme.pl._tib import _barrier_legend


def test_the_barrier_legend_names_the_labels_the_call_used():
    """Sweep 57: the legend said "SPP1+ TAM / myCAF" whatever barrier_labels the user passed."""
    assert _barrier_legend(None) == "barrier (SPP1+ TAM / myCAF)"
    assert _barrier_legend({"cell_type": ["Pericytes"]}) == "barrier (Pericytes)"
    assert _barrier_legend(["A", "B", "C", "D"]) == "barrier (A, B, C +1)"
