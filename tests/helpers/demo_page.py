"""Drive the web demo (``minigpt4-demo``) in Debian's headless Chromium through playwright: the browser
test uses these, and so does the screenshot in docs/chat.md:

    python -m tests.helpers.demo_page URL OUT.png IMAGE QUESTION [--compare NAME ...]
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

# no network chatter from the browser: the demo must work with no internet (spec chat-and-demo.md A3)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# records each text the first column's last answer shows, so a test can see that it streamed
WATCH_ANSWERS = """() => {
  window.seenAnswers = [];
  const chat = document.querySelector('#chat-0');
  new MutationObserver(() => {
    const bots = chat.querySelectorAll('[data-testid=bot]');
    const text = bots.length ? bots[bots.length - 1].innerText : '';
    if (text && window.seenAnswers[window.seenAnswers.length - 1] !== text) window.seenAnswers.push(text);
  }).observe(chat, {childList: true, subtree: true, characterData: true});
}"""


@contextmanager
def chromium() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def open_demo(browser, url: str):
    """A page on the demo, with every request that leaves 127.0.0.1 listed in ``page.outside``."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.outside = []
    page.on("request", lambda r: page.outside.append(r.url) if not r.url.startswith(("http://127.0.0.1", "data:", "blob:")) else None)
    page.goto(url)
    page.wait_for_selector("#ask textarea")
    return page


def answers(page, column: int) -> list[str]:
    return page.locator(f"#chat-{column} [data-testid=bot]").all_inner_texts()


def ask(page, question: str, images: Sequence[str | Path] = (), timeout: float = 60_000) -> None:
    """Add ``images``, send ``question`` and wait until every column has answered (``#status``)."""
    if images:
        page.locator("#ask input[type=file]").set_input_files([str(i) for i in images])
        page.wait_for_function(f"() => document.querySelectorAll('#ask .thumbnail-item').length >= {len(images)}", timeout=timeout)
    before = page.locator("#status").inner_text()
    send(page, question)
    done = "(before) => { const t = document.querySelector('#status').innerText; return t !== before && t.startsWith('Answered by'); }"
    page.wait_for_function(done, arg=before, timeout=timeout)


def send(page, question: str) -> None:
    page.locator("#ask textarea").fill(question)
    page.locator("#ask textarea").press("Enter")


def compare(page, names: Sequence[str]) -> None:
    """Tick the checkpoints ``names`` (besides those ticked)."""
    for name in names:
        page.locator("#checkpoints").get_by_label(name, exact=True).check()
    page.wait_for_timeout(300)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Screenshot a running minigpt4-demo after one question.")
    ap.add_argument("url")
    ap.add_argument("out")
    ap.add_argument("image")
    ap.add_argument("question")
    ap.add_argument("--compare", nargs="*", default=[], metavar="NAME", help="checkpoints to tick first")
    args = ap.parse_args(argv)
    with chromium() as browser:
        page = open_demo(browser, args.url)
        compare(page, args.compare)
        ask(page, args.question, [args.image])
        page.screenshot(path=args.out)
        print(f"wrote {args.out}; requests outside 127.0.0.1: {page.outside or 'none'}")


if __name__ == "__main__":
    main()
