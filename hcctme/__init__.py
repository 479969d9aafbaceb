"""hcctme: tumour-microenvironment resistance analysis for HCC single-cell and spatial data."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hcctme")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.1.0"

from hcctme._settings import settings
from hcctme import sig, pp, tl, pl, kb, datasets, report, pipeline  # noqa: E402

__all__ = ["sig", "pp", "tl", "pl", "kb", "datasets", "report", "pipeline", "settings", "__version__"]
