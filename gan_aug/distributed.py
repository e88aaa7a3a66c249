"""Multi-process training on PyTorch's own engine (torch.distributed), launched by torchrun:

    torchrun --nproc_per_node=N -m gan_aug train-gan ...        (one machine)
    torchrun --nnodes=M --nproc_per_node=N --rdzv-backend=c10d --rdzv-endpoint=HOST:PORT -m gan_aug ...

torchrun sets WORLD_SIZE, RANK and LOCAL_RANK; without them a run is a world of one and nothing here does
anything. NCCL on CUDA, gloo on CPU. The recipe is the global batch: every rank draws the global batch's
indices and latents from one shared generator and keeps its slice, gradients are averaged across ranks,
and BatchNorm statistics are taken over the global batch, so N processes follow the recipe of one.
"""

import atexit
import dataclasses
import os

import torch
import torch.distributed as dist
from torch import nn

from gan_aug.errors import UserError


@dataclasses.dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self):
        """Rank 0 alone writes checkpoints, samples, TensorBoard and stats."""
        return self.rank == 0

    def share(self, global_batch):
        """This rank's rows of a global batch: (start, stop)."""
        if global_batch % self.size:
            raise UserError(f"batch_size {global_batch} must be a multiple of the {self.size} processes")
        per_rank = global_batch // self.size
        return self.rank * per_rank, (self.rank + 1) * per_rank

    def barrier(self):
        if self.size > 1:
            dist.barrier()


def join_world(device):
    """The process group torchrun asked for (or a world of one) and this rank's device: cuda:LOCAL_RANK when
    `device` is a CUDA device, else the CPU."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World(), device
    world = World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        torch.cuda.set_device(world.local_rank)
        device = torch.device("cuda", world.local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        # left to the interpreter's teardown, the group's threads can outlive it: a rank then dies with
        # SIGABRT ("terminate called without an active exception") after its run finished, failing torchrun
        atexit.register(leave_world)
    return world, device


def leave_world():
    if dist.is_initialized():
        dist.destroy_process_group()


def average_gradients(world, parameters):
    """All-reduce the gradients of `parameters` in one flat buffer and divide by the world size. The GAN
    loop does this itself, as stylegan2-ada does: its D and G steps switch requires_grad on and off, which
    DistributedDataParallel's reducer does not allow."""
    if world.size == 1:
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world.size
    for grad, part in zip(grads, flat.split([g.numel() for g in grads])):
        grad.copy_(part.view_as(grad))


class _SumOverRanks(torch.autograd.Function):
    """all_reduce(SUM) with its gradient: each rank's input feeds every rank's output, so the input's
    gradient is the sum of all ranks' output gradients (what torch.distributed.nn's deprecated one did)."""

    @staticmethod
    def forward(ctx, tensor):
        tensor = tensor.clone()
        dist.all_reduce(tensor)
        return tensor

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


differentiable_all_reduce = _SumOverRanks.apply


class GlobalBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are the global batch's, over all ranks, on the CPU (gloo):
    torch's SyncBatchNorm, used on CUDA, supports GPU tensors only. The reduction is differentiable, so
    gradients flow through the shared statistics as in SyncBatchNorm."""

    def forward(self, x):
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        x = x.float()  # statistics in fp32 even under bf16 autocast, as BatchNorm itself computes them
        count = torch.tensor([x.numel() / x.shape[1]])
        sums = differentiable_all_reduce(torch.cat([x.sum(dim=(0, 2, 3)), count]))  # over every rank's rows
        n = sums[-1]
        mean = sums[:-1] / n
        # Two passes, as BatchNorm does: E[x^2] - E[x]^2 loses digits when the mean is large.
        var = differentiable_all_reduce(((x - mean[None, :, None, None]) ** 2).sum(dim=(0, 2, 3))) / n
        with torch.no_grad():
            self.num_batches_tracked += 1
            momentum = self.momentum if self.momentum is not None else 1 / float(self.num_batches_tracked)
            self.running_mean.lerp_(mean.detach(), momentum)
            self.running_var.lerp_(var.detach() * n / (n - 1), momentum)
        y = (x - mean[None, :, None, None]) * torch.rsqrt(var[None, :, None, None] + self.eps)
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y


def global_batchnorm(module, world, device):
    """`module` with every BatchNorm2d computing global-batch statistics across ranks (a no-op for one rank).
    The state-dict keys do not change, so checkpoints move between world sizes."""
    if world.size == 1:
        return module
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            replacement = GlobalBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                          child.track_running_stats)
            replacement.load_state_dict(child.state_dict())
            setattr(module, name, replacement.to(next(child.buffers()).device))
        else:
            global_batchnorm(child, world, device)
    return module


def sum_over_ranks(world, tensor):
    """`tensor` summed over every rank (itself for a world of one)."""
    if world.size > 1:
        tensor = tensor.clone()
        dist.all_reduce(tensor)
    return tensor


def sum_table_over_ranks(world, table, width=3):
    """{name: `width` numbers} summed over every rank, for the union of the ranks' names (a rank that never
    saw a name counts zeros for it); itself for a world of one."""
    if world.size == 1:
        return table
    names = [None] * world.size
    dist.all_gather_object(names, sorted(table))
    union = sorted(set().union(*names))
    rows = torch.tensor([table.get(name, [0.0] * width) for name in union], dtype=torch.float64).reshape(-1, width)
    return dict(zip(union, sum_over_ranks(world, rows).tolist()))
