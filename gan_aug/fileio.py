"""Atomic file writes: a reader never sees a half-written output, and a crash never replaces a good one."""

import contextlib
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_write(path, mode="wb", durable=True):
    """Yield a file handle on a temp file next to `path`; on success fsync it and rename over `path`.

    On any exception the temp file is removed and `path` is left untouched. durable=False skips the
    fsync: still never torn if the process dies, only a power cut can lose it (for bulk small files).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
