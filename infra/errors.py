"""Where a user's mistake ends and a bug begins, for every command line of the project.

``UsageError`` is the base of every error a user can fix by changing what they asked for: a data path
(``alexnet.data.DataError``), a checkpoint (``alexnet.checkpoint.CheckpointError``), a device or
layout, a flag combination, a benchmark JSON file, a study folder. ``run_cli(prog, fn)`` runs a
command's body and turns exactly those into one line on stderr, ``<prog>: error: <message>``, and
exit status 2 (what argparse does for a bad flag). Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable, Sequence


class UsageError(Exception):
    """A problem with what the user asked for; the message says what is wrong and what to do."""


def check_output_folder(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Refuse, before anything is written, an output folder that is a file or cannot be created or written."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path} is a file, not a folder; pass a folder for the outputs")
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise UsageError(f"{flag} {path} cannot be written ({existing} is a file); choose another folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path} cannot be written ({existing} is not writable); choose another folder")
    return path


def run_cli(prog: str, body: Callable[[], object]) -> int:
    """Run ``body``; a ``UsageError`` becomes one line on stderr and status 2, success status 0."""
    try:
        body()
    except UsageError as exc:
        message = " ".join(str(exc).split())  # one line, whatever the message held
        print(f"{prog}: error: {message}", file=sys.stderr)
        return 2
    return 0


def parse_and_run(parser: argparse.ArgumentParser, main: Callable[[argparse.Namespace], object],
                  argv: Sequence[str] | None = None) -> int:
    """A command's entry point: ``argv`` parsed by ``parser`` (argparse's own errors exit 2), then ``main(args)``
    under ``run_cli``."""
    args = parser.parse_args(argv)
    return run_cli(parser.prog, lambda: main(args))
