"""minigpt4-demo on 127.0.0.1: the command's /answer endpoint through gradio_client, and the page (the
app in-process) in headless Chromium: upload, ask, a streamed answer, two checkpoints side by side, a
bad image and a bad checkpoint named in the page. No request leaves 127.0.0.1."""

from __future__ import annotations

import select
import shutil
import subprocess
import sys
import time

import pytest

from minigpt4.chat import ChatSession, GenerationSettings, load_engine
from minigpt4.commands.demo import offline_environment
from tests.helpers.chat import PHOTOS, chat_config, run_folder
from tests.helpers.nodes import free_ports
from tests.helpers.paths import REPO
from tests.helpers.processes import subprocess_env

DEFAULTS = GenerationSettings(max_new_tokens=24)


@pytest.fixture(scope="module")
def demo(tiny_stack, tmp_path_factory):
    """The demo of a run folder: checkpoint_0 broken, checkpoint_1 and checkpoint_2 (the latest) good."""
    offline_environment()
    root = tmp_path_factory.mktemp("demo")
    run = run_folder(root, tiny_stack, epochs=3)
    (run / "checkpoint_0.pth").write_text("not a checkpoint")
    cfg = str(chat_config(root, tiny_stack))
    engine = load_engine(cfg, run_dir=str(run))
    from minigpt4.chat.web import build_demo

    app = build_demo(engine, "test run", DEFAULTS)
    (port,) = free_ports(1)
    app.queue(default_concurrency_limit=1).launch(
        server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, show_error=True
    )
    yield {"url": f"http://127.0.0.1:{port}/", "engine": engine, "root": root, "cfg": cfg, "run": run}
    app.close()


def wait_for_line(proc: subprocess.Popen, text: str, timeout: float = 90) -> str:
    """Read the process's output until a line holds ``text``; everything read so far."""
    seen, deadline = "", time.monotonic() + timeout
    while text not in seen:
        assert proc.poll() is None and time.monotonic() < deadline, f"no {text!r} in:\n{seen[-3000:]}"
        if select.select([proc.stdout], [], [], 1)[0]:
            seen += proc.stdout.readline()
    return seen


def test_the_demo_command_answers_scripts_at_slash_answer(demo, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    (port,) = free_ports(1)
    cmd = [sys.executable, "-m", "minigpt4.cli", "demo", "--cfg-path", demo["cfg"], "--run", str(demo["run"])]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port), "--max-new-tokens", "24"],
        cwd=REPO,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        log = wait_for_line(proc, f"http://127.0.0.1:{port}")
        assert "loaded llama_proj.weight, llama_proj.bias from" in log and "checkpoint_2.pth" in log  # the latest
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        got = client.predict(handle_file(str(PHOTOS[0])), "What is this?", api_name="/answer")
        assert client.predict(handle_file(str(PHOTOS[0])), "What is this?", api_name="/answer") == got  # greedy: repeatable
        broken = tmp_path / "broken.jpg"
        broken.write_bytes(b"not a jpeg")
        with pytest.raises(AppError, match="cannot read image .*broken.jpg"):
            client.predict(handle_file(str(broken)), "What is this?", api_name="/answer")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    engine = demo["engine"]
    engine.use("checkpoint_2")
    expected = ChatSession(engine, settings=DEFAULTS)
    expected.add_image(PHOTOS[0])
    assert got == expected.answer("What is this?") and got


def test_the_page_streams_answers_and_compares_checkpoints_side_by_side(demo, tmp_path):
    if shutil.which("chromium") is None:
        pytest.skip("no chromium on PATH: apt-get install chromium (Debian) to run the browser test")
    pytest.importorskip("playwright.sync_api", reason="no playwright: pip install -e '.[dev]'")
    from tests.helpers.demo_page import WATCH_ANSWERS, answers, ask, chromium, compare, open_demo, send

    # a real model takes tens of milliseconds per token; the tiny one would finish before the page
    # could show a partial answer, so each step is slowed to that pace here
    hook = demo["engine"].model.llama_model.register_forward_pre_hook(lambda *_: time.sleep(0.02))
    with chromium() as browser:
        page = open_demo(browser, demo["url"])
        assert page.locator("#chat-0").inner_text().startswith("checkpoint_2")  # the latest, selected
        page.evaluate(WATCH_ANSWERS)
        ask(page, "What is this?", [PHOTOS[0]])
        (first,) = answers(page, 0)
        seen = page.evaluate("() => window.seenAnswers")
        assert seen[-1] == first and any(first.startswith(s) and s != first for s in seen)  # a part came first
        assert page.locator("#chat-0 img").count() >= 1  # the uploaded image is in the conversation

        compare(page, ["checkpoint_1"])  # a new conversation in two columns, in the run's order
        assert page.locator("#chat-1").is_visible()
        assert page.locator("#chat-0").inner_text().startswith("checkpoint_1")
        ask(page, "Describe it.", [PHOTOS[1]])
        assert page.locator("#status").inner_text() == "Answered by checkpoint_1, checkpoint_2 (turn 1): greedy, max_new_tokens 24"
        (left,), (right,) = answers(page, 0), answers(page, 1)
        assert left and right and left != right
        page.screenshot(path=str(tmp_path / "demo.png"))

        broken = tmp_path / "broken.jpg"
        broken.write_bytes(b"not a jpeg")
        page.locator("#ask input[type=file]").set_input_files(str(broken))
        send(page, "And this?")
        page.get_by_text("cannot read image").first.wait_for(timeout=20_000)
        assert "broken.jpg" in page.get_by_text("cannot read image").first.inner_text()

        page.reload()
        page.wait_for_selector("#ask textarea")
        compare(page, ["checkpoint_0"])
        send(page, "Hello?")
        page.get_by_text("checkpoint checkpoint_0").first.wait_for(timeout=20_000)
        assert "not a PyTorch checkpoint" in page.get_by_text("checkpoint checkpoint_0").first.inner_text()
        assert page.outside == []
    hook.remove()
