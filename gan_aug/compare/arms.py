"""The arm grammar of `gan-aug compare`.

Arms: none, oversample, class-weight, focal (non-generative) and mix:R / topup:R (GAN; mix:R@NAME uses
the synthetic set NAME of `synthetic_sets`, so several sets compete in one report). The suffix +kd
trains an arm on the config's `teachers`' probabilities (distillation): oversample+kd is then the
non-generative control of mix:R+kd.
"""

from gan_aug.errors import UserError

BASELINE_ARMS = ("none", "oversample", "class-weight", "focal")
MIX_POLICIES = {"mix": "balanced", "topup": "topup"}
PRETRAIN = "pretrain"  # pretrain:U = mix:1:U, synthetic pretraining (issue #24's lever)


DISTILL_SUFFIX = "+kd"


def split_distill(arm):
    """('mix:0.3@set', True) for 'mix:0.3@set+kd': the arm without its suffix, and whether it distils."""
    return (arm[:-len(DISTILL_SUFFIX)], True) if arm.endswith(DISTILL_SUFFIX) else (arm, False)


def parse_arm(arm):
    """'none' | 'oversample' | 'class-weight' | 'focal' | 'mix:0.3' | 'topup:0.5' -> ClassifierConfig overrides.
    'mix:0.5:0.6' draws synthetic images in the first 60% of the epochs only (mix_until).
    'pretrain:0.3' is synthetic pretraining: every draw of a class that has synthetic images is synthetic
    in the first 30% of the epochs, then real images only (mix:1:0.3).
    A generative arm may name its synthetic set: 'mix:0.3@filtered' (see CompareConfig.synthetic_sets).
    Any arm but focal may end in +kd (distil from CompareConfig.teachers); the overrides then say "distil"."""
    base, distil = split_distill(arm)
    if not distil:
        return _parse_base_arm(arm)
    if base == "focal":
        raise UserError("focal+kd: distillation replaces the hard labels focal loss needs")
    return {**_parse_base_arm(base), "distil": True}


def _parse_base_arm(arm):
    if arm in BASELINE_ARMS:
        return {"balance": arm}
    base, at, set_name = arm.partition("@")
    kind, *numbers = base.split(":")
    if kind == PRETRAIN and len(numbers) == 1:
        kind, numbers = "mix", ["1", numbers[0]]
    if kind in MIX_POLICIES and (set_name or not at) and len(numbers) in (1, 2):  # 'mix:0.3@' names no set
        try:
            mix, until = float(numbers[0]), float(numbers[1]) if len(numbers) == 2 else 1.0
        except ValueError:
            mix = until = -1.0
        if 0 <= mix <= 1 and 0 < until <= 1:
            return {"balance": "oversample", "mix": mix, "mix_policy": MIX_POLICIES[kind], "mix_until": until}
    raise UserError(f"unknown arm '{arm}' (use {', '.join(BASELINE_ARMS)}, mix:R or topup:R with R in [0, 1], "
                    "optionally :U, the share of epochs that draw synthetic images, or pretrain:U; any of them "
                    "but focal may end in +kd)")


def is_generative(arm):
    return split_distill(arm)[0] not in BASELINE_ARMS


def synthetic_set_name(arm):
    """The named synthetic set of a generative arm ('' = the config's default `synthetic`/`gan_run`)."""
    return split_distill(arm)[0].partition("@")[2]


def arm_of(settings):
    """The arm that trains with these train-classifier settings (parse_arm's inverse), e.g. for tune's
    best_compare.yaml: {'balance': 'oversample', 'mix': 0.3, 'mix_until': 0.6} -> 'mix:0.3:0.6'."""
    mix, until = float(settings.get("mix", 0.0)), float(settings.get("mix_until", 1.0))
    suffix = DISTILL_SUFFIX if settings.get("teachers") else ""
    if mix > 0:
        kind = {policy: name for name, policy in MIX_POLICIES.items()}[settings.get("mix_policy", "balanced")]
        return f"{kind}:{mix}" + (f":{until}" if until < 1 else "") + suffix
    return settings.get("balance", "none") + suffix
