"""hcctme: tumour-microenvironment resistance analysis for HCC single-cell and spatial data."""

from hcctme import datasets, get, kb, pipeline, pl, pp, report, sig, tl
from hcctme._settings import settings
from hcctme._version import __version__

__all__ = ["__version__", "datasets", "get", "kb", "pipeline", "pl", "pp", "report", "settings", "sig", "tl"]
