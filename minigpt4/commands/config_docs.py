"""Regenerate the config-key table in docs/config.md from the schemas (``--check``: exit 1 when stale).

``python -m minigpt4.commands.config_docs``: a developer's tool; a test runs the same comparison."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from minigpt4.config.docs import update

DOCS_FILE = Path(__file__).resolve().parents[2] / "docs" / "config.md"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readme", default=str(DOCS_FILE))
    ap.add_argument("--check", action="store_true", help="exit 1 if the file is out of date")
    args = ap.parse_args(argv)
    current = update(Path(args.readme), check=args.check)
    if args.check and not current:
        print(f"{args.readme}: the config-key table is out of date; run python -m minigpt4.commands.config_docs", file=sys.stderr)
        return 1
    print(f"{args.readme}: config-key table {'is up to date' if current else 'updated'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
