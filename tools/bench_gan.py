"""GAN training throughput: gan-aug's loop vs a plain PyTorch reference loop, measured in one run.

    python tools/bench_gan.py --root ../shared/data/ham10000 [--sizes 32,64] [--kimg 2] [--channels 32]
    python tools/bench_gan.py --ddp 2 --skip-reference ...   (adds: N torchrun processes vs 1 process)

gan-aug's loop: conditional DCGAN (spectral norm, projection D, hinge loss, DiffAugment, EMA), real
images preloaded as one uint8 tensor on the device, channels_last, bf16 autocast where the hardware
has native bf16. The reference: the same layer widths written plainly here (BatchNorm G, plain-conv D,
BCE loss, no augmentation, no EMA), fed the same HAM10000 train-split pixels from PNG files through a
torchvision ImageFolder + DataLoader, fp32, the way a typical training script does it.
Images/s counts real images shown to D (one D step and one G step per batch), after a warm-up.
"""

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gan_aug.data.config import PrepareConfig  # noqa: E402

from gan_aug.gan.config import GanConfig  # noqa: E402
from gan_aug.data.prepare import prepare  # noqa: E402
from gan_aug.gan.train import GanTrainer  # noqa: E402
from gan_aug.sinks import StatsCollector  # noqa: E402


class PlainGenerator(nn.Module):
    def __init__(self, size, n_classes, z_dim, ch):
        super().__init__()
        n = int(np.log2(size)) - 2
        widths = [ch * min(8, 2 ** (n - i)) for i in range(n + 1)]
        self.embed = nn.Embedding(n_classes, 64)
        self.stem = nn.Linear(z_dim + 64, widths[0] * 16)
        layers = []
        for a, b in zip(widths, widths[1:]):
            layers += [nn.BatchNorm2d(a), nn.ReLU(), nn.Upsample(scale_factor=2), nn.Conv2d(a, b, 3, padding=1)]
        layers += [nn.BatchNorm2d(widths[-1]), nn.ReLU(), nn.Conv2d(widths[-1], 3, 3, padding=1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z, c):
        return self.net(self.stem(torch.cat([z, self.embed(c)], 1)).view(len(z), -1, 4, 4))


class PlainDiscriminator(nn.Module):
    def __init__(self, size, n_classes, ch):
        super().__init__()
        n = int(np.log2(size)) - 2
        widths = [ch * min(8, 2 ** i) for i in range(n + 1)]
        layers = [nn.Conv2d(3, widths[0], 3, padding=1), nn.LeakyReLU(0.1)]
        for a, b in zip(widths, widths[1:]):
            layers += [nn.Conv2d(a, b, 4, 2, 1), nn.LeakyReLU(0.1), nn.Conv2d(b, b, 3, padding=1), nn.LeakyReLU(0.1)]
        self.net = nn.Sequential(*layers)
        self.linear = nn.Linear(widths[-1], 1)
        self.embed = nn.Embedding(n_classes, widths[-1])

    def forward(self, x, c):
        h = self.net(x).sum((2, 3))
        return self.linear(h).squeeze(1) + (self.embed(c) * h).sum(1)


def reference_throughput(folder, size, n_classes, batch, ch, images, workers):
    from torchvision import datasets, transforms

    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize([0.5] * 3, [0.5] * 3)])
    loader = torch.utils.data.DataLoader(datasets.ImageFolder(folder, tf), batch_size=batch, shuffle=True,
                                         num_workers=workers, drop_last=True, persistent_workers=workers > 0)
    G, D = PlainGenerator(size, n_classes, 128, ch), PlainDiscriminator(size, n_classes, ch)
    opt_g = torch.optim.Adam(G.parameters(), 1e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), 4e-4, betas=(0.5, 0.999))
    seen, warm, start = 0, 3 * batch, None
    while seen < images + warm:
        for x, c in loader:
            if seen >= warm and start is None:
                start = time.perf_counter()
            z = torch.randn(len(x), 128)
            fake = G(z, c)
            d_loss = (F.binary_cross_entropy_with_logits(D(x, c), torch.ones(len(x)))
                      + F.binary_cross_entropy_with_logits(D(fake.detach(), c), torch.zeros(len(x))))
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            g_loss = F.binary_cross_entropy_with_logits(D(G(z, c), c), torch.ones(len(x)))
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()
            seen += len(x)
            if seen >= images + warm:
                break
    return (seen - warm) / (time.perf_counter() - start)


def ours_throughput(data, out, batch, ch, images, device):
    config = GanConfig(data=str(data), out=str(out), batch_size=batch, g_channels=ch, d_channels=ch, device=device)
    trainer, stats = GanTrainer(config, progress=False), StatsCollector()
    for _ in range(3):
        trainer.train_step(stats)
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    steps = max(1, images // batch)
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(stats)
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - start)


def cli_throughput(data, out, processes, batch, ch, kimg):
    """img/s of `gan-aug train-gan` as `processes` torchrun processes (1: a plain process), each with an
    equal share of the CPU cores; the loop's own count, after start-up."""
    threads = max(1, (os.cpu_count() or 1) // processes)
    launcher = [sys.executable, "-m", "gan_aug"] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", "-m", "gan_aug"]
    settings = {"batch_size": batch, "g_channels": ch, "d_channels": ch, "threads": threads,
                "snapshot_every": 10 * kimg, "ckpt_every": 10 * kimg}
    command = launcher + ["train-gan", "--data", str(data), "--out", str(out), "--kimg", str(kimg), "--force"]
    command += [arg for key, value in settings.items() for arg in ("--set", f"{key}={value}")]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)},
                            cwd=Path(__file__).resolve().parents[1])
    if result.returncode:
        raise SystemExit(result.stdout[-2000:] + result.stderr[-2000:])
    return float(re.search(r"steps, (\d+) img/s", result.stdout).group(1))


def write_image_folder(data, folder):
    with np.load(data) as arrays:
        train = arrays["split"] == "train"
        names = arrays["class_names"]
        for i, (image, label) in enumerate(zip(arrays["images"][train], arrays["labels"][train])):
            target = Path(folder) / str(names[label])
            target.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(target / f"{i:05d}.png")
        return len(names)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=os.environ.get("GAN_AUG_HAM10000", "../shared/data/ham10000"))
    parser.add_argument("--sizes", default="32,64")
    parser.add_argument("--kimg", type=float, default=2.0, help="thousands of images timed per loop and size")
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--ref-workers", type=int, default=2, help="DataLoader workers of the reference")
    parser.add_argument("--device", default="auto", help="device of gan-aug's loop (the reference runs on CPU)")
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--ddp", type=int, default=0, help="also time N torchrun processes against 1 process")
    args = parser.parse_args()
    images = int(args.kimg * 1000)
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="bench_gan_"))
    try:
        for size in [int(s) for s in args.sizes.split(",")]:
            data = tmp / f"ham{size}.npz"
            prepare(PrepareConfig(out=str(data), source="ham10000", root=args.root, size=size), progress=False)
            ours = ours_throughput(data, tmp / f"run{size}", args.batch, args.channels, images, args.device)
            ref = None
            if not args.skip_reference:
                n_classes = write_image_folder(data, tmp / f"folder{size}")
                ref = reference_throughput(tmp / f"folder{size}", size, n_classes, args.batch, args.channels,
                                           images, args.ref_workers)
            ddp = None
            if args.ddp:
                ddp = [cli_throughput(data, tmp / f"ddp{size}_{n}", n, args.batch, args.channels, args.kimg)
                       for n in (1, args.ddp)]
            rows.append((size, ours, ref, ddp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, device {args.device}")
    print(f"dcgan, channels {args.channels}, batch {args.batch}, {images} images timed per loop")
    print("| size | gan-aug img/s | reference img/s | speed-up |" + (
        f" CLI, 1 process | CLI, {args.ddp} processes (torchrun) |" if args.ddp else ""))
    print("| ---: | ---: | ---: | ---: |" + (" ---: | ---: |" if args.ddp else ""))
    for size, ours, ref, ddp in rows:
        ref_text, ratio = (f"{ref:.0f}", f"{ours / ref:.2f}x") if ref else ("-", "-")
        print(f"| {size} | {ours:.0f} | {ref_text} | {ratio} |" + (f" {ddp[0]:.0f} | {ddp[1]:.0f} |" if ddp else ""))


if __name__ == "__main__":
    main()
