"""``minigpt4-demo``: the web demo on 127.0.0.1 (gradio, no share link, no analytics): chat about
images, and a run folder's checkpoints side by side. ``/answer`` is its API for scripts."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from minigpt4.errors import run_command
from minigpt4.run_dir import PRETRAINED
from minigpt4.utils.logging import setup_logger

from .chat import add_model_arguments, settings_from

LOCAL_HOSTS = ("127.0.0.1", "localhost")


def offline_environment() -> None:
    """No analytics, no telemetry, no proxy for the local server (gradio checks its own URL through it)."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    for key in ("NO_PROXY", "no_proxy"):
        have = [h for h in os.environ.get(key, "").split(",") if h]
        os.environ[key] = ",".join(have + [h for h in LOCAL_HOSTS if h not in have])


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="The web demo: chat about images; compare a run's checkpoints side by side.")
    which = ap.add_mutually_exclusive_group()
    which.add_argument("--ckpt", default=PRETRAINED, metavar="PATH", help="a checkpoint (compared with pretrained), or a run folder")
    which.add_argument("--run", default=None, metavar="RUN_DIR", help="a run folder: pretrained and every checkpoint_<epoch>.pth")
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    ap.add_argument("--port", type=int, default=None, help="port (default: the first free one from 7860)")
    ap.add_argument("--share", action="store_true", help="also ask gradio for a public share link (needs the internet)")
    add_model_arguments(ap)
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    offline_environment()
    setup_logger(0)
    from minigpt4.chat import load_engine
    from minigpt4.chat.web import build_demo

    engine = load_engine(
        args.cfg_path,
        args.ckpt,
        args.options,
        run_dir=args.run,
        train_config=args.train_config,
        device=args.device,
        load_8bit=args.load_8bit,
    )
    title = f"{args.run or args.ckpt} ({args.cfg_path})"
    demo = build_demo(engine, title, settings_from(args), args.template)
    demo.queue(default_concurrency_limit=1).launch(server_name=args.host, server_port=args.port, share=args.share, show_error=True)
    return 0


def run(argv: Sequence[str] | None = None) -> int:
    status: list[int] = []
    return run_command(lambda a: status.append(main(a)), argv) or status[0]
