"""hcctme: tumour-microenvironment resistance analysis for HCC single-cell and spatial data."""

from hcctme._settings import settings
from hcctme._version import __version__
from hcctme import get, sig, pp, tl, pl, kb, datasets, report

__all__ = ["__version__", "datasets", "get", "kb", "pl", "pp", "report", "settings", "sig", "tl"]
