"""Atomic file writes: a crash or a kill while writing never leaves a half-written file in place.

``atomic_write(path, write)`` calls ``write(fileobj)`` on a temporary file in the same directory,
flushes and fsyncs it, ``os.replace``s it over ``path`` (atomic on POSIX and Windows) and fsyncs the
directory so the rename itself survives a power cut. ``write_json_atomic`` and ``write_text_atomic``
are the two uses most callers need. On any error the temporary file is removed and the old ``path``
(if any) is left untouched.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import BinaryIO, Callable


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Write ``path`` through ``write(binary file)`` atomically; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def write_json_atomic(path: str | os.PathLike, obj) -> Path:
    """``obj`` as indented JSON (non-JSON values through ``str``), atomically."""
    return write_text_atomic(path, json.dumps(obj, indent=2, default=str) + "\n")


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable (no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
