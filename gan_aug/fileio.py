"""Atomic file and folder writes: a reader never sees a half-written output, and a crash never replaces a
good one; and the refusals that keep an output from being replaced without --force."""

import contextlib
import os
import secrets
import shutil
import tempfile
from pathlib import Path

from gan_aug.errors import UserError


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


# Inside a folder that gan-aug is writing or discarding; a folder a killed process left with it is deleted later.
SCRATCH_MARKER = ".gan-aug-scratch"


@contextlib.contextmanager
def atomic_folder(path):
    """Yield an empty sibling folder `.<name>.partial-<random>` to fill; on success it takes the place of `path`.

    An existing `path` is moved aside and deleted only once the new folder is in place, so until then it is
    still whole; on any exception the new folder is deleted and `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = _sibling(path, "partial")
    staging.mkdir()  # not tempfile.mkdtemp: its 0700 would become the set's permissions, where mkdir obeys umask
    _mark(staging)
    try:
        yield staging
        aside = _sibling(path, "replaced")
        if path.exists():
            _mark(path)  # a crash before it is renamed leaves a complete folder with a stray marker: harmless
            os.rename(path, aside)
        try:
            os.rename(staging, path)
        except BaseException:
            if aside.exists():
                os.rename(aside, path)
            raise
    except BaseException:
        _remove_scratch(staging)
        raise
    (path / SCRATCH_MARKER).unlink()
    if aside.exists():
        _remove_scratch(aside)
    remove_leftovers(path)


def _sibling(path, kind):
    return path.with_name(f".{path.name}.{kind}-{secrets.token_hex(4)}")


def _mark(folder):
    (folder / SCRATCH_MARKER).write_text("gan-aug's scratch folder: safe to delete\n")


def _remove_scratch(folder):
    """Delete a marked folder, its marker last, so a deletion cut short is still recognisably scratch."""
    for child in Path(folder).iterdir():
        if child.name == SCRATCH_MARKER:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    shutil.rmtree(folder)


def remove_leftovers(path):
    """Delete the marked `.<name>.*` siblings of `path` that killed processes left behind."""
    path = Path(path)
    for sibling in list(path.parent.iterdir()):
        if (sibling.name.startswith(f".{path.name}.") and sibling.is_dir() and not sibling.is_symlink()
                and (sibling / SCRATCH_MARKER).is_file()):
            _remove_scratch(sibling)


def check_new_outputs(paths, force, folders=()):
    """Refuse, before any work, to replace an existing output without --force, or a folder where a file goes
    (every path but those in `folders` is a file)."""
    misplaced = [str(p) for p in paths if Path(p).is_dir() and p not in folders]
    if misplaced:
        raise UserError(f"{misplaced[0]} is a folder, where a file is to be written: give a file path")
    existing = [str(p) for p in paths if Path(p).exists()]
    if existing and not force:
        raise UserError(f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''} "
                        "(use --force to overwrite)")


def check_run_dir(run_dir, resume, force, artifacts, latest="latest.pt"):
    """Refuse, before any work, to start over in a non-empty folder without --force, or to resume
    without `latest`. Changes nothing: clearing waits until the run's inputs are known to be good."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"{run_dir} exists and is not a directory")
    if resume:
        if not (run_dir / latest).is_file():
            raise UserError(f"nothing to resume: {run_dir / latest} does not exist")
        return
    if run_dir.is_dir() and any(run_dir.iterdir()) and not force:
        holds_run = any((run_dir / name).exists() for name in artifacts)
        what = "holds another run" if holds_run else "is not empty"
        raise UserError(f"{run_dir} {what} (use --resume to continue it or --force to start over)")


def clear_run_dir(run_dir, artifacts):
    """Remove a previous run's `artifacts` (other files stay) and make sure the folder exists."""
    run_dir = Path(run_dir)
    for name in artifacts:
        target = run_dir / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    run_dir.mkdir(parents=True, exist_ok=True)


def load_checkpoint_file(path, expected_format, kind, map_location="cpu"):
    """A gan-aug checkpoint dict, loaded with weights_only=True (never unpickling code); one-line errors."""
    import torch

    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many types for a damaged or foreign file
        raise UserError(f"{path} is not a readable checkpoint: {str(err).splitlines()[0]}") from None
    if not isinstance(state, dict) or state.get("format") != expected_format:
        raise UserError(f"{path} is not a gan-aug {kind} checkpoint")
    return state
