"""Report size and opening time in headless Chromium, against a blank page opened by the same browser.

For each report given (an ``hcctme.h5ad`` of a run, or a simulated cohort of ``--patients`` patients),
the script builds ``report.html`` and opens it ``--repeats`` times in headless Chromium (selenium,
Debian's chromium + chromium-driver), printing the file size, the time to DOMContentLoaded, the time
until the page is interactive (the tables library loaded; tables and figures are then drawn as they
come into view), the same for a blank page (the browser's own cost), and the machine's load average.

Usage::

    python benchmarks/report_bench.py --h5ad hcctme_demo_out/hcctme.h5ad
    python benchmarks/report_bench.py --patients 200        # simulated, no crosstalk/genes (~2 min)
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path


def _cohort(patients: int):
    from hcctme import datasets, pipeline

    adata = datasets.simulate_cohort(patients, 50, n_genes=600, spatial=True, random_state=3)
    pipeline.run(adata, genes=False, crosstalk=False)
    return adata


def _driver():
    import shutil

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900"):
        options.add_argument(arg)
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def _open(driver, path: Path) -> tuple[float, float]:
    """Seconds from navigation start to DOMContentLoaded and to the tables library loaded (page's own clock)."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(path.as_uri())
    WebDriverWait(driver, 120, poll_frequency=0.02).until(
        lambda d: d.execute_script("return document.body.dataset.interactive || !document.querySelector('main')"))
    dom, ready = driver.execute_script(
        "const nav = performance.getEntriesByType('navigation')[0];"
        "const mark = performance.getEntriesByName('hcctme-interactive')[0];"
        "return [nav.domContentLoadedEventEnd, mark ? mark.startTime : nav.loadEventEnd];")
    return dom / 1000, ready / 1000


def main() -> None:
    """Build each report and time its opening."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--h5ad", action="append", default=[], help="hcctme.h5ad of a run (repeatable)")
    parser.add_argument("--patients", type=int, action="append", default=[], help="simulated cohort size")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import anndata as ad

    from hcctme import report

    work = Path(tempfile.mkdtemp(prefix="hcctme_report_bench_"))
    blank = work / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body><p>blank</p></body></html>")
    cases = [(Path(p).name, lambda p=p: ad.read_h5ad(p)) for p in args.h5ad]
    cases += [(f"{n} simulated patients", lambda n=n: _cohort(n)) for n in args.patients]
    driver = _driver()
    try:
        base = [_open(driver, blank) for _ in range(args.repeats)]
        base_dom = statistics.median(b[0] for b in base)
        base_ready = statistics.median(b[1] for b in base)
        print(f"blank page: DOMContentLoaded {base_dom:.2f} s, loaded {base_ready:.2f} s")
        for i, (name, load) in enumerate(cases):
            adata = load()
            start = time.perf_counter()
            path = Path(report.build(adata, work / f"case{i}" / "report.html"))
            built = time.perf_counter() - start
            times = [_open(driver, path) for _ in range(args.repeats)]
            dom = statistics.median(t[0] for t in times)
            ready = statistics.median(t[1] for t in times)
            print(f"{name}: {adata.n_obs:,} cells, {path.stat().st_size / 1e6:.2f} MB, built in {built:.1f} s; "
                  f"DOMContentLoaded {dom:.2f} s, interactive {ready:.2f} s (load average {os.getloadavg()[0]:.1f} "
                  f"on {os.cpu_count()} CPUs)")
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
