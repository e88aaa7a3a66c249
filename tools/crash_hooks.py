"""`python tools/crash_hooks.py ARGS...` runs `gan-aug ARGS...` with its writes counted, and can SIGKILL it in
the middle of one: the child process of tools/crash_trials.py.

Writes are the calls of torch.save, PIL's Image.save and numpy.savez (the bulk writes: a kill there leaves half
the bytes written, as a kill between two write() calls of a large file does) and of os.replace and os.rename
(the atomic renames: a kill there comes after the temp file is complete, just before it takes its place).
CRASH_AT=k kills the process in its k-th write; CRASH_COUNT=FILE writes the number of writes to FILE at exit.
"""

import atexit
import io
import os
import signal
import sys
from pathlib import Path

COUNT = [0]


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


def _due():
    COUNT[0] += 1
    return COUNT[0] == int(os.environ.get("CRASH_AT", "0"))


def _bulk(real, at, by_suffix=False):
    """`real` (whose argument number `at` is the file) writing half its bytes and dying on the due call;
    `by_suffix`: it names the format by the path's suffix (PIL), which a memory buffer has not."""
    def hooked(*args, **kwargs):
        if _due():
            target, buffer = args[at], io.BytesIO()
            if by_suffix and not hasattr(target, "write"):
                kwargs.setdefault("format", Path(target).suffix.lstrip("."))
            real(*args[:at], buffer, *args[at + 1:], **kwargs)
            half = buffer.getvalue()[:len(buffer.getvalue()) // 2]
            if hasattr(target, "write"):
                target.write(half)
                target.flush()
            else:
                Path(target).write_bytes(half)
            _die()
        return real(*args, **kwargs)
    return hooked


def _rename(real):
    def hooked(*args, **kwargs):
        if _due():
            _die()
        return real(*args, **kwargs)
    return hooked


def install():
    import numpy
    import torch
    from PIL import Image

    torch.save = _bulk(torch.save, 1)  # torch.save(obj, f)
    Image.Image.save = _bulk(Image.Image.save, 1, by_suffix=True)  # image.save(fp, format)
    numpy.savez = _bulk(numpy.savez, 0)  # numpy.savez(file, **arrays)
    os.replace = _rename(os.replace)
    os.rename = _rename(os.rename)
    count_file = os.environ.get("CRASH_COUNT")
    if count_file:
        atexit.register(lambda: Path(count_file).write_text(str(COUNT[0])))


if __name__ == "__main__":
    install()
    from gan_aug.cli import cli

    sys.exit(cli.main(args=sys.argv[1:], prog_name="gan-aug", standalone_mode=True))
