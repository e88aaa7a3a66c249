"""Class names become folder and file names (SYN/<class>/0.png, per-class outputs), so every name that comes
from outside (a source's folders or labels, a prepared set, a checkpoint, a synthetic set, a flag) passes one
rule here before use: a name that could climb out of its folder never reaches a path."""

import re

from gan_aug.errors import UserError

# ASCII letters, digits, '_', '-', '.', '+'; no leading '.' (which also rules out '.', '..' and hidden files);
# at most 100 characters, well inside every file system's limit on one path component.
SAFE_NAME = re.compile(r"[A-Za-z0-9_+-][A-Za-z0-9_.+-]{0,99}")


def check_class_names(names, where):
    """`names` as a tuple, or a one-line UserError naming `where` they came from."""
    names = tuple(names)
    if not names:
        raise UserError(f"{where}: no class names")
    for name in names:
        if not isinstance(name, str) or not SAFE_NAME.fullmatch(name):
            raise UserError(f"{where}: class name {name!r} is not allowed (use up to 100 letters, digits, "
                            "'_', '-', '.' or '+', not starting with '.')")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise UserError(f"{where}: class name(s) {', '.join(repeated)} appear more than once")
    return names
