"""A prepared set larger than this machine's memory (issue #44): prepare it, load it, and read and train one epoch
of it, with each step's wall time and peak resident memory.

    python tools/bench_large_set.py --ham ../shared/data/ham10000 --work $WORK/large --images 33126 --size 512

The source is HAM10000 repeated to --images files (symlinks in an ImageFolder, one class folder per diagnosis):
ISIC 2020 has 33,126 images, which at 512 px are 26 GB of pixels. Each step runs in its own process, so its peak
resident memory (the kernel's ru_maxrss of that process and the workers it waited for) is its own:
  prepare   gan-aug prepare --source imagefolder --size S (decoded into a file, streamed into the .npz)
  info      gan-aug info: load (memory-mapped) and check the fingerprint over every pixel
  epoch     one training epoch's batches as train-classifier draws and reads them (oversampling stream, the
            pool's rows read from disk, augmented), without the network: what the data path costs
  train     the first --train-steps batches of that epoch through the network and optimizer (small_cnn):
            on a CPU an epoch at 512 px takes hours, so its time is this rate times the epoch's batches
  split     where the epoch's time goes: 3,200 random train rows read from disk in batches of 32, and one batch
            augmented 10 times
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def link_images(ham, folder, n):
    """folder/<dx>/<copy>_<image_id>.jpg -> HAM10000's files, cycling through them until there are n."""
    import csv

    with open(Path(ham) / "HAM10000_metadata.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    files = {p.stem: p for p in Path(ham).rglob("*.jpg")}  # the release's two part folders, or one folder
    rows = [r for r in rows if r["image_id"] in files]
    for i in range(n):
        row = rows[i % len(rows)]
        link = Path(folder) / row["dx"] / f"{i // len(rows)}_{row['image_id']}.jpg"
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(files[row["image_id"]].resolve())


def measured(command, env=None):
    """(wall seconds, peak resident MiB) of `command` run to its end; its output passes through."""
    start = time.perf_counter()
    process = subprocess.Popen(command, env={**os.environ, **(env or {})})
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(map(str, command))}")
    return wall, usage.ru_maxrss / 1024


def epoch_step(data, steps, threads):
    """In this process: one epoch's batches read as ClassifierTrainer reads them; with steps, the first `steps`
    batches trained. Prints a JSON line of what it measured."""
    import tempfile

    import torch

    from classifier.config import ClassifierConfig
    from classifier.data import augment_batch, to_float
    from classifier.train import ClassifierTrainer
    from gan_aug.config import build_config

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as out:
        config = build_config(ClassifierConfig, None, {"data": data, "out": out, "epochs": 1, "batch_size": 32,
                                                       "balance": "oversample", "model": "small_cnn"})
        started = time.perf_counter()
        trainer = ClassifierTrainer(config, progress=False)
        setup = time.perf_counter() - started
        order = trainer.sampler.epoch(trainer.generator)
        bs = config.batch_size
        if steps:
            order = order[:steps * bs]
            trainer.sampler.epoch = lambda generator, with_synthetic=True: order
            started = time.perf_counter()
            trainer.train_one_epoch()
        else:
            started = time.perf_counter()
            for start in range(0, len(order), bs):
                augment_batch(to_float(trainer.pool_images[order[start:start + bs]]), trainer.generator)
        seconds = time.perf_counter() - started
        print(json.dumps({"images": len(order), "seconds": seconds, "setup_seconds": setup,
                          "epoch_images": trainer.sampler.n_real, "pool": type(trainer.pool_images).__name__}))


def split_step(data, threads):
    """In this process: the read rate and the augmentation rate of the epoch step, apart. Prints a JSON line."""
    import numpy as np
    import torch

    from classifier.data import augment_batch, to_float
    from gan_aug.data.prepared import load_prepared

    torch.set_num_threads(threads)
    prepared = load_prepared(data)
    rows = prepared.rows(prepared.indices("train"))
    draws = np.random.default_rng(0).integers(0, len(rows), 3200)
    started = time.perf_counter()
    batches = [rows[draws[start:start + 32]] for start in range(0, len(draws), 32)]
    read = time.perf_counter() - started
    batch, generator = to_float(torch.from_numpy(batches[0]).permute(0, 3, 1, 2).contiguous()), torch.Generator()
    started = time.perf_counter()
    for _ in range(10):
        augment_batch(batch, generator)
    augmented = time.perf_counter() - started
    print(json.dumps({"read_img_per_s": len(draws) / read, "read_mb_per_s": len(draws) * batches[0][0].nbytes / read
                      / 1e6, "augment_img_per_s": 10 * len(batch) / augmented}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ham", help="HAM10000 folder (metadata CSV and image parts).")
    parser.add_argument("--work", help="Scratch folder: the linked images and the prepared set (26 GB at the "
                                       "defaults).")
    parser.add_argument("--images", type=int, default=33126)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--train-steps", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", default="prepare,info,epoch,train,split", help="Steps to run, comma-separated.")
    parser.add_argument("--epoch-step", nargs=2, metavar=("DATA", "STEPS"), help=argparse.SUPPRESS)
    parser.add_argument("--split-step", metavar="DATA", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.epoch_step:
        return epoch_step(args.epoch_step[0], int(args.epoch_step[1]), args.threads)
    if args.split_step:
        return split_step(args.split_step, args.threads)
    if not (args.ham and args.work):
        parser.error("--ham and --work are required")
    work = Path(args.work)
    folder, data = work / "images", work / f"large{args.size}.npz"
    gan_aug = [sys.executable, "-m", "gan_aug"]
    steps = args.only.split(",")
    print(f"{args.images} images at {args.size} px: {args.images * args.size ** 2 * 3 / 1e9:.1f} GB of pixels; "
          f"memory {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2 ** 30:.1f} GiB", flush=True)
    if "prepare" in steps:
        link_images(args.ham, folder, args.images)
        wall, peak = measured(gan_aug + ["prepare", "--source", "imagefolder", "--root", folder, "--size",
                                         str(args.size), "--out", data, "--workers", str(args.threads), "--force"])
        print(f"prepare: {wall:.0f} s, peak {peak:.0f} MiB, {data.stat().st_size / 1e9:.2f} GB written", flush=True)
    if "info" in steps:
        wall, peak = measured(gan_aug + ["info", data])
        print(f"info (load + fingerprint check): {wall:.0f} s, peak {peak:.0f} MiB", flush=True)
    for step, train_steps in (("epoch", 0), ("train", args.train_steps)):
        if step in steps:
            command = [sys.executable, __file__, "--threads", str(args.threads), "--epoch-step", str(data),
                       str(train_steps)]
            wall, peak = measured(command)
            print(f"{step}: {wall:.0f} s in all, peak {peak:.0f} MiB", flush=True)
    if "split" in steps:
        measured([sys.executable, __file__, "--threads", str(args.threads), "--split-step", str(data)])


if __name__ == "__main__":
    main()
