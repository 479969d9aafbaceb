"""Preprocessing: gene-symbol harmonisation and input checks."""

from hcctme.pp._check import check_input
from hcctme.pp._harmonize import harmonize_genes

__all__ = ["check_input", "harmonize_genes"]
