"""What the page-writing tools' command lines share: count checks, ``--out`` and ``--threads``, the command
a page records, and printing the page or writing it atomically."""
from __future__ import annotations

import sys
from argparse import ArgumentParser, Namespace
from pathlib import Path

import torch

from infra.atomic_io import write_text_atomic
from infra.errors import UsageError, check_output_folder


def add_threads_and_out(parser: ArgumentParser) -> None:
    """The two flags every page tool takes: ``--threads`` and ``--out``."""
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--out", type=Path, default=None, help="write the Markdown page here (default: print it)")


def require_at_least(args: Namespace, names: tuple[str, ...], minimum: int = 1) -> None:
    """A ``UsageError`` naming the first flag among ``names`` whose value is below ``minimum``."""
    for name in names:
        if getattr(args, name) < minimum:
            raise UsageError(f"--{name.replace('_', '-')} must be at least {minimum} (got {getattr(args, name)})")


def prepare(args: Namespace) -> None:
    """Refuse an unwritable ``--out`` before any work, and apply ``--threads``."""
    if args.out is not None:
        check_output_folder(args.out.parent, "--out's folder")
    if args.threads:
        torch.set_num_threads(args.threads)


def command_line(module: str, argv: list[str] | None) -> str:
    """The command as a user would type it, for the page to record."""
    return " ".join(["python -m", module, *(argv if argv is not None else sys.argv[1:])])


def emit(text: str, out: Path | None) -> Path | None:
    """Print the page, or write it to ``out`` atomically and say so; the path written, if any."""
    if out is None:
        print(text)
        return None
    path = write_text_atomic(out, text)
    print(f"wrote {path}")
    return path
