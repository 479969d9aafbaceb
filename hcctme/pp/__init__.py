"""Preprocessing: gene-symbol harmonisation, sequencing depth equalised across samples, and input checks."""

from hcctme.pp._check import check_input
from hcctme.pp._depth import equalize_depth
from hcctme.pp._harmonize import harmonize_genes

__all__ = ["check_input", "equalize_depth", "harmonize_genes"]
