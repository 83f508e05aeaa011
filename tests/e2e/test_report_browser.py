"""report.html in a real headless Chromium (its HTML: tests/unit/evaluation/test_report.py)."""

from __future__ import annotations

import shutil

import pytest

from minigpt4.evaluation.report import PAGE_SIZE
from minigpt4.evaluation.summary import write_summary
from tests.helpers.reports import NAMES, caption, make_eval


@pytest.fixture(scope="module")
def browser():
    if shutil.which("chromium") is None:
        pytest.skip("no chromium on PATH: apt-get install chromium (Debian) to run the browser test")
    sync_api = pytest.importorskip("playwright.sync_api", reason="no playwright: pip install -e '.[dev]'")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        yield b
        b.close()


def test_report_in_headless_chromium(tmp_path, browser):
    n = 60
    out = write_summary(make_eval(tmp_path, n=n))
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(out["html"].as_uri())
    to_bottom = "() => window.scrollTo(0, document.body.scrollHeight)"  # thumbnails are loading="lazy"
    page.evaluate(to_bottom)
    visible_images = (
        "() => [...document.querySelectorAll('section.page')].filter(s => s.offsetParent)"
        ".flatMap(s => [...s.querySelectorAll('td.thumb img')])"
    )
    loaded = f"({visible_images})().filter(i => i.complete && i.naturalWidth > 0).length"
    page.wait_for_function(f"() => {loaded} === {PAGE_SIZE}", timeout=5000)
    assert page.evaluate(f"() => ({visible_images})().length") == PAGE_SIZE
    assert page.evaluate("() => document.querySelector('img.chart').naturalWidth") > 0
    assert page.locator("table.metrics tbody tr").count() == len(NAMES)
    assert page.locator("section.page.current td.cap.changed").count() == sum(
        caption(a, i) != caption(b, i) for i in range(PAGE_SIZE) for (a, _), (b, _) in zip(NAMES, NAMES[1:])
    )
    assert page.locator("nav.pager .where").first.inner_text() == f"page 1 of 2: images 1-{PAGE_SIZE} of {n}"

    page.locator("nav.pager").first.get_by_text("next").click()
    page.evaluate(to_bottom)
    page.wait_for_function(f"() => {loaded} === {n - PAGE_SIZE}", timeout=5000)
    assert page.url.endswith("#p2")
    ids = page.eval_on_selector_all("section.page.current tr[data-id]", "rows => rows.map(r => r.dataset.id)")
    assert ids == [str(i) for i in range(PAGE_SIZE, n)]
    assert page.locator("section.page:not(.current) td.thumb img").first.is_hidden()
    assert page.locator("nav.pager a.num.on").first.inner_text() == "2"
    assert errors == []
    page.close()
