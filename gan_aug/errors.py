"""The one exception type for bad user input: the CLI prints it as a single line and exits 1; and the one line
for an OSError that is the machine's doing (a full disk, a read-only folder), not a bug in gan-aug."""

import errno
import os


class UserError(ValueError):
    """Input the user can fix (a path, a flag, a malformed file). Never a bug in gan-aug."""


def first_line(err):
    """An exception's message cut to one line (its type's name when it has none), for a one-line error."""
    return (str(err).strip().splitlines() or [""])[0] or type(err).__name__


FULL = (errno.ENOSPC, errno.EDQUOT)
# A path that cannot be written or is of the wrong kind: the user picks another one.
UNUSABLE = (errno.EACCES, errno.EPERM, errno.EROFS, errno.EISDIR, errno.ENAMETOOLONG)
IN_THE_WAY = (errno.ENOTDIR, errno.EEXIST)  # a file where a folder is to be made or entered


def environment_error(err):
    """One line for an OSError the user can fix (None for any other): writes are atomic, so what was there
    before is intact and a run resumes from its last checkpoint once the cause is gone."""
    where = f" ({err.filename})" if err.filename else ""
    if err.errno in FULL:
        return (f"{os.strerror(err.errno)}{where}: the files it would replace are intact; free some space and run "
                "the command again (train-gan and train-classifier: with --resume, from the last checkpoint)")
    if err.errno in IN_THE_WAY:
        return f"{os.strerror(err.errno)}{where}: a file stands where a folder is needed; choose another path"
    if err.errno in UNUSABLE:
        return f"{os.strerror(err.errno)}{where}: choose another path or fix its permissions"
    return None


def require_extra(module, extra):
    """Import an optional extra's module, or say in one line how to install it (the core install stays lean)."""
    try:
        __import__(module)
    except ImportError:
        raise UserError(f"this command needs the '{extra}' extra: pip install 'gan-aug[{extra}]'") from None
