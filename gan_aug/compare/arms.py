"""The arm grammar of `gan-aug compare`: ARM = BASE, then any of the modifiers `+MOD`.

Bases: none, oversample, class-weight, focal, balanced-softmax, logit-adjust[:TAU] (non-generative controls);
mix:R / topup:R (generative; mix:R@NAME uses the synthetic set NAME of `synthetic_sets`, so several sets
compete in one report); placebo-aug:R, placebo-shuffle:R, placebo-early:R (mix:R's sampler and schedule with
other draws in place of the synthetic images). Modifiers: +kd trains on the config's `teachers`' probabilities
(distillation); +mixup / +cutmix mix pairs of images and labels in each batch; +balanced-softmax and
+logit-adjust[:TAU] change the loss. So oversample+kd is the non-generative control of mix:R+kd, and every generative arm has a twin:
the same arm with its synthetic draws off (`twin`).
"""

from gan_aug.errors import UserError

BASELINE_ARMS = ("none", "oversample", "class-weight", "focal")
MIX_POLICIES = {"mix": "balanced", "topup": "topup"}
PRETRAIN = "pretrain"  # pretrain:U = mix:1:U, synthetic pretraining (issue #24's lever)
DISTILL_SUFFIX = "+kd"
LOSS_ARMS = ("balanced-softmax", "logit-adjust")  # as a base: natural sampling (balance none) with that loss
MIXINGS = ("mixup", "cutmix")
# Same sampler and schedule as mix:R, other draws in place of the synthetic images (gan_aug/compare/placebo.py).
PLACEBO_ARMS = ("placebo-aug", "placebo-shuffle", "placebo-early")
# The overrides that the synthetic draws are: a twin is the arm without them.
SYNTHETIC_KEYS = ("mix", "mix_policy", "mix_until", "placebo")


def split_distill(arm):
    """('mix:0.3@set+mixup', True) for 'mix:0.3@set+mixup+kd': the arm without +kd, and whether it distils."""
    tokens = arm.split("+")
    return "+".join(t for t in tokens if t != "kd"), "kd" in tokens[1:]


def parse_arm(arm):
    """An arm -> its ClassifierConfig overrides, e.g. 'mix:0.3' -> {balance: oversample, mix: 0.3, ...}.
    'mix:0.5:0.6' draws synthetic images in the first 60% of the epochs only (mix_until); 'pretrain:0.3' is
    synthetic pretraining (mix:1:0.3). +kd adds "distil" (the runner turns it into the config's teachers)."""
    base, *modifiers = arm.split("+")
    overrides = _parse_base(arm, base)
    for modifier in modifiers:
        for key, value in _parse_modifier(arm, modifier).items():
            if key in overrides and key != "balance":
                raise UserError(f"arm '{arm}' sets its {key} twice")
            overrides[key] = value
    if overrides.get("balance") == "focal" and overrides.get("distil"):
        raise UserError("focal+kd: distillation replaces the hard labels focal loss needs")
    if "loss" in overrides and overrides["balance"] in ("class-weight", "focal"):
        raise UserError(f"arm '{arm}': {overrides['loss']} already re-weights the classes")
    if "mixing" in overrides and overrides["balance"] == "focal":
        raise UserError(f"arm '{arm}': mixed labels and focal loss do not go together")
    return overrides


def _parse_loss(arm, token):
    kind, _, tau = token.partition(":")
    if kind == "balanced-softmax" and not tau:
        return {"loss": "balanced-softmax"}
    if kind == "logit-adjust":
        try:
            value = float(tau) if tau else 1.0
        except ValueError:
            value = -1.0
        if 0 <= value <= 10:
            return {"loss": "logit-adjust", "logit_tau": value}
    raise UserError(f"unknown loss '{token}' in arm '{arm}' (balanced-softmax, or logit-adjust:TAU with TAU in "
                    "[0, 10])")


def _parse_modifier(arm, modifier):
    if modifier == "kd":
        return {"distil": True}
    if modifier in MIXINGS:
        return {"mixing": modifier}
    if modifier.partition(":")[0] in LOSS_ARMS:
        return _parse_loss(arm, modifier)
    raise UserError(f"unknown modifier '+{modifier}' in arm '{arm}' (+kd, +mixup, +cutmix, +balanced-softmax, "
                    "+logit-adjust:TAU)")


def _parse_base(arm, base):
    if base in BASELINE_ARMS:
        return {"balance": base}
    if base.partition(":")[0] in LOSS_ARMS:
        return {"balance": "none", **_parse_loss(arm, base)}
    kind_and_numbers, at, set_name = base.partition("@")
    kind, *numbers = kind_and_numbers.split(":")
    if kind == PRETRAIN and len(numbers) == 1:
        kind, numbers = "mix", ["1", numbers[0]]
    if kind in PLACEBO_ARMS and len(numbers) == 1:
        return {**_parse_base(arm, base.replace(kind, "mix", 1)), "placebo": kind}
    if kind in MIX_POLICIES and (set_name or not at) and len(numbers) in (1, 2):  # 'mix:0.3@' names no set
        try:
            mix, until = float(numbers[0]), float(numbers[1]) if len(numbers) == 2 else 1.0
        except ValueError:
            mix = until = -1.0
        if 0 <= mix <= 1 and 0 < until <= 1:
            return {"balance": "oversample", "mix": mix, "mix_policy": MIX_POLICIES[kind], "mix_until": until}
    raise UserError(f"unknown arm '{arm}' (use {', '.join(BASELINE_ARMS + LOSS_ARMS)}, logit-adjust:TAU, mix:R or "
                    "topup:R with R in [0, 1], optionally :U, the share of epochs that draw synthetic images, "
                    "pretrain:U, or placebo-aug:R, placebo-shuffle:R, placebo-early:R; then any of +kd (not with "
                    "focal), +mixup, +cutmix, +balanced-softmax, "
                    "+logit-adjust:TAU)")


def draws_synthetic(arm):
    """Whether the arm draws from a synthetic set (a generative arm, or a placebo in its place)."""
    return "mix" in parse_arm(arm)


def is_generative(arm):
    """A generative arm: its draws are the generator's (placebos and controls are not)."""
    overrides = parse_arm(arm)
    return "mix" in overrides and "placebo" not in overrides


def placebo_of(arm):
    return parse_arm(arm).get("placebo")


def synthetic_set_name(arm):
    """The named synthetic set of a generative arm ('' = the config's default `synthetic`/`gan_run`)."""
    return arm.split("+")[0].partition("@")[2]


def twin(arm):
    """The arm's twin: the same recipe with the synthetic draws turned off, e.g. 'mix:0.3+kd' -> 'oversample+kd'
    (protocol rule 4); a non-generative arm is its own twin."""
    if not draws_synthetic(arm):
        return arm
    return "+".join(["oversample"] + arm.split("+")[1:])


def same_recipe_but_synthetic(arm, control):
    """Whether `arm` and `control` differ only in the synthetic draws: otherwise a gain of one over the other
    measures more than the generator (distillation, a loss, a schedule) and the report calls it confounded."""
    strip = lambda overrides: {k: v for k, v in overrides.items() if k not in SYNTHETIC_KEYS}
    return strip(parse_arm(arm)) == strip(parse_arm(control))


def arm_of(settings):
    """The arm that trains with these train-classifier settings (parse_arm's inverse), e.g. for tune's
    best_compare.yaml: {'balance': 'oversample', 'mix': 0.3, 'mix_until': 0.6} -> 'mix:0.3:0.6'."""
    mix, until = float(settings.get("mix", 0.0)), float(settings.get("mix_until", 1.0))
    if mix > 0:
        kind = {policy: name for name, policy in MIX_POLICIES.items()}[settings.get("mix_policy", "balanced")]
        arm = f"{kind}:{mix}" + (f":{until}" if until < 1 else "")
    else:
        arm = settings.get("balance", "none")
    loss = settings.get("loss", "ce")
    if loss == "balanced-softmax":
        arm += "+balanced-softmax"
    elif loss == "logit-adjust":
        arm += f"+logit-adjust:{float(settings.get('logit_tau', 1.0)):g}"
    if settings.get("mixing", "none") != "none":
        arm += f"+{settings['mixing']}"
    return arm + (DISTILL_SUFFIX if settings.get("teachers") else "")
