"""The checksums tests/data/*/PROVENANCE.md gives for the shipped files are theirs."""

import hashlib
import re
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent / "data"
FOLDERS = sorted(p.parent for p in DATA.glob("*/PROVENANCE.md"))
FILE_ROW = re.compile(r"^\| file \| `([^`]+)` \(.*sha256 `([0-9a-f]+)\.\.\.([0-9a-f]+)`", re.MULTILINE)


def test_every_dataset_has_a_provenance():
    assert len(FOLDERS) >= 10


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_the_listed_checksum_is_the_files(folder):
    found = FILE_ROW.search((folder / "PROVENANCE.md").read_text(encoding="utf-8"))
    assert found, f"{folder.name}/PROVENANCE.md: its '| file |' row gives no sha256 `head...tail`"
    name, head, tail = found.groups()
    digest = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    assert digest.startswith(head) and digest.endswith(tail), f"{folder.name}/{name}: sha256 {digest}"
