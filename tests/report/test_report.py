"""The HTML report of a real (small) run: self-contained, every section present, one card per patient, and,
where Chromium is installed, driven in the browser (tables initialised, figures drawn, search, screenshots)."""

import html
import json
import re
import shutil
import warnings
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import hcctme as ht
from hcctme import datasets, get, kb, pipeline, report
from hcctme._constants import Report

pytestmark = pytest.mark.slow

VOID = {"meta", "img", "br", "hr", "input", "link"}
SECTIONS = ["summary", "patients", "states", "compare", "crosstalk", "tib", "profile", "scores", "methods"]


class _Checker(HTMLParser):
    def __init__(self):
        super().__init__()
        self.stack, self.errors, self.external, self.ids, self.links, self.cards = [], [], [], [], [], []
        self.scripts: list[tuple[dict, str]] = []
        self._script: dict | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("src", "href"):
            value = attrs.get(name) or ""
            if value.startswith(("http:", "https:", "//")):
                self.external.append(value)
        if attrs.get("href", "").startswith("#"):
            self.links.append(attrs["href"][1:])
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if "card" in (attrs.get("class") or "").split():
            self.cards.append(attrs["id"])
        if tag == "script":
            self._script = attrs
        if tag not in VOID:
            self.stack.append(tag)

    def handle_data(self, data):
        if self._script is not None:
            self.scripts.append((self._script, data))

    def handle_endtag(self, tag):
        self._script = None
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


@pytest.fixture(scope="module")
def parsed(report_path: Path) -> _Checker:
    checker = _Checker()
    checker.feed(report_path.read_text())
    return checker


def test_report_is_valid_self_contained_html(parsed: _Checker):
    assert parsed.errors == [] and parsed.stack == []
    assert parsed.external == []
    assert set(SECTIONS) <= set(parsed.ids)
    assert sorted(set(parsed.links) - set(parsed.ids)) == []  # every in-page link has its target
    kinds = {a.get("id") or a.get("type") for a, _ in parsed.scripts}
    assert {"hcctme-datatables", "hcctme-plotly"} <= kinds


def test_tables_and_figures_carry_their_data(parsed: _Checker):
    tables = [i for i in parsed.ids if i.startswith("table-")]
    figures = [i for i in parsed.ids if i.startswith("fig-")]
    data = {a["data-for"]: text for a, text in parsed.scripts if "data-for" in a}
    assert set(tables) | set(figures) == set(data)
    assert {"fig-states", "fig-compare-composition", "fig-compare-scores", "fig-profile", "fig-scores"} <= set(figures)
    for anchor in figures:
        spec = json.loads(data[anchor])
        assert spec["data"] and spec["layout"]
    for anchor in tables:
        rows = json.loads(data[anchor])
        assert rows and len({len(r) for r in rows}) == 1


def test_one_card_per_patient(analysed, parsed: _Checker):
    patients = sorted(analysed.obs["patient"].astype(str).unique())
    assert sorted(parsed.cards) == [f"patient-{p}" for p in patients]


def test_summary_states_findings_with_numbers_and_links(report_path: Path):
    text = report_path.read_text()
    summary = text[text.index('<section id="summary">'):text.index('<section id="patients">')]
    assert "720 cells x 700 genes from 6 patients (3 resistor, 3 responder)." in summary
    findings = re.findall(r"<li>(.*?)</li>", summary)
    assert len(findings) >= 5
    for item in findings:
        assert re.search(r"padj [0-9.e-]+|TIB p &lt; ", item), item
        assert '<a href="#table-' in item


def test_states_section_names_the_small_populations(analysed, report_path: Path):
    # 720 cells of the demo simulator: every population is under what its states' seeding needs
    small = analysed.uns["hcctme_state_params"]["self_train"]["small_populations"]
    assert small
    text = report_path.read_text()
    for context, size in small.items():
        assert f"{context} ({size['cells']:,} cells for {size['states']} states, {size['needed']:,} needed)" in text


def test_methods_name_versions_tests_and_citations(analysed, report_path: Path):
    text = report_path.read_text()
    methods = text[text.index('<section id="methods">'):]
    assert get.params(analysed, "hcctme_scores")["library_version"] in methods
    assert kb.version in methods
    assert "Benjamini-Hochberg" in methods and "LIANA" in methods and "Andreatta M" in methods


def test_cards_show_kb_therapies_of_active_axes(analysed, report_path: Path):
    text = report_path.read_text()
    active = analysed.uns["hcctme_profile"].query("active")
    therapies = kb.therapies()
    expected = therapies[therapies["axis"].isin(active["axis"])]["therapy"]
    cards = text[text.index('<div class="cards">'):text.index('<section id="states">')]
    assert len(expected) and all(html.escape(t) in cards for t in expected)


def test_long_tables_are_shortened_with_the_full_tsv_beside(analysed, tmp_path: Path, monkeypatch):
    monkeypatch.setattr(Report, "MAX_ROWS", 5)
    path = report.build(analysed, tmp_path / "report.html")
    full = tmp_path / "resistance_profile.tsv"
    assert full.exists() and len(full.read_text().splitlines()) == len(analysed.uns["hcctme_profile"]) + 1
    text = path.read_text()
    assert (f"Showing the first 5 of {len(analysed.uns['hcctme_profile'])} rows; the full table is "
            "resistance_profile.tsv beside this report.") in text
    rows = json.loads(re.search(r'data-for="table-resistance_profile">(.*?)</script>', text).group(1))
    assert len(rows) == 5


def test_a_later_report_rewrites_the_full_tables_beside_it(analysed, tmp_path: Path, monkeypatch):
    """A report kept an existing <table>.tsv: the "full table" beside a new report held another run's rows."""
    monkeypatch.setattr(Report, "MAX_ROWS", 5)
    (tmp_path / "resistance_profile.tsv").write_text("sample\taxis\nold\trun\n")
    report.build(analysed, tmp_path / "report.html")
    lines = (tmp_path / "resistance_profile.tsv").read_text().splitlines()
    assert len(lines) == len(analysed.uns["hcctme_profile"]) + 1 and "old\trun" not in lines


def test_keys_the_tools_recorded_and_state_shares_of_all_cells():
    """Outside a pipeline run the report assumed obs['patient']: states called with sample_key="donor" read
    "Cell states were not called". The composition figure, labelled a fraction of cells, plotted shares of the
    called cells only."""
    adata = datasets.simulate_cohort(6, 120, n_genes=700, random_state=5)
    adata.obs = adata.obs.rename(columns={"patient": "donor"})
    ht.tl.score(adata)
    ht.tl.call_states(adata, cell_type_key="cell_type", sample_key="donor")
    text = report.build(adata)
    assert "Cell states were not called" not in text and "No sample column" not in text
    spec = json.loads(re.search(r'data-for="fig-states">(.*?)</script>', text, re.S).group(1).replace("<\\/", "</"))
    shares = pd.crosstab(adata.obs["donor"].astype(str), adata.obs["hcctme_state"].astype(str), normalize="index")
    assert spec["layout"]["yaxis"]["title"]["text"] == "fraction of the patient's cells"
    for trace in spec["data"]:
        drawn = dict(zip(trace["x"], _values(trace["y"]), strict=True))
        for donor, value in drawn.items():
            assert value == pytest.approx(shares.loc[donor.split(" (")[0], trace["name"]])


def _values(y):
    import base64

    import numpy as np

    return np.frombuffer(base64.b64decode(y["bdata"]), dtype=y["dtype"]) if isinstance(y, dict) else np.asarray(y)


def test_report_of_200_patients_stays_under_10_mb(tmp_path: Path):
    adata = datasets.simulate_cohort(200, 50, n_genes=600, random_state=3)
    pipeline.run(adata, genes=False, crosstalk=False, steps=("score", "states", "compare", "profile"))
    path = report.build(adata, tmp_path / "report.html")
    assert path.stat().st_size < 10_000_000
    checker = _Checker()
    checker.feed(path.read_text())
    assert len(checker.cards) == 200 and checker.errors == []
    profile = adata.uns["hcctme_profile"]
    assert len(profile) > Report.MAX_ROWS
    assert len((tmp_path / "resistance_profile.tsv").read_text().splitlines()) == len(profile) + 1


def test_a_folder_as_the_report_path_is_refused_before_any_file_is_written(analysed, tmp_path: Path, monkeypatch):
    """It used to build the page, write the long tables' TSVs beside the folder and fail in os.replace."""
    monkeypatch.setattr(Report, "MAX_ROWS", 5)
    (tmp_path / "myreport").mkdir()
    with pytest.raises(ValueError, match="is a folder; give a file name"):
        report.build(analysed, tmp_path / "myreport")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["myreport"]


def test_the_tours_own_comparison_and_an_unmeasured_barrier_are_reported_as_such():
    """README's tour calls tl.compare with its default key (uns["hcctme_compare"]): the report said "No comparison
    was run". Spatial data whose barrier was not measured read "No spatial coordinates"."""
    adata = datasets.simulate_cohort(6, 120, n_genes=700, spatial=True, random_state=5)
    ht.tl.score(adata)
    ht.tl.call_states(adata, cell_type_key="cell_type", sample_key="patient")
    ht.tl.compare(adata, condition_key="response", sample_key="patient", reference="responder",
                  features="composition", groupby="hcctme_state", parent_key="cell_type")
    text = report.build(adata)
    assert "<h3>States within their cell type</h3>" in text and "No comparison was run" not in text
    assert "The tumour immune barrier was not measured (hcctme.tl.tib, on spatial data)." in text


def test_report_returns_text_without_path(analysed):
    text = report.build(analysed)
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")


def test_report_needs_scores():
    adata = datasets.simulate_cohort(4, 60, n_genes=600, random_state=1)
    with pytest.raises(KeyError, match=r"tl\.score"):
        report.build(adata)
    ht.tl.score(adata, ["TAM2_SPP1", "TREG"], key_added="mine")  # it told the user to pass a key it cannot take
    with pytest.raises(KeyError, match=r"reads the tools' default keys.*'mine'"):
        report.build(adata)


def _browser():
    """A headless Chromium driven by selenium, or the reason it cannot run here."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        return None, "selenium is not installed (pip install -e '.[dev]')"
    if not chromium or not driver:
        return None, ("chromium/chromedriver not installed (.ci/run installs them: "
                      "apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(arg)
    options.binary_location = chromium
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options), ""


@pytest.fixture(scope="module")
def browser():
    driver, reason = _browser()
    if driver is None:
        pytest.skip(f"browser test skipped: {reason}; the HTML checks above still ran")
    yield driver
    driver.quit()


def test_report_works_in_headless_chromium(browser, analysed, report_path: Path, tmp_path: Path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(report_path.as_uri())
    WebDriverWait(browser, 120).until(lambda d: d.execute_script("return document.body.dataset.interactive"))
    timing = browser.execute_script("const t = performance.getEntriesByType('navigation')[0];"
                                    "const m = performance.getEntriesByName('hcctme-interactive')[0];"
                                    "return {domContentLoaded: t.domContentLoadedEventEnd, interactive: m.startTime};")
    (tmp_path / "timing.json").write_text(json.dumps(timing))
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")

    for section in browser.find_elements(By.CSS_SELECTOR, "main > section"):
        # tables and figures are drawn when they come near the viewport
        for element in section.find_elements(By.CSS_SELECTOR, ".plotly-lazy, table.interactive"):
            browser.execute_script("arguments[0].scrollIntoView()", element)
            done = "data-rendered" if "plotly-lazy" in element.get_attribute("class") else "data-ready"
            WebDriverWait(browser, 60).until(lambda d, e=element, a=done: e.get_attribute(a) == "true")
        browser.execute_script("arguments[0].scrollIntoView()", section)
        assert section.is_displayed() and section.size["height"] > 40
        section.screenshot(str(tmp_path / f"{section.get_attribute('id')}.png"))
    assert sorted(p.stem for p in tmp_path.glob("*.png")) == sorted(SECTIONS)
    tables = browser.find_elements(By.CSS_SELECTOR, "table.interactive")
    assert tables and all("dataTable" in t.get_attribute("class") for t in tables)
    assert browser.execute_script("return document.body.dataset.tablesReady") == "true"
    assert browser.execute_script("return document.querySelectorAll('.js-plotly-plot .main-svg').length") > 0
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")

    patient = sorted(analysed.obs["patient"].astype(str).unique())[-1]
    search = browser.find_element(By.ID, "patient-search")
    browser.execute_script("arguments[0].scrollIntoView()", search)
    search.send_keys(patient)
    visible = [c.get_attribute("id") for c in browser.find_elements(By.CSS_SELECTOR, ".card") if c.is_displayed()]
    assert visible == [f"patient-{patient}"]
    assert browser.find_element(By.ID, "cards-count").text == "1 shown"
    browser.find_element(By.ID, f"patient-{patient}").screenshot(str(tmp_path / "card.png"))

    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []


def test_results_of_samples_a_subset_no_longer_holds_are_warned_of(analysed):
    """adata[mask].copy() keeps uns: the header counted 4 patients while the findings quoted the 6-patient tests."""
    keep = ["P01", "P02", "P03", "P04"]
    subset = analysed[analysed.obs["patient"].isin(keep)].copy()
    with pytest.warns(UserWarning, match="Results computed on samples this data no longer holds: .*P05, P06"):
        text = report.build(subset)
    assert "re-run the tools on this data" in text
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        assert "no longer holds" not in report.build(analysed)


def test_a_paired_comparison_pooled_by_patient_is_not_read_as_stale():
    """Its units are 'P01|pre', 'P01|on': read against obs[patient_key] every one looked gone."""
    adata = datasets.simulate_cohort(4, 120, n_genes=600, random_state=2)
    ht.tl.score(adata)
    timepoint = np.where(np.arange(adata.n_obs) % 2 == 0, "pre", "on")
    adata.obs["tp"] = timepoint
    adata.obs["sample"] = adata.obs["patient"].astype(str) + "_" + timepoint
    ht.tl.compare(adata, condition_key="tp", sample_key="sample", patient_key="patient", reference="pre",
                  groupby="cell_type", min_cells=3)
    assert "|" in adata.uns["hcctme_compare_params"]["units"]["unit"].iloc[0]
    assert report._results.samples_gone(adata) == {}
    subset = adata[adata.obs["patient"] != "P04"].copy()
    assert report._results.samples_gone(subset) == {"hcctme_compare": ["P04"]}
