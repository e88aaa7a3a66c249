"""The diffusion training loop behind `gan-aug train-diffusion`: the GAN runs' layout, resume, torchrun and quality
tracking, around a denoising loss.

Each step draws, for the global batch and alike on every rank, the real images, their noise, their timesteps,
which of them lose their class (classifier-free guidance's label dropout) and which of the 8 symmetries each is
shown in; the UNet learns to predict the noise (eps) or the velocity (v) of the noised image. The model sees the
train split only (protocol rule 2).
"""

import torch

from gan_aug.config import config_dict
from gan_aug.diffusion.checkpoint import FORMAT, load_checkpoint
from gan_aug.diffusion.model import build_unet, diffusion_model_args, noise_schedule, null_class, sample
from gan_aug.distributed import average_gradients
from gan_aug.errors import UserError
from gan_aug.fileio import start_run_dir
from gan_aug.gan.checkpoint import RUN_ARTIFACTS, resume_file, save_checkpoint
from gan_aug.gan.ema import ema_beta, make_ema, update_ema
from gan_aug.gan.loop import GeneratorLoop
from gan_aug.gan.sampling import tile

METRICS_SEED = 20240
GRID_SEED = 0


def dihedral(x, views):
    """Each image of (B, 3, H, W) x in its symmetry views[b] (0-7): bit 1 mirrors, bit 2 flips, bit 4 transposes."""
    pick = lambda bit: (views & bit).bool().view(-1, 1, 1, 1)
    x = torch.where(pick(1), x.flip(3), x)
    x = torch.where(pick(2), x.flip(2), x)
    return torch.where(pick(4), x.transpose(2, 3), x)


class DiffusionTrainer(GeneratorLoop):
    """The UNet, its average, the optimizer and the counters of one run; `run()` (GeneratorLoop's) trains to
    config.kimg."""

    FORMAT = FORMAT

    def __init__(self, config, progress=True, quality=None):
        """`quality`: gan_aug.metrics.tracking.TrainingQuality when config.metrics_every is set (given by the
        caller: the loop never imports the metrics)."""
        prepared = self.start_run(config, progress, quality, "train-diffusion")
        config = self.config
        levels = len(config.channels)
        if prepared.image_size % 2 ** (levels - 1) or prepared.image_size >> (levels - 1) < 4:
            raise UserError(f"{levels} UNet levels halve {prepared.image_size} px images {levels - 1} times: give "
                            "fewer channels entries (a level per entry) or a larger --size")
        self.stage_training_data(prepared)
        self.model_args = diffusion_model_args(prepared.image_size, len(self.class_names), config.channels,
                                               config.layers_per_block, config.attention, config.prediction,
                                               config.schedule, config.timesteps)
        self.image_shape = (3, prepared.image_size, prepared.image_size)
        torch.manual_seed(config.seed)  # the same initial weights on every rank
        self.unet = build_unet(self.model_args).to(self.device)
        self.unet_ema = make_ema(self.unet)
        self.schedule = noise_schedule(self.model_args)
        self.opt = torch.optim.AdamW(self.unet.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.step, self.images_seen, self.best_fd = 0, 0, float("inf")
        if self.resumed:
            self._restore(load_checkpoint(resume_file(self.run_dir), map_location=self.device))
        compile_ = self.device.type == "cuda" and config.compile
        self.unet_train = torch.compile(self.unet) if compile_ else self.unet  # checkpoints save the uncompiled one
        grid = torch.Generator().manual_seed(GRID_SEED)  # the same noise in every grid: progress shows as change
        self.grid_noise = torch.randn(config.grid_columns, *self.image_shape, generator=grid).repeat(
            len(self.class_names), 1, 1, 1)
        self.grid_labels = torch.arange(len(self.class_names)).repeat_interleave(config.grid_columns)
        if self.world.is_main:  # every input checked: only now may --force remove the old run
            start_run_dir(self.run_dir, RUN_ARTIFACTS, self.resumed)
        self.world.barrier()

    def _restore(self, state):
        if state["data"]["fingerprint"] != self.data_info["fingerprint"]:
            raise UserError("cannot resume: the run was trained on a different prepared set")
        if state["model_args"] != self.model_args or tuple(state["class_names"]) != self.class_names:
            raise UserError("cannot resume: the run had another UNet, schedule or classes (channels, "
                            "layers_per_block, attention, prediction, schedule, timesteps, --class)")
        self.unet.load_state_dict(state["unet"])
        self.unet_ema.load_state_dict(state["unet_ema"])
        self.opt.load_state_dict(state["opt"])
        for group in self.opt.param_groups:  # a resumed run follows the settings it was given now
            group["lr"], group["weight_decay"] = self.config.lr, self.config.weight_decay
        self.step, self.images_seen = int(state["step"]), int(state["images_seen"])
        self.batch_rng.set_state(state["rng"]["batch"])
        self.best_fd = float(state["best_fd"])

    def state_dict(self):
        return {"model_args": self.model_args, "class_names": list(self.class_names),
                "image_size": self.image_shape[1], "data": self.data_info, "config": config_dict(self.config),
                "unet": self.unet.state_dict(), "unet_ema": self.unet_ema.state_dict(), "opt": self.opt.state_dict(),
                "step": self.step, "images_seen": self.images_seen, "kimg": self.images_seen / 1000,
                "rng": {"batch": self.batch_rng.get_state()}, "best_fd": self.best_fd}

    def _global_batch_rows(self):
        """This rank's rows of the next global batch: image indices, noise, timesteps, dropped labels, views."""
        cfg, rng, (start, stop) = self.config, self.batch_rng, self.rows
        n = cfg.batch_size
        idx = torch.multinomial(self.draw_weights, n, replacement=True, generator=rng)
        noise = torch.randn(n, *self.image_shape, generator=rng)
        timesteps = torch.randint(0, cfg.timesteps, (n,), generator=rng)
        dropped = torch.rand(n, generator=rng) < cfg.label_dropout
        views = torch.randint(0, 8, (n,), generator=rng)
        return [part[start:stop] for part in (idx, noise, timesteps, dropped, views)]

    def train_step(self, stats):
        cfg = self.config
        idx, noise, timesteps, dropped, views = self._global_batch_rows()
        images, labels = self.train_images.batch(idx)
        clean = images.float() / 127.5 - 1  # (B, 3, H, W) in [-1, 1]
        if cfg.flips:
            clean = dihedral(clean, views.to(self.device))
        labels = torch.where(dropped.to(self.device), null_class(self.model_args), labels)
        noise, timesteps = noise.to(self.device), timesteps.to(self.device)
        noisy = self.schedule.add_noise(clean, noise, timesteps)
        target = noise if cfg.prediction == "eps" else self.schedule.get_velocity(clean, noise, timesteps)
        with self.autocast:
            prediction = self.unet_train(noisy, timesteps, class_labels=labels).sample
        loss = torch.nn.functional.mse_loss(prediction.float(), target)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        average_gradients(self.world, self.unet.parameters())
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.unet.parameters(), cfg.grad_clip)
        self.opt.step()
        update_ema(self.unet, self.unet_ema, ema_beta(cfg.batch_size, cfg.ema_kimg))
        self.step += 1
        self.images_seen += cfg.batch_size
        stats.report("Loss/denoising", loss)
        return float(loss.detach())

    def _sample(self, labels, noise):
        return sample(self.unet_ema, self.model_args, labels, noise, self.config.sample_steps,
                      guidance=self.config.guidance)

    def sample_grid(self):
        return tile(self._sample(self.grid_labels, self.grid_noise), self.config.grid_columns)

    def quality_sampler(self):
        """sample(class_index, n) for the quality tracker: the same noise at every measurement."""
        noise_rng = torch.Generator().manual_seed(METRICS_SEED)

        def generate(class_index, n):
            noise = torch.randn(n, *self.image_shape, generator=noise_rng)
            return self._sample(torch.full((n,), class_index), noise)
        return generate

    def postfix(self, loss):
        return {"loss": f"{loss:.4f}"}

    def checkpoint(self):
        if self.world.is_main:
            save_checkpoint(self.state_dict(), self.run_dir, self.step, FORMAT)


def train_diffusion(config, progress=True, quality=None):
    return DiffusionTrainer(config, progress, quality).run()
