"""The `mft` command line.

Every layer contributes its own sub-commands through the ``mft.commands``
entry-point group (see pyproject.toml), each a ``register(subparsers)``
function.  This dispatcher sits in the lowest layer and imports no higher
one: the higher layers plug themselves in.  Errors that name a problem in
the user's input (:class:`DataError` and other ``ValueError`` subclasses
marked as user errors) are printed as one clear line, not a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points

from features.data.schema import DataError

USER_ERRORS: tuple[type[BaseException], ...] = (DataError, FileNotFoundError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mft",
        description="MFT: medium-frequency crypto trading with reinforcement learning on Ray.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for entry in sorted(entry_points(group="mft.commands"), key=lambda e: e.name):
        try:
            register: Callable[[argparse._SubParsersAction], None] = entry.load()
        except ImportError as err:  # one broken layer must not take the other commands down
            print(f"warning: command '{entry.name}' is unavailable: {err}", file=sys.stderr)
            continue
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
