"""What the generator trainers share (train-gan's GanTrainer, train-diffusion's DiffusionTrainer): the loop that
shows `kimg` thousand images to a train step and, on its kimg schedule, writes the sample grids, measures quality
(keeping best.pt) and checkpoints. Under torchrun every rank trains; rank 0 alone writes."""

import sys
import time

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from gan_aug.config import to_yaml
from gan_aug.data.staging import StagedImages
from gan_aug.data.folds import load_view
from gan_aug.distributed import sum_table_over_ranks
from gan_aug.errors import UserError
from gan_aug.fileio import atomic_write, save_torch, write_text
from gan_aug.gan.checkpoint import BEST, RESUMABLE, RUN_ARTIFACTS
from gan_aug.gan.training_data import FD_KEY, TRAIN_SPLIT, select_training_data
from gan_aug.runtime import setup_run
from gan_aug.sinks import JsonlSink, Sinks, StatsCollector, TensorBoardSink, nonfinite_warning


def next_multiple(value, every):
    """The first multiple of `every` strictly above `value`."""
    every = max(int(round(every)), 1)
    return (value // every + 1) * every


class GeneratorLoop:
    """A subclass sets config (kimg, batch_size, snapshot_every, ckpt_every, metrics_every), run_dir, world, step,
    images_seen, best_fd, class_names, quality, progress and resumed, and gives: train_step(stats), postfix(what
    train_step returned) -> the progress bar's dict, sample_grid() -> one uint8 grid with a row per class,
    quality_sampler() -> sample(class_index, n) for the quality tracker, state_dict(), checkpoint(), label (the
    progress bar's) and the class attribute FORMAT (best.pt's)."""

    FORMAT = None

    def start_run(self, config, progress, quality, label):
        """Check the run folder and set up threads, device and torchrun (setup_run); the prepared set's view the
        run trains on (with --folds, fold k's train part only). `quality`: the tracker of FD while training,
        given by the caller when config.metrics_every is set, so the loop never imports the metrics."""
        self.progress, self.quality, self.label = progress, quality, label
        if config.metrics_every and quality is None:
            raise UserError("metrics_every is set but no quality tracker was given")
        run = setup_run(config, RUN_ARTIFACTS, RESUMABLE, inputs=("data", "fid_weights"))
        self.config = config = run.config  # absolute input paths, the world size: what is recorded
        self.resumed = run.resume
        self.run_dir, self.device, self.autocast, self.world = run.run_dir, run.device, run.autocast, run.world
        return load_view(config.data, config.folds, config.fold)

    def stage_training_data(self, prepared):
        """The train split's images of the chosen classes where the loop reads them (StagedImages), the weights
        each is drawn with, and the batch stream: a generator that draws everything random of each global batch,
        alike on every rank (each keeps its rows), so N processes follow one process's recipe; it is saved in
        checkpoints, so a resume continues it. Sets class_names and data_info (what checkpoints record)."""
        cfg = self.config
        images, labels, self.class_names = select_training_data(prepared, cfg.classes, cfg.batch_size)
        counts = np.bincount(labels, minlength=len(self.class_names))
        self.data_info = {"fingerprint": prepared.fingerprint, "split": TRAIN_SPLIT, "path": str(prepared.path),
                          "n_images": len(labels), "source": prepared.source, "class_counts": counts.tolist()}
        self.train_images = StagedImages(images, labels, self.device, cfg.data_on_device)
        self.draw_weights = torch.from_numpy(1.0 / counts[labels] if cfg.balanced_classes
                                             else np.ones(len(labels))).float()
        self.batch_rng = torch.Generator().manual_seed(cfg.seed)
        self.rows = self.world.share(cfg.batch_size)

    def snapshot(self, sinks):
        if not self.world.is_main:
            return
        grid = self.sample_grid()
        with atomic_write(self.run_dir / "samples" / f"step{self.step:07d}.png") as handle:
            Image.fromarray(grid).save(handle, format="PNG")
        sinks.image("samples/all", grid, self.step)
        for name, row in zip(self.class_names, np.split(grid, len(self.class_names))):  # one row per class
            sinks.image(f"samples/{name}", row, self.step)

    def measure(self, sinks):
        """FD/KID against the train split (rank 0); best.pt keeps the snapshot with the lowest overall FD."""
        if not self.world.is_main:
            return
        values = self.quality(self.quality_sampler())
        sinks.scalars(values, self.step, self.images_seen / 1000)
        if values[FD_KEY] < self.best_fd:
            self.best_fd = values[FD_KEY]
            save_torch({"format": self.FORMAT, **self.state_dict()}, self.run_dir / BEST)

    def run(self):
        cfg = self.config
        sinks = Sinks()  # rank 0 alone writes; the other ranks only train
        if self.world.is_main:
            write_text(self.run_dir / "config.yaml", to_yaml(cfg))
            resumed_at = self.step if self.resumed else None
            sinks = Sinks(JsonlSink(self.run_dir / "stats.jsonl", resumed_at),
                          TensorBoardSink(self.run_dir / "tb", resumed_at))
        stats = StatsCollector()
        total = int(round(cfg.kimg * 1000))
        every = lambda kimg: next_multiple(self.images_seen, kimg * 1000) if kimg else None
        next_snapshot, next_ckpt, next_metrics = every(cfg.snapshot_every), every(cfg.ckpt_every), \
            every(cfg.metrics_every)
        bar = tqdm(total=total, initial=min(self.images_seen, total), unit="img", unit_scale=True, desc=self.label,
                   disable=not (self.progress and self.world.is_main))
        started, start_images = time.perf_counter(), self.images_seen
        try:
            if self.images_seen == 0:
                self.snapshot(sinks)
            while self.images_seen < total:
                result = self.train_step(stats)
                bar.update(cfg.batch_size)
                if self.step % 10 == 0:
                    bar.set_postfix(self.postfix(result))
                done = self.images_seen >= total
                if self.images_seen >= next_snapshot or done:
                    stats.report("Speed/img_per_s", (self.images_seen - start_images) / (time.perf_counter() - started))
                    values = stats.flush(lambda table: sum_table_over_ranks(self.world, table))
                    sinks.scalars(values, self.step, self.images_seen / 1000)
                    warning = nonfinite_warning(values)
                    if warning and self.world.is_main:
                        tqdm.write(warning, file=sys.stderr)
                    self.snapshot(sinks)
                    next_snapshot = every(cfg.snapshot_every)
                if next_metrics and (self.images_seen >= next_metrics or done):
                    self.measure(sinks)
                    next_metrics = every(cfg.metrics_every)
                if self.images_seen >= next_ckpt or done:
                    self.checkpoint()
                    next_ckpt = every(cfg.ckpt_every)
        finally:
            bar.close()
            sinks.close()
        elapsed = time.perf_counter() - started
        if not self.world.is_main:
            return None  # one summary per run, rank 0's
        return {"step": self.step, "kimg": self.images_seen / 1000, "seconds": elapsed,
                "img_per_s": (self.images_seen - start_images) / max(elapsed, 1e-9),
                "checkpoint": str(self.run_dir / "latest.pt")}
