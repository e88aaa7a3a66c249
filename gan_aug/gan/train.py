"""The GAN training loop behind `gan-aug train-gan`.

Real images are preloaded once as a uint8 tensor on the device and augmented there; there is no
per-image DataLoader work. The GAN sees the train split only (protocol rule 2).
"""

import numpy as np
import torch

from gan_aug.config import config_dict
from gan_aug.distributed import average_gradients, global_batchnorm, sum_over_ranks
from gan_aug.errors import UserError
from gan_aug.fileio import start_run_dir
from gan_aug.gan.augment import AdaptiveProbability, augment
from gan_aug.gan.checkpoint import FORMAT, RUN_ARTIFACTS, load_checkpoint, resume_file, save_checkpoint
from gan_aug.gan.ema import ema_beta, make_ema, refresh_standing_stats, update_ema
from gan_aug.gan.loop import GeneratorLoop
from gan_aug.gan.losses import LOSSES, r1_penalty
from gan_aug.gan.networks import NETWORKS, build_networks, model_args
from gan_aug.gan.sampling import class_grid, generate, grid_latents

METRICS_SEED = 20240


def conditioning_weight(config, kimg):
    """Strength of the class signal at `kimg`: 0 before cond_start_kimg, 1 after cond_end_kimg."""
    if config.cond_end_kimg <= config.cond_start_kimg:
        return 0.0 if kimg < config.cond_start_kimg else 1.0
    return float(np.clip((kimg - config.cond_start_kimg) / (config.cond_end_kimg - config.cond_start_kimg), 0, 1))


class GanTrainer(GeneratorLoop):
    """Holds the networks, optimizers and counters of one run; `run()` (GeneratorLoop's) trains to config.kimg."""

    FORMAT = FORMAT

    def __init__(self, config, progress=True, quality=None):
        """`quality`: a callable that scores a sampler (gan_aug.metrics.tracking.TrainingQuality), given by
        the caller when config.metrics_every is set; the loop itself never imports the metrics."""
        self._stats_step = None  # the step whose standing statistics G_ema holds
        prepared = self.start_run(config, progress, quality, f"train-gan {config.arch}")
        config = self.config
        arch = NETWORKS[config.arch]
        if prepared.image_size not in arch.sizes:
            raise UserError(f"{config.arch} supports {', '.join(map(str, arch.sizes))} px, but {config.data} "
                            f"holds {prepared.image_size} px images (re-run prepare with --size 32 or 64)")
        self.stage_training_data(prepared)  # the batch stream draws the indices and latents of each batch
        self.model_args = model_args(config.arch, prepared.image_size, len(self.class_names), config.z_dim,
                                     config.g_channels, config.d_channels, config.mbstd_group)
        on_cuda = self.device.type == "cuda"
        self.memory_format = torch.channels_last

        torch.manual_seed(config.seed)  # the same initial weights on every rank
        rows = self.rows[1] - self.rows[0]
        if config.mbstd_group and rows % config.mbstd_group:  # else a group would hold reals and fakes
            raise UserError(f"mbstd_group {config.mbstd_group} must divide each process's {rows} rows of the batch")
        self.G, self.D = build_networks(self.model_args)
        self.G.to(self.device, memory_format=self.memory_format)
        self.D.to(self.device, memory_format=self.memory_format)
        self.G_ema = make_ema(self.G)  # before the BatchNorm swap: sampling the average needs no other rank
        self.G = global_batchnorm(self.G, self.world, self.device)
        betas = (config.beta1, config.beta2)
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=config.lr_g, betas=betas, foreach=True)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=config.lr_d, betas=betas, foreach=True)
        self.ada = AdaptiveProbability(config.ada_target, speed_kimg=config.ada_speed_kimg,
                                       p=0.0 if config.ada_target > 0 else 1.0)
        self.step, self.images_seen, self.best_fd = 0, 0, float("inf")
        if self.resumed:
            self._restore(load_checkpoint(resume_file(self.run_dir), map_location=self.device))
        self._seed_local_rng()
        compile_ = on_cuda and config.compile
        self.G_train = torch.compile(self.G) if compile_ else self.G  # checkpoints save the uncompiled modules
        self.D_train = torch.compile(self.D) if compile_ else self.D
        self.d_loss_fn, self.g_loss_fn = LOSSES[config.loss]
        self.grid_z, self.grid_c = grid_latents(len(self.class_names), config.grid_columns, config.z_dim)
        if self.world.is_main:  # every input checked: only now may --force remove the old run
            start_run_dir(self.run_dir, RUN_ARTIFACTS, self.resumed)
        self.world.barrier()

    # -- state ---------------------------------------------------------------------------------
    def _restore(self, state):
        if state["data"]["fingerprint"] != self.data_info["fingerprint"]:
            raise UserError("cannot resume: the run was trained on a different prepared set "
                            f"(fingerprint {state['data']['fingerprint'][:12]}, this one {self.data_info['fingerprint'][:12]})")
        if state["model_args"] != self.model_args:
            diff = {k: (state["model_args"].get(k), v) for k, v in self.model_args.items()
                    if state["model_args"].get(k) != v}
            raise UserError(f"cannot resume: architecture differs from the run's (run vs now: {diff})")
        if tuple(state["class_names"]) != self.class_names:
            raise UserError(f"cannot resume: the run trained classes {', '.join(state['class_names'])}")
        for name in ("G", "D", "G_ema", "opt_G", "opt_D"):
            getattr(self, name).load_state_dict(state[name])
        # Loading an optimizer's state also restores its old hyperparameters; a resumed run uses the
        # settings it was given (e.g. --set lr_d=...), keeping only Adam's moments and step counts.
        for optimizer, lr in ((self.opt_G, self.config.lr_g), (self.opt_D, self.config.lr_d)):
            for group in optimizer.param_groups:
                group["lr"], group["betas"] = lr, (self.config.beta1, self.config.beta2)
        self.ada.load_state_dict(state["ada"])
        self.step, self.images_seen = int(state["step"]), int(state["images_seen"])
        self.batch_rng.set_state(state["rng"]["batch"])
        self.best_fd = float(state["best_fd"])

    def _seed_local_rng(self):
        """torch's global RNG draws what differs between ranks (augmentation, stylegan_lite's noise). It is
        seeded from (seed, rank, step) at the start and after every checkpoint, so a run resumed from any
        checkpoint, at any world size, draws what an uninterrupted run of that world size draws."""
        torch.manual_seed(hash((self.config.seed, self.world.rank, self.step)) % (1 << 62))

    def state_dict(self):
        rng = {"batch": self.batch_rng.get_state()}
        config = config_dict(self.config)
        return {"model_args": self.model_args, "class_names": list(self.class_names),
                "image_size": self.model_args["img_size"], "data": self.data_info, "config": config,
                "G": self.G.state_dict(), "D": self.D.state_dict(), "G_ema": self.G_ema.state_dict(),
                "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict(), "ada": self.ada.state_dict(),
                "step": self.step, "images_seen": self.images_seen, "kimg": self.images_seen / 1000, "rng": rng,
                "best_fd": self.best_fd}

    # -- one iteration ---------------------------------------------------------------------------
    def _global_batch_rows(self):
        """This rank's (real-image indices, latents) of the next global batch."""
        start, stop = self.rows
        idx = torch.multinomial(self.draw_weights, self.config.batch_size, replacement=True, generator=self.batch_rng)
        z = torch.randn(self.config.batch_size, self.config.z_dim, generator=self.batch_rng)
        return idx[start:stop], z[start:stop].to(self.device)

    def _real_batch(self, idx):
        images, labels = self.train_images.batch(idx)
        real = images.float() / 127.5 - 1  # (B, 3, H, W) in [-1, 1]
        return real.contiguous(memory_format=self.memory_format), labels

    def train_step(self, stats):
        cfg = self.config
        cond = conditioning_weight(cfg, self.images_seen / 1000)
        idx, z = self._global_batch_rows()
        real, c = self._real_batch(idx)
        B = len(real)  # this rank's rows of the global batch
        do_r1 = cfg.r1_gamma > 0 and self.step % cfg.r1_every == 0

        # Discriminator: real vs detached fakes, both augmented; R1 (lazy) on the augmented reals.
        self.D.requires_grad_(True)
        # One generator forward per step: the D step sees these fakes detached, the G step reuses them.
        with self.autocast:
            fake = self.G_train(z, c, cond)
        real_aug = augment(real, cfg.diffaugment, self.ada.p).requires_grad_(do_r1)
        fake_aug = augment(fake.detach(), cfg.diffaugment, self.ada.p)
        if do_r1:  # R1's double backward in fp32, on the reals alone, uncompiled: torch.compile has no
            real_logits = self.D(real_aug, c, cond).float()  # double backward; D_train shares its weights
            with self.autocast:
                fake_logits = self.D_train(fake_aug, c, cond).float()
        else:  # one D pass over reals and fakes: half the kernel launches on small batches
            with self.autocast:
                real_logits, fake_logits = self.D_train(torch.cat([real_aug, fake_aug.to(real_aug.dtype)]),
                                                        torch.cat([c, c]), cond).float().split(B)
        d_loss = self.d_loss_fn(real_logits, fake_logits)
        total = d_loss
        if do_r1:
            r1 = r1_penalty(real_logits, real_aug)
            total = d_loss + cfg.r1_gamma / 2 * r1 * cfg.r1_every
            stats.report("Loss/r1", r1)
        self.opt_D.zero_grad(set_to_none=True)
        total.backward()
        average_gradients(self.world, self.D.parameters())
        self.opt_D.step()
        if cfg.ada_target > 0:  # every rank adapts p alike, from the global batch's signs
            signs = sum_over_ranks(self.world, torch.stack([torch.sign(real_logits.detach()).sum(),
                                                            torch.tensor(float(B), device=self.device)]))
            self.ada.observe(float(signs[0]), int(signs[1]), cfg.batch_size)

        # Generator: fool D on augmented fakes of the same classes.
        self.D.requires_grad_(False)
        with self.autocast:
            g_loss = self.g_loss_fn(self.D_train(augment(fake, cfg.diffaugment, self.ada.p), c, cond).float())
        self.opt_G.zero_grad(set_to_none=True)
        g_loss.backward()
        average_gradients(self.world, self.G.parameters())
        self.opt_G.step()
        update_ema(self.G, self.G_ema, ema_beta(cfg.batch_size, cfg.ema_kimg))

        self.step += 1
        self.images_seen += cfg.batch_size
        stats.report("Loss/D", d_loss)
        stats.report("Loss/G", g_loss)
        stats.report("D/real_sign", torch.sign(real_logits.detach()).mean())
        stats.report("Aug/p", self.ada.p)
        stats.report("Cond/weight", cond)
        return float(d_loss.detach()), float(g_loss.detach())

    # -- outputs ---------------------------------------------------------------------------------
    def standing_stats(self):
        """G_ema's BatchNorm statistics re-estimated from its own samples, once per step: the snapshot, the
        measurement and the checkpoint of one step share them (1,024 samples are about 30 s at 256 px on a CPU)."""
        if self._stats_step != self.step:
            refresh_standing_stats(self.G_ema, len(self.class_names), self.config.z_dim, self.device)
            self._stats_step = self.step

    def sample_grid(self):
        self.standing_stats()
        return class_grid(self.G_ema, self.grid_z, self.grid_c, self.config.grid_columns, self.device)

    def quality_sampler(self):
        """sample(class_index, n) for the quality tracker: G_ema with its standing statistics, the same latents at
        every measurement."""
        self.standing_stats()
        z_rng = torch.Generator().manual_seed(METRICS_SEED)

        def sample(class_index, n):
            z = torch.randn(n, self.config.z_dim, generator=z_rng)
            return generate(self.G_ema, z, class_index, 1.0, 256, self.device, METRICS_SEED)
        return sample

    def postfix(self, losses):
        return {"D": f"{losses[0]:.3f}", "G": f"{losses[1]:.3f}", "p": f"{self.ada.p:.2f}"}

    def checkpoint(self):
        if self.world.is_main:
            self.standing_stats()
            save_checkpoint(self.state_dict(), self.run_dir, self.step)
        self._seed_local_rng()


def train_gan(config, progress=True, quality=None):
    return GanTrainer(config, progress, quality).run()
