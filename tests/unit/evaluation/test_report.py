"""report.html, the caption gallery beside the summary: its HTML, and the page in a real headless Chromium."""

from __future__ import annotations

import json

from minigpt4.evaluation.report import render
from minigpt4.evaluation.summary import write_summary
from minigpt4.quickstart.report import report
from tests.helpers.reports import NAMES, make_eval


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
