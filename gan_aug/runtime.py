"""Where and how torch computes, shared by every command: the device, CPU threads, bf16 autocast, and the
setup both trainers run first (threads, determinism, device, autocast, run-folder guard)."""

import contextlib
import dataclasses
import sys
from pathlib import Path

import torch

from gan_aug.config import check_device_name, replaced
from gan_aug.distributed import World, join_world
from gan_aug.errors import UserError
from gan_aug.fileio import absolute, check_run_dir


def cpu_has_bf16():
    """Whether oneDNN has native bf16 kernels here (AVX512-BF16/AMX): then bf16 autocast is ~1.7x faster."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def use_threads(count):
    """Cap torch's CPU threads (0: torch's default), so runs side by side do not fight over few cores."""
    if count:
        torch.set_num_threads(count)


def resolve_device(name):
    check_device_name(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("device cuda asked for, but torch sees no CUDA GPU")
    return device


def autocast_for(device, enabled=True):
    """bf16 autocast where it pays (GPUs with bf16, CPUs with native bf16 kernels), else a no-op context.
    A GPU without bf16 (before Ampere) runs in fp32, said once on the console."""
    if not enabled:
        return contextlib.nullcontext()
    device = torch.device(device)  # a name such as 'cpu' too: every caller may hold either
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.autocast("cuda", dtype=torch.bfloat16)
        if not _told_no_bf16:
            _told_no_bf16.append(True)
            print(f"note: {torch.cuda.get_device_name(device)} has no bf16: computing in fp32", file=sys.stderr)
        return contextlib.nullcontext()
    return torch.autocast("cpu", dtype=torch.bfloat16) if cpu_has_bf16() else contextlib.nullcontext()


_told_no_bf16 = []


@dataclasses.dataclass
class RunSetup:
    run_dir: Path
    device: torch.device
    autocast: contextlib.AbstractContextManager
    world: World
    resume: bool  # there is a checkpoint to continue from
    config: object  # the trainer's config with absolute input paths and the world's size: the one the run uses


def setup_run(config, artifacts, latest="latest.pt", inputs=()):
    """Checks the run folder (resume/force, before any work), then sets threads, determinism, the device,
    autocast and the process group (under torchrun) from a trainer's config (fields out, resume, force,
    threads, deterministic, device, amp). The run's config (RunSetup.config) is a new one: the fields named in
    `inputs` (files the run reads) as absolute paths, so the config.yaml and checkpoints that store them resume
    from any working directory, and world_size the process group's."""
    absolute_inputs = {}
    for name in inputs:
        value = getattr(config, name)
        absolute_inputs[name] = tuple(map(absolute, value)) if isinstance(value, tuple) else absolute(value)
    resume = check_run_dir(config.out, config.resume, config.force, artifacts, latest)
    use_threads(config.threads)
    if config.deterministic:
        torch.use_deterministic_algorithms(True)
    world, device = join_world(resolve_device(config.device))
    if config.resume and not resume and world.is_main:
        print(f"note: no checkpoint in {config.out} yet: the run starts from the beginning", file=sys.stderr)
    config = replaced(config, world_size=world.size, **absolute_inputs)
    return RunSetup(Path(config.out).resolve(), device, autocast_for(device, config.amp), world, resume, config)


class _WithoutLines:
    """A stream that passes everything on but lines starting with `prefix`."""

    def __init__(self, stream, prefix):
        self.stream, self.prefix = stream, prefix

    def write(self, text):
        return self.stream.write("".join(line for line in text.splitlines(keepends=True)
                                         if not line.startswith(self.prefix)))

    def __getattr__(self, name):  # flush, isatty, fileno ... for tqdm
        return getattr(self.stream, name)


@contextlib.contextmanager
def hub_download(what, url, cached, instead):
    """Around a download through torch.hub (torchvision's weights API, torch-fidelity): its progress bar shows
    but not its 'Downloading: ...' line (on stdout, or stderr under torch-fidelity), so that offline the refusal
    is one line, saying where to get the file (`url`) and where to put it (`cached`, torch's cache), or what
    to give `instead`."""
    try:
        with contextlib.redirect_stdout(_WithoutLines(sys.stdout, "Downloading: ")), \
                contextlib.redirect_stderr(_WithoutLines(sys.stderr, "Downloading: ")):
            yield
    except OSError as err:  # URLError offline, a failed write into the cache
        raise UserError(f"cannot get {what} ({getattr(err, 'reason', err)}): download {url} on a machine with "
                        f"internet and put it at {cached}, or {instead}") from None
    except Exception as err:  # torch.load on a damaged cache file raises many types
        raise UserError(f"{cached} is not a readable state dict ({str(err).splitlines()[0]}): delete it to "
                        "download it again") from None
