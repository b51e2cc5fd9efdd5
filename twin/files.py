"""Files that hold what a session heard, saw and said: readable by their owner only.

A session log holds the operator's voice and words, a recording their face; both are created
with mode 0600, and the folders the twin makes for them with 0700 (a folder that already exists
is left as its owner set it). The process umask can only take permissions away, so these modes
hold whatever it is. SQLite gives a log's ``-wal`` and ``-shm`` files the mode of the log itself.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DIR_MODE", "FILE_MODE", "private_dir", "private_file"]

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: str | Path) -> Path:
    """Make ``path`` and any missing parents, each new one with mode 0700 (``Path.mkdir``
    gives ``mode`` to the last folder only)."""
    folder = Path(path)
    missing: list[Path] = []
    for parent in (folder, *folder.parents):
        if parent.exists():
            break
        missing.append(parent)
    for new in reversed(missing):
        try:
            new.mkdir(mode=DIR_MODE)
        except FileExistsError:  # made meanwhile by another session
            continue
        os.chmod(new, DIR_MODE)  # mkdir's mode passes through the umask
    return folder


def private_file(path: str | Path, *, exclusive: bool = False) -> Path:
    """Create ``path`` empty with mode 0600, or set that mode on the file already there
    (``exclusive``: refuse an existing file, ``FileExistsError``). Its folder is made private
    if missing."""
    file = Path(path)
    private_dir(file.parent)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else 0)
    os.close(os.open(file, flags, FILE_MODE))
    os.chmod(file, FILE_MODE)
    return file
