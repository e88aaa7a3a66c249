"""Classifier training: train_one_epoch / evaluate / fit, model selection on val BMA only.

The test split is never read here (protocol rule 3): `gan-aug evaluate` touches it once, at the end.
"""

import math
import typing

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from classifier.checkpoint import FORMAT, build_from_args, inference_state
from classifier.data import (align_synthetic, augment_batch, encode_metadata, metadata_vocabulary, metadata_width,
                             split_tensors, to_float, training_pool)
from classifier.inference import split_metrics
from classifier.models import check_image_size, input_norm
from classifier.sampling import EpochSampler
from classifier.tasks import TASKS
from classifier.teachers import TeacherEnsemble
from gan_aug.config import config_dict, to_yaml
from gan_aug.data.folds import view
from gan_aug.data.prepared import load_prepared
from gan_aug.data.synthetic import load_synthetic
from gan_aug.distributed import global_batchnorm, sum_over_ranks
from gan_aug.errors import UserError
from gan_aug.fileio import load_checkpoint_file, save_torch, start_run_dir, write_text
from gan_aug.runtime import setup_run
from gan_aug.sinks import JsonlSink, Sinks, TensorBoardSink

RUN_ARTIFACTS = ("config.yaml", "best.pt", "latest.pt", "tb", "history.jsonl")


def weight_average(model, half_life_steps):
    """An exponential moving average of `model`'s weights and float buffers (torch's AveragedModel): its
    BatchNorm statistics follow the averaged weights, not the last few batches of the raw ones. The decay
    for `half_life_steps` is ramped up over the first steps (as timm does) so the random initial weights
    do not linger in the average."""
    decay = 0.5 ** (1 / half_life_steps)

    def average(averaged, current, num_averaged):
        if not averaged.is_floating_point():  # BatchNorm's step counter: follow the model
            return current
        step = num_averaged + 1  # a tensor: no host sync per parameter on a GPU
        return averaged.lerp(current, 1 - ((1 + step) / (10 + step)).clamp(max=decay).to(averaged.dtype))

    return torch.optim.swa_utils.AveragedModel(model, avg_fn=average, use_buffers=True)


def batch_mixer(kind, alpha, n_classes):
    """torchvision's MixUp or CutMix for (images, labels) batches, labels as indices or probabilities; None for
    none. They draw from torch's global RNG, which train_one_epoch seeds per seed, rank and epoch."""
    if kind == "none":
        return None
    from torchvision.transforms import v2

    return {"mixup": v2.MixUp, "cutmix": v2.CutMix}[kind](alpha=alpha, num_classes=n_classes)


class TrainSummary(typing.TypedDict):
    """What a finished training returns (rank 0; other ranks get None): what compare, tune and k-fold read."""
    best_epoch: int  # the epoch of best.pt: the best val BMA
    best_val_bma: float
    epochs: int  # the epochs run (fewer than asked when early stopping ended the run)
    checkpoint: str  # best.pt's path


class ClassifierTrainer:
    def __init__(self, config, progress=True, prepared=None, synthetic=None, teachers=None):
        self.progress = progress
        run = setup_run(config, RUN_ARTIFACTS, inputs=("data", "synthetic", "teachers"))
        self.config = config = run.config  # absolute input paths, the world size: what is recorded
        self.resumed = run.resume
        self.run_dir, self.device, self.autocast, self.world = run.run_dir, run.device, run.autocast, run.world
        prepared = view(prepared or load_prepared(config.data), config.folds, config.fold)  # fold k's, with --folds
        self.prepared = prepared
        check_image_size(config.model, prepared.image_size)
        task = TASKS[config.task](prepared.class_names)
        vocab = metadata_vocabulary(prepared) if config.use_metadata else None
        self.model_args = {"model": config.model, "task": config.task, "heads": task.heads,
                           "meta_dim": metadata_width(vocab) if vocab else 0, "metadata_vocab": vocab,
                           "class_names": list(prepared.class_names), "image_size": prepared.image_size,
                           "dropout": config.dropout, "input_norm": input_norm(config.model, config.pretrained),
                           # what every stage that feeds it raw images must apply to them too (issue #40)
                           "color_constancy": prepared.color_constancy}
        torch.manual_seed(config.seed)  # the same initial weights on every rank
        self.model, self.task = build_from_args(self.model_args, pretrained=config.pretrained)
        self.model.to(self.device, memory_format=torch.channels_last)  # 1.3x faster convs on CPU (oneDNN)
        self.model = global_batchnorm(self.model, self.world, self.device)
        self.frozen = None  # whether the backbone is frozen (freeze_epochs); set at each epoch's start

        train = split_tensors(prepared, "train", vocab, self.device)
        self.val = split_tensors(prepared, "val", vocab, self.device)
        syn_images, syn_labels = np.zeros((0,) + prepared.images.shape[1:], np.uint8), np.zeros(0, np.int64)
        if config.synthetic:
            syn_images, syn_labels = align_synthetic(synthetic or load_synthetic(config.synthetic), prepared)
        self.pool_images = training_pool(train.images, syn_images, self.device)  # (N_real + N_syn, 3, H, W) uint8
        self.pool_targets = torch.cat([train.labels, torch.from_numpy(syn_labels).to(self.device)])
        # Distillation: every pool image's target is the teachers' mean class probabilities (computed once,
        # on the unaugmented images: the augmentations are symmetries and light jitter that keep the class).
        # `teachers`: an ensemble of config.teachers already loaded by the caller (compare shares one across runs).
        if config.teachers:
            teachers = teachers or TeacherEnsemble(config.teachers, prepared.fingerprint, prepared.image_size,
                                                   self.device)
            self.pool_targets = teachers.label_pool(self.pool_images).to(self.device)
        self.pool_meta = None
        if vocab is not None:  # synthetic images carry no metadata: all 'unknown'
            unknown = torch.from_numpy(encode_metadata(vocab, len(syn_labels))).to(self.device)
            self.pool_meta = torch.cat([train.meta, unknown])
        self.sampler = EpochSampler(train.labels.cpu(), syn_labels, len(prepared.class_names),
                                    config.balanced_stream, config.mix, config.mix_policy)
        targets = task.targets(train.labels).cpu()
        counts = torch.bincount(targets, minlength=len(task.output_names)).float()
        self.class_weight = None
        if config.balance == "class-weight" or config.balance == "focal":
            self.class_weight = (counts.sum() / (len(counts) * counts.clamp(min=1))).to(self.device)
        self.loss_kw = {"focal_gamma": config.focal_gamma if config.balance == "focal" else 0.0}
        if config.loss != "ce":  # the train split's prior, whatever the sampler draws
            tau = 1.0 if config.loss == "balanced-softmax" else config.logit_tau
            self.loss_kw["logit_offset"] = (tau * torch.log(counts.clamp(min=1) / counts.sum())).to(self.device)
        self.mixer = batch_mixer(config.mixing, config.mixing_alpha, len(task.output_names))

        self.steps_per_epoch = math.ceil(len(train.labels) / config.batch_size)
        # One AdamW group per learning rate: [heads and metadata branch, backbone] (one group at multiplier 1,
        # as before, so earlier runs resume).
        self.lr_mults = [1.0] if config.backbone_lr_mult == 1 else [1.0, config.backbone_lr_mult]
        backbone = {id(p) for p in self.model.backbone.parameters()}
        groups = [list(self.model.parameters())] if len(self.lr_mults) == 1 else [
            [p for p in self.model.parameters() if id(p) not in backbone], list(self.model.backbone.parameters())]
        self.optimizer = torch.optim.AdamW([{"params": g, "lr": config.lr * m} for g, m in zip(groups, self.lr_mults)],
                                           lr=config.lr, weight_decay=config.weight_decay)
        total = self.steps_per_epoch * config.epochs
        warmup = max(1, self.steps_per_epoch // 2)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s / total, 1))))
        self.ema = weight_average(self.model, config.ema_half_life * self.steps_per_epoch) if config.ema_half_life \
            else None
        self.generator = torch.Generator().manual_seed(config.seed)
        self.epoch, self.best, self.history = 0, {"bma": -1.0, "epoch": -1}, []
        if self.resumed:
            self._restore(load_checkpoint_file(self.run_dir / "latest.pt", FORMAT, "classifier", self.device))
        if self.world.is_main:  # every input checked: only now may --force remove the old run
            start_run_dir(self.run_dir, RUN_ARTIFACTS, self.resumed)
        self.world.barrier()

    def _restore(self, state):
        if state["data"]["fingerprint"] != self.prepared.fingerprint or state["model_args"] != self.model_args:
            raise UserError("cannot resume: the run used a different prepared set or model settings")
        self.model.load_state_dict(state.get("training_model", state["model"]))
        if self.ema is not None:
            self.ema.module.load_state_dict(state["model"])
            self.ema.n_averaged.fill_(state["ema_updates"])
        if len(state["optimizer"]["param_groups"]) != len(self.lr_mults):
            raise UserError("cannot resume: the run had another backbone_lr_mult (1 vs not 1)")
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        # Loading also restores the old run's lr and weight decay; a resumed run follows the settings it
        # was given (e.g. --set lr=... or more --epochs): their schedule, from the step it had reached.
        self.scheduler.base_lrs = [self.config.lr * m for m in self.lr_mults]
        scale = self.scheduler.lr_lambdas[0](self.scheduler.last_epoch)
        for group, base in zip(self.optimizer.param_groups, self.scheduler.base_lrs):
            group.update(lr=base * scale, initial_lr=base, weight_decay=self.config.weight_decay)
        self.generator.set_state(state["sampler_rng"])
        self.epoch, self.best, self.history = state["epoch"], state["best"], state["history"]

    @property
    def inference_model(self):
        """The weights that are evaluated, selected and saved as "model": the average when there is one."""
        return self.model if self.ema is None else self.ema.module

    def state_dict(self):
        config = config_dict(self.config)
        extra = {} if self.ema is None else {"training_model": self.model.state_dict(),  # to resume training
                                             "ema_updates": int(self.ema.n_averaged)}
        return {"format": FORMAT, "model_args": self.model_args, "model": self.inference_model.state_dict(), **extra,
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "sampler_rng": self.generator.get_state(),
                "epoch": self.epoch, "best": self.best, "history": self.history, "config": config,
                "data": {"fingerprint": self.prepared.fingerprint, "path": str(self.prepared.path)}}

    def _freeze_backbone(self, frozen):
        """Head-only epochs: the backbone gets no gradient (AdamW skips it, weight decay too) and keeps its
        BatchNorm statistics, as Keras's `trainable = False` does for a pretrained base."""
        if frozen != self.frozen:
            self.frozen = frozen
            self.model.backbone.requires_grad_(not frozen)
            # Under torchrun, DistributedDataParallel averages the gradients of the parameters that had one when
            # it was built, so it is built again when that set changes. BatchNorm buffers stay in step by
            # themselves (global-batch statistics), so they need no broadcast.
            self.train_model = self.model if self.world.size == 1 else DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                broadcast_buffers=False)
        if frozen:
            self.model.backbone.eval()

    def train_one_epoch(self):
        self.model.train()
        self._freeze_backbone(self.epoch < self.config.freeze_epochs)
        # What differs between ranks (dropout) draws from torch's global RNG, seeded per rank and epoch, so a
        # run resumed at an epoch boundary draws what the uninterrupted run drew.
        torch.manual_seed(hash((self.config.seed, self.world.rank, self.epoch)) % (1 << 62))
        with_synthetic = self.epoch < round(self.config.mix_until * self.config.epochs)
        order = self.sampler.epoch(self.generator, with_synthetic).to(self.device)  # the global stream
        total, shown, batches = 0.0, 0.0, 0  # total: this rank's part of the global batches' mean losses
        bs = self.config.batch_size
        bar = tqdm(range(0, len(order), bs), desc=f"epoch {self.epoch + 1}/{self.config.epochs}", leave=False,
                   disable=not (self.progress and self.world.is_main), unit="batch")
        for start in bar:
            batch = order[start:start + bs]
            rows = torch.tensor_split(torch.arange(len(batch)), self.world.size)[self.world.rank]  # this rank's
            idx = batch[rows.to(batch.device)]
            x = augment_batch(to_float(self.pool_images[idx]), self.generator, rows, len(batch))
            x = x.contiguous(memory_format=torch.channels_last)
            meta = None if self.pool_meta is None else self.pool_meta[idx]
            targets = self.pool_targets[idx]
            if self.mixer is not None:  # pairs each image with the next one of the batch (shuffled by the sampler)
                x, targets = self.mixer(x, targets)
            with self.autocast:
                outputs = self.train_model(x, meta)
            outputs = {k: v.float() for k, v in outputs.items()}
            loss = self.task.loss(outputs, targets, self.class_weight, **self.loss_kw)
            # DDP averages the ranks' gradients; weighting by each rank's share of the global batch makes
            # that the gradient of the global batch's mean loss even when the last batch splits unevenly.
            share = len(idx) * self.world.size / len(batch)
            self.optimizer.zero_grad(set_to_none=True)
            (loss * share).backward()
            self.optimizer.step()
            self.scheduler.step()
            if self.ema is not None:
                self.ema.update_parameters(self.model)
            total += float(loss.detach()) * len(idx) / len(batch)
            shown, batches = shown + float(loss.detach()), batches + 1
            bar.set_postfix(loss=f"{shown / batches:.3f}")
        total = float(sum_over_ranks(self.world, torch.tensor([total], dtype=torch.float64)))  # every rank's part
        if not math.isfinite(total):  # nan weights would only fail later, deep in the metrics, with a traceback
            raise UserError(f"training diverged in epoch {self.epoch + 1} (loss {total}): lower lr or weight_decay")
        return total / max(batches, 1)

    def _save(self, name):
        """latest.pt holds all that resumes training; best.pt only what evaluates the model (no optimizer: a
        vgg16's would be 1.6 GB)."""
        if self.world.is_main:
            state = self.state_dict()
            save_torch(state if name != "best.pt" else inference_state(state), self.run_dir / name)

    def fit(self, on_epoch=None) -> typing.Optional[TrainSummary]:
        """Train to config.epochs. Every rank scores val (the weights are the same on all of them, so they
        agree on the best epoch and on early stopping); rank 0 alone writes. `on_epoch(row)` sees each epoch's
        history row once it is saved; it may raise to stop the run (tune's pruning, without optuna here)."""
        cfg = self.config
        sinks = Sinks()
        if self.world.is_main:
            write_text(self.run_dir / "config.yaml", to_yaml(cfg))
            resumed_at = self.epoch if self.resumed else None
            sinks = Sinks(JsonlSink(self.run_dir / "history.jsonl", resumed_at),
                          TensorBoardSink(self.run_dir / "tb", resumed_at))
        try:
            while self.epoch < cfg.epochs:
                loss = self.train_one_epoch()
                metrics, _ = split_metrics(self.inference_model, self.task, self.val, self.autocast)
                self.epoch += 1
                row = {"epoch": self.epoch, "loss": loss, "val_bma": metrics["bma"], "val_accuracy": metrics["accuracy"],
                       "lr": self.scheduler.get_last_lr()[0]}
                self.history.append(row)
                sinks.scalars({"train/loss": loss, "val/bma": metrics["bma"], "val/accuracy": metrics["accuracy"],
                               "train/lr": row["lr"]}, self.epoch)
                if cfg.keep == "last" or metrics["bma"] > self.best["bma"]:
                    self.best = {"bma": metrics["bma"], "epoch": self.epoch, "val": metrics}
                    self._save("best.pt")
                self._save("latest.pt")
                if on_epoch is not None:
                    on_epoch(row)
                if cfg.patience and self.epoch - self.best["epoch"] >= cfg.patience:
                    break  # early stopping on val BMA
        finally:
            sinks.close()
        if not self.world.is_main:
            return None  # one summary per run, rank 0's
        return TrainSummary(best_epoch=self.best["epoch"], best_val_bma=self.best["bma"], epochs=self.epoch,
                            checkpoint=str(self.run_dir / "best.pt"))


def train_classifier(config, progress=True, prepared=None, synthetic=None, teachers=None,
                     on_epoch=None) -> typing.Optional[TrainSummary]:
    return ClassifierTrainer(config, progress, prepared, synthetic, teachers).fit(on_epoch)
