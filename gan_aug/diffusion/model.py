"""The class-conditional diffusion model of `gan-aug train-diffusion`: diffusers' UNet2DModel with one class
embedding per class plus a null class (classifier-free guidance), its noise schedule, and sampling.

Everything that rebuilds a model is in model_args (plain ints, strings and lists, so checkpoints load with
weights_only=True); the networks never log.
"""

import torch

from gan_aug.errors import UserError

SCHEDULES = ("squaredcos_cap_v2", "linear")  # diffusers' beta schedules: cosine (Nichol & Dhariwal), DDPM's linear
PREDICTIONS = {"eps": "epsilon", "v": "v_prediction"}  # what the UNet predicts: the noise, or the velocity


def diffusers():
    """The diffusers package, or a one-line UserError saying how to install it (an optional extra)."""
    try:
        import diffusers as package
    except ImportError:
        raise UserError("diffusion models need diffusers: pip install -e '.[diffusion]'") from None
    return package


def sampler_classes():
    """Sampler name -> diffusers scheduler class: deterministic samplers, so a seed fixes every image."""
    return {"ddim": diffusers().DDIMScheduler, "dpm-solver": diffusers().DPMSolverMultistepScheduler}


SAMPLERS = ("ddim", "dpm-solver")


def diffusion_model_args(image_size, n_classes, channels, layers_per_block, attention, prediction, schedule,
                         timesteps):
    """What rebuilds the UNet and its schedule. One resolution level per width in `channels`; self-attention at
    the lowest one when `attention`."""
    levels = len(channels)
    down = ["DownBlock2D"] * levels
    up = ["UpBlock2D"] * levels
    if attention:
        down[-1], up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
    unet = {"sample_size": int(image_size), "in_channels": 3, "out_channels": 3,
            "layers_per_block": int(layers_per_block), "block_out_channels": [int(c) for c in channels],
            "down_block_types": down, "up_block_types": up, "num_class_embeds": int(n_classes) + 1,
            "norm_num_groups": min(32, min(int(c) for c in channels)), "add_attention": bool(attention)}
    return {"unet": unet, "n_classes": int(n_classes), "prediction": prediction, "schedule": schedule,
            "timesteps": int(timesteps)}


def build_unet(model_args):
    unet = dict(model_args["unet"])
    for key in ("block_out_channels", "down_block_types", "up_block_types"):
        unet[key] = tuple(unet[key])
    return diffusers().UNet2DModel(**unet)


def noise_schedule(model_args):
    """The training schedule (diffusers' DDPMScheduler): adds noise, gives the velocity, configures samplers."""
    return diffusers().DDPMScheduler(num_train_timesteps=model_args["timesteps"], beta_schedule=model_args["schedule"],
                         prediction_type=PREDICTIONS[model_args["prediction"]], clip_sample=False)


def null_class(model_args):
    """The class index that means "no class": the unconditional half of classifier-free guidance."""
    return model_args["n_classes"]


@torch.no_grad()
def sample(unet, model_args, labels, noise, steps, sampler="ddim", guidance=1.0, batch_size=64):
    """(N, H, W, 3) uint8 images of classes `labels` (N,) from initial `noise` (N, 3, H, W), with `steps` steps of
    `sampler`. guidance 1 is the conditional model alone; above 1, classifier-free guidance: the conditional
    prediction pushed away from the unconditional one by that factor. Deterministic given the noise."""
    device = next(unet.parameters()).device
    scheduler = sampler_classes()[sampler].from_config(noise_schedule(model_args).config)
    null = null_class(model_args)
    out = []
    for start in range(0, len(labels), batch_size):
        x = noise[start:start + batch_size].to(device)
        c = labels[start:start + batch_size].to(device)
        scheduler.set_timesteps(steps)
        for t in scheduler.timesteps:
            if guidance == 1.0:
                prediction = unet(x, t, class_labels=c).sample
            else:
                both = unet(torch.cat([x, x]), t, class_labels=torch.cat([c, torch.full_like(c, null)])).sample
                conditional, unconditional = both.chunk(2)
                prediction = unconditional + guidance * (conditional - unconditional)
            x = scheduler.step(prediction, t, x).prev_sample
        out.append(((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu())
    return torch.cat(out).numpy() if out else torch.zeros(0, *noise.shape[2:], 3, dtype=torch.uint8).numpy()
