"""The app's temporary folder (uploads, Grad-CAM images, generated sets), one per server process.

A server deletes its folder when it stops, but a kill (SIGKILL, the OOM killer, a power cut) runs no clean-up.
A periodic reaper or an atexit hook would not help there, so each server holds an exclusive flock on its own
folder for as long as it lives, and every start deletes the folders whose lock nobody holds: the kernel drops a
lock when its holder dies, however it dies. A lock, unlike a pid in the name, is not fooled by a reused pid or
by another container's pid namespace sharing /tmp. The folder is made under a hidden name and renamed into view
only once locked, so a start never sweeps away a folder that another start has just made.
"""

import fcntl
import os
import shutil
import tempfile
from pathlib import Path

PREFIX = "gan-aug-serve-"


def _lock(folder):
    """An fd of `folder` holding its exclusive lock, or None: a live server holds it (or the folder is not a
    folder of ours: a link, another user's, gone)."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        if os.fstat(fd).st_uid == os.getuid():
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
    except OSError:
        pass
    os.close(fd)
    return None


def sweep_stale(root=None):
    """Delete the folders of servers that died without cleaning up; returns them."""
    swept = []
    for folder in sorted(Path(root or tempfile.gettempdir()).glob(PREFIX + "*")):
        fd = _lock(folder)
        if fd is not None:
            try:
                shutil.rmtree(folder, ignore_errors=True)
                swept.append(folder)
            finally:
                os.close(fd)
    return swept


def claim(root=None):
    """(a new folder, the fd that holds its lock until closed or until this process dies)."""
    staging = Path(tempfile.mkdtemp(prefix="." + PREFIX, dir=root))  # hidden from sweep_stale's glob
    fd = _lock(staging)
    if fd is None:
        raise OSError(f"cannot lock the new folder {staging}")
    folder = staging.with_name(staging.name[1:])
    os.rename(staging, folder)
    return folder, fd
