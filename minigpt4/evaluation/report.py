"""``report.html``: a self-contained caption gallery of a run's evaluations.

Written by ``summary.write_summary`` beside ``summary.{csv,md,png}``: the title, the metric table (the
rows of ``summary.md``), the chart (``summary.png``, by relative path) and, per test image, a thumbnail,
its references and every checkpoint's caption in epoch order; a caption that differs from the one
before it (the previous checkpoint that captioned the image) is marked ``changed``, an unchanged one is
dimmed. One file, no server and nothing fetched: thumbnails are small JPEGs embedded as ``data:`` URLs
(the eval folder can be copied anywhere), and the images are cut into pages of ``page_size`` that a
small inline script shows one at a time (``report.html#p2`` is page 2; without JavaScript every page
is shown). Image files are found as the evaluation read them: each ``captions.json`` ``image`` under
the dataset's ``build_info.image_path`` (from ``metrics.json``; a relative one from the current
folder). A missing or unreadable image gets a placeholder naming its path; an image that one
checkpoint did not caption gets an em dash in that cell.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
from collections.abc import Sequence
from html import escape
from pathlib import Path

from PIL import Image

from minigpt4.run_dir import CAPTIONS_JSON, METRICS_JSON
from minigpt4.utils.io import atomic_write_text

REPORT_HTML = "report.html"
PAGE_SIZE = 50
THUMB_PX = 96
MISSING = "\u2014"

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;max-width:1600px}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.5em}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 7px;vertical-align:top}
table.metrics td.num{text-align:right;font-variant-numeric:tabular-nums}
img.chart{max-width:min(100%,1000px);border:1px solid #ddd}
table.gallery{width:100%}table.gallery th{background:#f3f3f3;position:sticky;top:0}
td.thumb{width:{px}px;text-align:center}td.thumb img{max-width:{px}px;max-height:{px}px}
.noimg{width:{px}px;min-height:60px;background:#eee;color:#a00;font-size:11px;word-break:break-all}
.id{font-size:11px;color:#666;word-break:break-all}
td.refs{width:30%;min-width:220px}ul.refs{margin:0;padding-left:1.1em;color:#555;font-size:12px;line-height:1.3}
.cap.changed{background:#fff3b0;font-weight:600}.cap.same{color:#999}.cap.absent{color:#bbb}
.tag{font-size:10px;font-weight:normal;color:#8a6d00;text-transform:uppercase;margin-left:.3em}
nav.pager{margin:.8em 0}nav.pager a{margin:0 2px;padding:2px 6px;border:1px solid #ccc;text-decoration:none}
nav.pager a.on{background:#333;color:#fff}nav.pager .where{margin:0 .8em}
html.js section.page{display:none}html.js section.page.current{display:block}
"""

SCRIPT = """
(function(){
  var pages=document.querySelectorAll('section.page'), n=pages.length;
  function current(){var m=/^#p(\\d+)$/.exec(location.hash);var k=m?+m[1]:1;return Math.min(Math.max(k,1),n);}
  function show(scroll){
    var k=current();
    pages.forEach(function(p,i){p.classList.toggle('current',i===k-1);});
    document.querySelectorAll('nav.pager').forEach(function(nav){
      nav.querySelectorAll('a.num').forEach(function(a,i){a.classList.toggle('on',i===k-1);});
      nav.querySelector('a.prev').href='#p'+Math.max(k-1,1);
      nav.querySelector('a.next').href='#p'+Math.min(k+1,n);
      nav.querySelector('.where').textContent=pages[k-1].dataset.where;
    });
    if(scroll){document.getElementById('gallery').scrollIntoView();}
  }
  window.addEventListener('hashchange',function(){show(true);});
  show(false);
})();
"""


def _inline_markdown(text: str) -> str:
    """Escape ``text`` and turn its ``**bold**`` and ```code``` into HTML (the summary's notes)."""
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", escape(text))
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def thumbnail(path: str | os.PathLike, px: int = THUMB_PX) -> str | None:
    """A ``data:image/jpeg`` URL of the image shrunk to fit ``px`` x ``px``, or None if it cannot be read."""
    try:
        with Image.open(path) as im:
            im.draft("RGB", (px, px))  # JPEG: decode at a reduced scale, much faster on large images
            im = im.convert("RGB")
            im.thumbnail((px, px))
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=75)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def image_root(eval_dir: Path, name: str) -> str | None:
    """The folder that a result's ``captions.json`` image names are relative to: the evaluated dataset
    entry's ``build_info.image_path`` in its ``metrics.json`` (None when it does not say)."""
    try:
        m = json.loads((eval_dir / name / METRICS_JSON).read_text())
        entries = m["config"]["evaluation_datasets"]
        entry = entries.get(m.get("dataset")) or next(iter(entries.values()))
        return str(entry["build_info"]["image_path"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError, StopIteration):
        return None


def load_captions(eval_dir: Path, names: Sequence[str]) -> tuple[dict[str, dict[str, dict]], list[str]]:
    """Each name's ``captions.json`` as ``{image_id: record}``, each record's image file in ``"path"``
    (its ``image`` under the image root, as the dataset reads it), and notes about unreadable files."""
    out: dict[str, dict[str, dict]] = {}
    notes = []
    for name in names:
        path, root = eval_dir / name / CAPTIONS_JSON, image_root(eval_dir, name)
        try:
            out[name] = {
                str(r["image_id"]): {**r, "path": os.path.join(root or "", str(r.get("image") or ""))} for r in json.loads(path.read_text())
            }
        except FileNotFoundError:
            out[name] = {}
            notes.append(f"{name}: no {CAPTIONS_JSON}")
        except (OSError, ValueError, KeyError, TypeError) as e:
            out[name] = {}
            notes.append(f"{name}: unreadable {CAPTIONS_JSON} ({e!r})")
    return out, notes


def _thumb_cell(image: str, px: int) -> str:
    src = thumbnail(image, px) if image else None
    if src is None:
        why = "missing image" if not image or not os.path.exists(image) else "unreadable image"
        return f'<td class="thumb"><div class="noimg" title="{escape(image)}">{why}: {escape(image)}</div></td>'
    return f'<td class="thumb"><img src="{src}" alt="{escape(image)}" title="{escape(image)}" loading="lazy"></td>'


def _caption_cells(image_id: str, names: Sequence[str], captions: dict[str, dict[str, dict]], changes: dict[str, int]) -> list[str]:
    cells, before = [], None
    for name in names:
        record = captions[name].get(image_id)
        if record is None:
            cells.append(f'<td class="cap absent" title="{escape(name)} did not caption this image">{MISSING}</td>')
            continue
        caption = str(record.get("caption", ""))
        if before is None:
            cells.append(f'<td class="cap first">{escape(caption)}</td>')
        elif caption != before:
            changes[name] += 1
            cells.append(f'<td class="cap changed">{escape(caption)}<span class="tag">changed</span></td>')
        else:
            cells.append(f'<td class="cap same" title="same as before">{escape(caption)}</td>')
        before = caption
    return cells


def _pager(pages: int) -> str:
    nums = "".join(f'<a class="num{" on" if k == 1 else ""}" href="#p{k}">{k}</a>' for k in range(1, pages + 1))
    return (
        f'<nav class="pager"><a class="prev" href="#p1">&lsaquo; previous</a>{nums}'
        f'<a class="next" href="#p{min(2, pages)}">next &rsaquo;</a><span class="where"></span></nav>'
    )


def render(
    eval_dir: Path,
    names: Sequence[str],
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    title: str,
    png_path: Path | None = None,
    notes: Sequence[str] = (),
    page_size: int = PAGE_SIZE,
    thumb_px: int = THUMB_PX,
) -> str:
    """The HTML text of the report (see the module docstring)."""
    captions, problems = load_captions(eval_dir, names)
    order: dict[str, dict] = {}  # every image id, in the first checkpoint's order, then new ones as they come
    for name in names:
        for image_id, record in captions[name].items():
            order.setdefault(image_id, record)
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td{' class=num' if i >= 3 else ''}>{escape(str(c))}</td>" for i, c in enumerate(r)) + "</tr>" for r in rows
    )
    parts = [
        f"<h1>{escape(title)}</h1>",
        *(f"<p>{_inline_markdown(n)}</p>" for n in notes),
        f'<table class="metrics"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>',
    ]
    if png_path is not None and Path(png_path).is_file():
        rel = Path(os.path.relpath(png_path, eval_dir)).as_posix()
        parts.append(f'<p><img class="chart" src="{escape(rel)}" alt="metrics over epochs"></p>')
    parts.append(f'<h2 id="gallery">Captions of {len(order)} images</h2>')
    parts += [f"<p>{escape(p)}</p>" for p in problems]
    changes = dict.fromkeys(names, 0)
    items = list(order.items())
    pages = max(1, -(-len(items) // page_size))
    header = "<tr><th>image</th><th>references</th>" + "".join(f"<th>{escape(n)}</th>" for n in names) + "</tr>"
    sections = []
    for p in range(pages):
        chunk = items[p * page_size : (p + 1) * page_size]
        trs = []
        for image_id, first in chunk:
            image = first["path"] if first.get("image") else ""
            refs = "".join(f"<li>{escape(str(r))}</li>" for r in first.get("references") or [])
            trs.append(
                f'<tr data-id="{escape(image_id)}">{_thumb_cell(image, thumb_px)}'
                f'<td class="refs"><div class="id">{escape(image_id)}</div><ul class="refs">{refs}</ul></td>'
                + "".join(_caption_cells(image_id, names, captions, changes))
                + "</tr>"
            )
        where = (
            f"page {p + 1} of {pages}: images {p * page_size + 1}-{p * page_size + len(chunk)} of {len(items)}" if items else "no captions"
        )
        sections.append(
            f'<section class="page{" current" if p == 0 else ""}" id="p{p + 1}" '
            f'data-where="{escape(where)}"><table class="gallery"><thead>{header}</thead>'
            f"<tbody>{''.join(trs)}</tbody></table></section>"
        )
    if len(names) > 1:
        parts.append(
            "<p>Captions that differ from the previous checkpoint's: "
            + ", ".join(f"{escape(n)} {changes[n]}" for n in names[1:])
            + '. <span class="cap changed">changed</span> <span class="cap same">same as before</span></p>'
        )
    parts += [_pager(pages), *sections, _pager(pages)]
    css = CSS.replace("{px}", str(thumb_px))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<title>{escape(title)}</title><link rel="icon" href="data:,">'
        "<script>document.documentElement.classList.add('js');</script>"
        f"<style>{css}</style></head>\n<body>\n" + "\n".join(parts) + f"\n<script>{SCRIPT}</script>\n</body></html>\n"
    )


def write_report(
    eval_dir: str | os.PathLike,
    names: Sequence[str],
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    title: str,
    png_path: str | os.PathLike | None = None,
    notes: Sequence[str] = (),
    page_size: int = PAGE_SIZE,
    thumb_px: int = THUMB_PX,
) -> Path:
    """Write ``eval_dir/report.html`` atomically for the results ``names`` (epoch order) whose metric
    table is ``columns``/``rows``; returns its path."""
    eval_dir = Path(eval_dir)
    html = render(eval_dir, names, columns, rows, title, Path(png_path) if png_path else None, notes, page_size, thumb_px)
    return atomic_write_text(eval_dir / REPORT_HTML, html)
