"""Atomic file and folder writes: a reader never sees a half-written output, and a crash never replaces a
good one; and the refusals that keep an output from being replaced without --force."""

import contextlib
import os
import secrets
import shutil
import tempfile
from pathlib import Path

from filelock import FileLock, Timeout

from gan_aug.errors import UserError, first_line


@contextlib.contextmanager
def atomic_write(path, mode="wb", durable=True, before_replace=None):
    """Yield a file handle on a temp file next to `path`; on success fsync it and rename over `path`.

    On any exception the temp file is removed and `path` is left untouched. durable=False skips the
    fsync: still never torn if the process dies, only a power cut can lose it (for bulk small files).
    before_replace(temp path) runs once the temp file is complete, just before the rename: the moment to
    commit what goes with it (an export's receipt).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would make every output private to its writer
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        if before_replace is not None:
            before_replace(Path(tmp))
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.errno and not err.filename:  # a full disk says nothing of where
            raise OSError(err.errno, err.strerror or os.strerror(err.errno), str(path)) from err
        raise


def _umask():
    mask = os.umask(0)  # the only way to read it is to set it: put it straight back
    os.umask(mask)
    return mask


# Inside a folder that gan-aug is writing or discarding; a folder a killed process left with it is deleted later.
SCRATCH_MARKER = ".gan-aug-scratch"


@contextlib.contextmanager
def atomic_folder(path, before_replace=None):
    """Yield an empty sibling folder `.<name>.partial-<random>` to fill; on success it takes the place of `path`.

    An existing `path` is moved aside and deleted only once the new folder is in place, so until then it is
    still whole; on any exception the new folder is deleted and `path` is left as it was. A `path` that is a
    symbolic link is replaced as a link: the folder it points to is never entered, marked or deleted.
    before_replace(staging folder) runs once the folder is complete, just before it takes the place of `path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = _sibling(path, "partial")
    staging.mkdir()  # not tempfile.mkdtemp: its 0700 would become the set's permissions, where mkdir obeys umask
    _mark(staging)
    try:
        yield staging
        if before_replace is not None:
            before_replace(staging)
        aside = _sibling(path, "replaced")
        if path.is_symlink() or path.exists():
            if not path.is_symlink():
                _mark(path)  # a crash before it is renamed leaves a complete folder with a stray marker: harmless
            os.rename(path, aside)
        try:
            os.rename(staging, path)
        except BaseException:
            if aside.is_symlink() or aside.exists():
                os.rename(aside, path)
            raise
    except BaseException:
        _remove_scratch(staging)
        raise
    (path / SCRATCH_MARKER).unlink()
    if aside.is_symlink():
        aside.unlink()
    elif aside.exists():
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


def require_name(path, flag="--out"):
    """Refuse an output path with no name of its own ('.', '..', '/'): there is no sibling to build it in, and
    replacing it would replace the folder the user stands in."""
    if Path(path).name in ("", ".", ".."):
        raise UserError(f"{flag} {str(path)!r} names no file or folder of its own: give a new name (e.g. {flag} "
                        "out)")


def replaceable_link(path, force, flag="--out"):
    """Whether `path` is a symbolic link, which only --force may replace: the link itself, as atomic_write and
    atomic_folder do, never what it points to (a check that followed it would judge someone else's folder)."""
    path = Path(path)
    if not path.is_symlink():
        return False
    if not force:
        raise UserError(f"{flag} {path} is a symbolic link (to {os.readlink(path)}): add --force to replace the "
                        "link itself (what it points to is left as it is), or give the folder it points to")
    return True


def check_apart(out, inputs, flag="--out"):
    """Refuse an output that is, holds or lies inside one of the command's inputs ({name: path or None}):
    --force would replace what the command reads, and a folder of inputs would take in the command's output.
    The output's own last link is not followed (it is replaced as a link); the inputs are read through theirs."""
    out = Path(out)
    where = out.parent.resolve() / out.name
    for name, path in inputs.items():
        if path is None:
            continue
        source = Path(path).resolve()
        relation = ("is" if where == source else "holds" if source.is_relative_to(where)
                    else "lies inside" if where.is_relative_to(source) else None)
        if relation:
            raise UserError(f"{flag} {out} {relation} {name} {path}: choose an {flag} apart from the command's "
                            "inputs")


def file_inside(folder, name, where, what):
    """`folder`/`name` with every link on the way followed, refused unless it is still inside `folder`: an
    absolute name, '..' or a link that leads elsewhere would have a command read (or list) files it was not
    given."""
    name = Path(name or "")
    file = (Path(folder) / name).resolve()
    if name.is_absolute() or ".." in name.parts or not file.is_relative_to(Path(folder).resolve()):
        raise UserError(f"{where}: file {str(name)!r} is outside {what}")
    return file


def check_run_dir(run_dir, resume, force, artifacts, latest="latest.pt"):
    """Refuse, before any work, to start over without --force in a folder that holds a checkpoint (any of the
    globs `latest`) or files that are not a run's, or to resume in a folder that does not exist. Returns whether
    there is a checkpoint to resume from: a run killed before its first one has nothing to lose, so it starts
    over, given --resume or not. Changes nothing: clearing waits until the run's inputs are known to be good."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"{run_dir} exists and is not a directory")
    latest = (latest,) if isinstance(latest, str) else latest
    has_checkpoint = run_dir.is_dir() and any(any(run_dir.glob(pattern)) for pattern in latest)
    if resume and has_checkpoint:
        return True
    if resume and not run_dir.is_dir():
        raise UserError(f"nothing to resume: {run_dir} does not exist")
    foreign = run_dir.is_dir() and any(not _is_run_file(entry.name, artifacts) for entry in run_dir.iterdir())
    if foreign and not force:
        what = "holds no run to resume" if resume else "is not empty"
        raise UserError(f"{run_dir} {what} (use another folder, or --force to start over there)")
    if has_checkpoint and not force:
        raise UserError(f"{run_dir} holds another run (use --resume to continue it or --force to start over)")
    return False


def _is_run_file(name, artifacts):
    """One of a run's `artifacts`, or a temp file atomic_write left of one when its process was killed."""
    return name in artifacts or (name.endswith(".tmp") and any(name.startswith(f".{a}.") for a in artifacts))


def start_run_dir(run_dir, artifacts, resume):
    """Make the run folder ready: a new run removes a previous run's `artifacts` (other files stay); both remove
    the temp files that atomic writes of a killed process left behind."""
    run_dir = Path(run_dir)
    if not resume:
        for name in artifacts:
            target = run_dir / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    run_dir.mkdir(parents=True, exist_ok=True)
    remove_temp_files(run_dir, artifacts)
    for name in artifacts:
        if (run_dir / name).is_dir():
            remove_temp_files(run_dir / name)


def remove_temp_files(folder, names=None):
    """Delete the temp files that atomic writes into `folder` (of the files `names`, or of any) left when their
    process was killed. Only where no live process writes those files: a run's own folder, or under its lock."""
    for stray in Path(folder).glob(".*.tmp"):
        if stray.is_file() and (names is None or _is_run_file(stray.name, names)):
            stray.unlink()


def save_torch(obj, path):
    """torch.save `obj` to `path` atomically. It is serialized in memory first: torch's zip writer turns a full
    disk into "RuntimeError: ... unexpected pos", while a plain write raises the OSError (ENOSPC) that every
    command reports in one line."""
    import io

    import torch

    with atomic_write(path) as handle:  # inside it, any OSError names `path`
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        handle.write(buffer.getbuffer())


def write_text(path, text):
    """Write `text` to `path` atomically: a kill leaves the old file or the new one, never half of it."""
    with atomic_write(path, "w") as handle:
        handle.write(text)


def absolute(path):
    """`path` from the working directory as an absolute path (None stays None): what a run stores, so that
    resuming it from another folder finds the same files."""
    return None if path is None else os.path.abspath(os.path.expanduser(path))


def load_checkpoint_file(path, expected_format, kind, map_location="cpu"):
    """A gan-aug checkpoint dict, loaded with weights_only=True (never unpickling code); one-line errors."""
    import torch

    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many types for a damaged or foreign file
        raise UserError(f"{path} is not a readable checkpoint: {first_line(err)}") from None
    if not isinstance(state, dict) or state.get("format") != expected_format:
        raise UserError(f"{path} is not a gan-aug {kind} checkpoint")
    from gan_aug.legacy import migrate_checkpoint

    return migrate_checkpoint(state)


@contextlib.contextmanager
def locked(path, busy_message=None):
    """An exclusive lock on the file `path` (its folder made) while the block runs: filelock's, an flock on Unix,
    which the system releases when its holder dies, so a killed process leaves no stale lock. Waited for, or with
    `busy_message` refused at once with that one-line error while another process holds it."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0 if busy_message else -1)
    except Timeout:
        raise UserError(busy_message) from None
    try:
        yield
    finally:
        lock.release()

