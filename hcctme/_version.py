"""The package version and the signature-library version every result records (bottom layer)."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from importlib import resources
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from hcctme._constants import SIGNATURE_LIBRARY_VERSION

try:
    __version__ = version("hcctme")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.1.0"


def library_dir() -> Path:
    """Where the curated YAML files live: inside the wheel, or the repository's ``signatures/``."""
    packaged = resources.files("hcctme").joinpath("_signatures")
    if packaged.is_dir():
        return Path(str(packaged))
    repo = Path(__file__).resolve().parents[1] / "signatures"
    if repo.is_dir():
        return repo
    raise FileNotFoundError("the hcctme signature library is missing from this installation; reinstall hcctme")


def signature_digest(directory: Path) -> str:
    """``"<hcctme version>+sig.<library version>.<digest>"``: changes with the package or any signature file."""
    digest = hashlib.sha256()
    for path in sorted(directory.glob("*.yaml")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return f"{__version__}+sig.{SIGNATURE_LIBRARY_VERSION}.{digest.hexdigest()[:10]}"


@lru_cache(maxsize=1)
def library_version() -> str:
    """The version of the curated library (the one :attr:`hcctme.sig.library().library_version` carries)."""
    return signature_digest(library_dir())
