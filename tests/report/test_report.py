"""The HTML report: self-contained, every section present, embedded figures decode, renders in Chromium."""

import base64
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from hcctme import datasets, pipeline, report

pytestmark = pytest.mark.slow

VOID = {"meta", "img", "br", "hr", "input", "link"}


class _Checker(HTMLParser):
    def __init__(self):
        super().__init__()
        self.stack, self.errors, self.images, self.external, self.ids = [], [], [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        for name in ("src", "href"):
            value = attrs.get(name) or ""
            if value.startswith(("http:", "https:", "//")):
                self.external.append(value)
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unbalanced </{tag}> (open: {self.stack[-3:]})")
        else:
            self.stack.pop()


@pytest.fixture(scope="module")
def analysed():
    adata = datasets.simulate_cohort(6, 120, n_genes=700, spatial=True, random_state=5)
    pipeline.run(adata, genes=False)
    return adata


@pytest.fixture(scope="module")
def report_path(analysed, tmp_path_factory) -> Path:
    return report.build(analysed, tmp_path_factory.mktemp("report") / "report.html")


def test_report_is_valid_self_contained_html(report_path: Path):
    text = report_path.read_text()
    checker = _Checker()
    checker.feed(text)
    assert checker.errors == [] and checker.stack == []
    assert checker.external == []
    assert {"overview", "scores", "states", "compare", "crosstalk", "tib", "profile", "parameters"} <= set(checker.ids)
    assert len(checker.images) >= 3
    for src in checker.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_names_library_version_and_therapies(report_path: Path):
    text = report_path.read_text()
    assert "signature library" in text and "+sig." in text
    assert re.search(r"atezolizumab|bevacizumab|SPP1|CXCR2", text)


def test_report_returns_text_without_path(analysed):
    text = report.build(analysed)
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")


def test_report_needs_scores():
    adata = datasets.simulate_cohort(4, 60, n_genes=600, random_state=1)
    with pytest.raises(KeyError, match=r"tl\.score"):
        report.build(adata)


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")),
                    reason="headless Chromium not installed (apt-get install chromium); HTML validated above")
def test_report_renders_in_headless_chromium(report_path: Path, tmp_path: Path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    shot = tmp_path / "report.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                    "--window-size=1280,2400", report_path.as_uri()], check=True, timeout=120,
                   capture_output=True)
    assert shot.exists() and shot.stat().st_size > 20_000
