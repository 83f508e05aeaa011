"""``minigpt4-chat``: talk to a model in the terminal (streamed answers; ``/image``, ``/reset``,
``/settings``). With stdin not a terminal each input line is one turn and each answer one stdout line."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterable, Sequence
from typing import TextIO

from minigpt4.chat import ChatSession, GenerationSettings, load_engine
from minigpt4.chat.settings import FIELDS, parse
from minigpt4.chat.templates import TEMPLATE_CHOICES
from minigpt4.errors import ChatError, UserError, run_command
from minigpt4.evaluation.caption_images import tsv_field
from minigpt4.run_dir import PRETRAINED
from minigpt4.utils.logging import setup_logger

log = logging.getLogger("minigpt4")
DEFAULTS = GenerationSettings()
HELP = """commands: /image PATH (attach an image to the next question), /reset (a new conversation),
/settings [KEY=VALUE ...] (show or change the generation settings), /prompt (the last prompt the LLM saw),
/help, /quit; anything else is your question"""


def add_model_arguments(ap: argparse.ArgumentParser) -> None:
    """The options ``minigpt4-chat`` and ``minigpt4-demo`` share: the config, the device, 8-bit, overrides."""
    ap.add_argument("--cfg-path", required=True, help="evaluation config, as for minigpt4-caption")
    ap.add_argument(
        "--train-config", default=None, metavar="RUN_DIR/config.yaml", help="a LoRA checkpoint's run config (default: beside it)"
    )
    ap.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: the config's run.device)")
    ap.add_argument("--8bit", dest="load_8bit", action="store_true", help="load the LLM in 8-bit (model.low_resource; CUDA)")
    ap.add_argument(
        "--template",
        choices=TEMPLATE_CHOICES,
        default="official",
        help="official: the variant's demo conversation; plain: the training prompt_template",
    )
    for key, (_, _, _, what) in FIELDS.items():
        ap.add_argument(
            f"--{key.replace('_', '-')}", dest=key, default=None, metavar="VALUE", help=f"{what} (default {getattr(DEFAULTS, key)})"
        )
    ap.add_argument("--options", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides (last on the line)")


def settings_from(args: argparse.Namespace) -> GenerationSettings:
    return GenerationSettings().updated(**{k: parse(k, getattr(args, k)) for k in FIELDS if getattr(args, k) is not None})


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Chat with a model about images, in the terminal. " + HELP)
    ap.add_argument("images", nargs="*", metavar="IMAGE", help="images for the first question")
    ap.add_argument("--ckpt", default=PRETRAINED, metavar="PATH", help="a checkpoint or a run folder (its latest); default: model.ckpt")
    ap.add_argument("--show-prompt", action="store_true", help="print the prompt the LLM saw to stderr after each answer")
    add_model_arguments(ap)
    return ap.parse_args(argv)


class Terminal:
    """One conversation driven by lines of text; ``interactive``: stream answers, else one line each."""

    def __init__(self, session: ChatSession, out: TextIO, interactive: bool, show_prompt: bool = False) -> None:
        self.session, self.out, self.interactive, self.show_prompt = session, out, interactive, show_prompt
        self.errors = 0

    def error(self, message: str) -> None:
        self.errors += 1
        print(f"error: {message}", file=sys.stderr, flush=True)

    def handle(self, line: str) -> bool:
        """Act on one input line; False after ``/quit``."""
        line = line.strip()
        if not line:
            return True
        try:
            if line.startswith("/"):
                return self.command(*line[1:].split(None, 1))
            self.ask(line)
        except UserError as e:
            self.error(str(e))
        return True

    def command(self, name: str, rest: str = "") -> bool:
        s = self.session
        if name in ("quit", "exit"):
            return False
        if name == "image":
            if not rest:
                raise ChatError("usage: /image PATH")
            s.add_image(rest.strip())
            print(f"(image {rest.strip()} added to your next question)", file=sys.stderr)
        elif name == "reset":
            s.reset()
            print("(a new conversation)", file=sys.stderr)
        elif name == "settings":
            s.settings = s.settings.updated(rest.split())
            print(f"(settings: {s.settings.describe()})", file=sys.stderr)
        elif name == "prompt":
            print(s.last_prompt if s.last_prompt is not None else "(no prompt yet)", file=sys.stderr)
        elif name == "help":
            print(HELP, file=sys.stderr)
        else:
            raise ChatError(f"unknown command /{name}; {HELP}")
        return True

    def ask(self, question: str) -> None:
        s = self.session
        seen = len(s.notices)
        if self.interactive:
            print("minigpt4> ", end="", file=self.out, flush=True)
            pieces = s.stream(question)
            try:
                for piece in pieces:
                    print(piece, end="", file=self.out, flush=True)
            except KeyboardInterrupt:
                pieces.close()
                print(" (stopped)", end="", file=self.out)
            print(file=self.out, flush=True)
        else:
            print(tsv_field(s.answer(question)), file=self.out, flush=True)
        for note in s.notices[seen:]:
            print(f"note: {note}", file=sys.stderr)
        if s.last_seed is not None:
            log.info("sampled with seed %d", s.last_seed)
        if self.show_prompt:
            print(f"prompt: {s.last_prompt!r}", file=sys.stderr, flush=True)


def lines_from(stdin: TextIO, interactive: bool) -> Iterable[str]:
    if not interactive:
        yield from stdin
        return
    while True:
        try:
            yield input("you> ")
        except EOFError:
            return


def main(argv: Sequence[str] | None = None) -> int:
    """Exit status 0; 1 when a turn or command failed (each printed as an ``error:`` line)."""
    args = parse_args(argv)
    stdout = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):  # logs and notes: stderr; answers: stdout
        setup_logger(0)
        engine = load_engine(
            args.cfg_path, args.ckpt, args.options, train_config=args.train_config, device=args.device, load_8bit=args.load_8bit
        )
        session = ChatSession(engine, args.template, settings_from(args))
        interactive = sys.stdin.isatty()
        term = Terminal(session, stdout, interactive, args.show_prompt)
        for image in args.images:
            term.handle(f"/image {image}")
        if interactive:
            print(f"chatting with {engine.current} ({session.conversation.template.name} template). {HELP}", file=sys.stderr)
        try:
            for line in lines_from(sys.stdin, interactive):
                if not term.handle(line):
                    break
        except KeyboardInterrupt:
            print(file=sys.stderr)
    return 1 if term.errors else 0


def run(argv: Sequence[str] | None = None) -> int:
    status: list[int] = []
    return run_command(lambda a: status.append(main(a)), argv) or status[0]
