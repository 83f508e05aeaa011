"""report.html, the caption gallery beside the summary: its HTML, and the page in a real headless Chromium."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from minigpt4.evaluation import METRICS
from minigpt4.evaluation.report import PAGE_SIZE, render
from minigpt4.evaluation.summary import write_summary
from minigpt4.quickstart.report import report

NAMES = [("pretrained", -1), ("checkpoint_0", 0), ("checkpoint_1", 1)]


def caption(name: str, i: int) -> str:
    """pretrained says "thing i"; checkpoint_0 changes every even image, checkpoint_1 every third."""
    if name == "checkpoint_1" and i % 3 == 0:
        return f"a red square {i}"
    if name != "pretrained" and i % 2 == 0:
        return f"a blue circle {i}"
    return f"thing {i}"


def make_eval(tmp_path: Path, n: int = 60, names=NAMES, drop: dict | None = None) -> Path:
    """A run folder whose eval/ holds metrics.json and captions.json of ``names`` for ``n`` real JPEGs, as
    the job writes them (file names relative to the config's image_path); ``drop``: {name: image indices
    that name did not caption}."""
    run = tmp_path / "run"
    images = tmp_path / "images"
    images.mkdir(parents=True)
    for i in range(n):
        Image.new("RGB", (120, 90), (i * 4 % 256, 255 - i * 4 % 256, 90)).save(images / f"{i}.jpg")
    for k, (name, epoch) in enumerate(names):
        folder = run / "eval" / name
        folder.mkdir(parents=True)
        scores = {m: round(0.1 * (k + 1) + 0.01 * j, 4) for j, m in enumerate(METRICS)}
        (folder / "metrics.json").write_text(
            json.dumps(
                {
                    "name": name,
                    "epoch": epoch,
                    "dataset": "flickr30k_eval",
                    "split": "test",
                    "num_images": n,
                    "limit": None,
                    "scores": scores,
                    "fingerprint": {"settings_digest": "s1"},
                    "config": {"evaluation_datasets": {"flickr30k_eval": {"build_info": {"image_path": str(images)}}}},
                }
            )
        )
        skip = (drop or {}).get(name, ())
        (folder / "captions.json").write_text(
            json.dumps(
                [
                    {
                        "image_id": str(i),
                        "image": f"{i}.jpg",
                        "caption": caption(name, i),
                        "references": [f"true caption {i}", "another one"],
                    }
                    for i in range(n)
                    if i not in skip
                ]
            )
        )
    return run


def test_report_html_content(tmp_path):
    run = make_eval(tmp_path, n=5, drop={"checkpoint_0": {4}})
    data = json.loads((run / "eval" / "pretrained" / "captions.json").read_text())
    data[0]["caption"] = '<script>alert(1)</script> & "quotes"'
    data[1]["image"] = str(tmp_path / "gone.jpg")  # a missing image file (absolute: not under image_path)
    data[1]["references"] = ["a <b>bold</b> reference"]
    (run / "eval" / "pretrained" / "captions.json").write_text(json.dumps(data))
    out = write_summary(run)
    assert set(out) == {"csv", "md", "png", "html"} and out["html"] == run / "eval" / "report.html"
    html = out["html"].read_text()
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot;" in html
    assert "a &lt;b&gt;bold&lt;/b&gt; reference" in html
    assert f"missing image: {tmp_path / 'gone.jpg'}" in html
    assert html.count('src="data:image/jpeg;base64,') == 4  # the four images that exist, embedded
    assert '<img class="chart" src="summary.png"' in html  # relative to the eval folder
    # image 0: pretrained's caption (escaped) -> checkpoint_0 changed -> checkpoint_1 changed again
    row0 = html.split('<tr data-id="0">')[1].split("</tr>")[0]
    assert row0.count('class="cap changed"') == 2
    row1 = html.split('<tr data-id="1">')[1].split("</tr>")[0]  # "thing 1" throughout
    assert 'class="cap first">thing 1<' in row1 and row1.count('class="cap same"') == 2
    row4 = html.split('<tr data-id="4">')[1].split("</tr>")[0]  # not captioned by checkpoint_0
    assert 'class="cap absent"' in row4 and "\u2014" in row4 and row4.count('class="cap changed"') == 1
    table = html.split('<table class="metrics">')[1].split("</table>")[0]
    assert table.count("<tr>") == 1 + len(NAMES) and "<td class=num>0.1000</td>" in table


def test_report_pages_and_unreadable_captions(tmp_path):
    run = make_eval(tmp_path, n=7)
    (run / "eval" / "checkpoint_1" / "captions.json").write_text("{not json")
    html = render(run / "eval", [n for n, _ in NAMES], ["checkpoint"], [["x"]], "t", page_size=3, thumb_px=32)
    assert html.count('<section class="page') == 3 and 'id="p3"' in html
    assert "images 7-7 of 7" in html and "checkpoint_1: unreadable captions.json" in html
    assert html.count('class="cap absent"') == 7  # every checkpoint_1 cell


def test_quickstart_report_links_the_gallery(tmp_path):
    run = make_eval(tmp_path, n=2)
    write_summary(run)
    assert f"Gallery: {(run / 'eval' / 'report.html').resolve().as_uri()} (" in report(run, samples=1)


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
