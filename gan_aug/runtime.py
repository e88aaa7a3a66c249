"""Where and how torch computes, shared by every command: the device, CPU threads, bf16 support."""

import torch

from gan_aug.errors import UserError


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
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("device cuda asked for, but torch sees no CUDA GPU")
    return device
