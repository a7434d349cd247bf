"""Atomic file writes: a reader sees the old file or the new one, never a torn one.

The bytes go to a temporary file beside the target (same filesystem), are flushed to
disk (fsync), and replace the target with ``os.replace``. A failed write removes its
temporary file; a process killed mid-write (SIGKILL) leaves one, named
``.<target>.<random>.tmp``, which ``remove_stale_temps`` deletes the next time the
folder is taken over (the trainer does it once it holds the run's lock).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable


def atomic_write(path, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(file)`` on a temporary file, then move it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp's 0600 would make the result private
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return path


def atomic_write_text(path, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def remove_stale_temps(folder) -> list[Path]:
    """Delete the temporary files that writes killed mid-way left in ``folder``."""
    stale = sorted(Path(folder).glob(".*.tmp"))
    for p in stale:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
    return stale
