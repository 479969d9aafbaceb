"""Plots for each tool's results (matplotlib, scanpy look)."""

from hcctme.pl._compare import compare, volcano
from hcctme.pl._crosstalk import crosstalk
from hcctme.pl._profile import resistance_profile
from hcctme.pl._scores import scores
from hcctme.pl._states import states
from hcctme.pl._tib import tib

__all__ = ["compare", "crosstalk", "resistance_profile", "scores", "states", "tib", "volcano"]
