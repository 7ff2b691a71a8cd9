"""Atomic checkpoint files: a crash while saving never destroys the previous checkpoint.

``save_checkpoint`` writes through ``infra.atomic_io.atomic_write`` (a temporary file, fsynced, then
``os.replace``d over the target).
``load_checkpoint`` loads with ``weights_only=True`` (tensors and plain Python values only) and turns
a missing, truncated or foreign file into a ``CheckpointError`` that names the file and the problem.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from infra.atomic_io import atomic_write
from infra.errors import UsageError

REQUIRED_KEYS = ("format", "model", "optimizer", "epoch", "step", "history")
FORMAT = "alexnet-kernels/checkpoint-v1"


class CheckpointError(UsageError, RuntimeError):
    """A checkpoint file is missing, unreadable or not one of ours."""


def save_checkpoint(state: dict, path: str | os.PathLike) -> Path:
    """Write ``state`` to ``path`` atomically; return the path."""
    return atomic_write(path, lambda f: torch.save({"format": FORMAT, **state}, f))


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint written by ``save_checkpoint``; a directory means ``<dir>/checkpoint.pt``."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"checkpoint {path} cannot be read (truncated, corrupt or not a torch file): {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} is not an alexnet-kernels checkpoint (expected format {FORMAT!r})")
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(missing)}")
    return state
