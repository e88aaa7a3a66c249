"""Where and how torch computes, shared by every command: the device, CPU threads, bf16 autocast, and the
setup both trainers run first (threads, determinism, device, autocast, run-folder guard)."""

import contextlib
import dataclasses
import sys
from pathlib import Path

import torch

from gan_aug.config import check_device_name
from gan_aug.distributed import World, join_world
from gan_aug.errors import UserError
from gan_aug.fileio import check_run_dir


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


def setup_run(config, artifacts):
    """Checks the run folder (resume/force, before any work), then sets threads, determinism, the device,
    autocast and the process group (under torchrun) from a trainer's config (fields out, resume, force,
    threads, deterministic, device, amp)."""
    check_run_dir(config.out, config.resume, config.force, artifacts)
    use_threads(config.threads)
    if config.deterministic:
        torch.use_deterministic_algorithms(True)
    world, device = join_world(resolve_device(config.device))
    return RunSetup(Path(config.out).resolve(), device, autocast_for(device, config.amp), world)
