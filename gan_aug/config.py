"""One typed, validated config per command: defaults < YAML file < command-line flags < --set key=value.

Each command owns a dataclass with a `validate()` method. `build_config` fills it from those layers,
coerces every value to the field's declared type, rejects unknown keys, and runs `validate()` once,
so the rest of the code can trust the object it is handed.
"""

import dataclasses
import typing
from pathlib import Path

import yaml

from gan_aug.errors import UserError


def _coerce(name, value, annotation):
    """Convert `value` (from YAML or a flag) to the type `annotation` names, or raise UserError."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Union:  # Optional[X]
        if value is None:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(name, value, inner[0])
    if value is None:
        raise UserError(f"config key '{name}' must not be empty")
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise UserError(f"config key '{name}' must be a list, got {value!r}")
        return tuple(_coerce(name, v, args[0]) for v in value)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
            return value.lower() in ("true", "yes", "1")
        raise UserError(f"config key '{name}' must be true or false, got {value!r}")
    if annotation in (int, float):
        if isinstance(value, bool):
            raise UserError(f"config key '{name}' must be a number, got {value!r}")
        try:
            number = annotation(value)
        except (TypeError, ValueError):
            raise UserError(f"config key '{name}' must be {annotation.__name__}, got {value!r}") from None
        if annotation is int and float(value) != number:
            raise UserError(f"config key '{name}' must be an integer, got {value!r}")
        return number
    if annotation is str:
        if isinstance(value, (dict, list)):
            raise UserError(f"config key '{name}' must be a string, got {value!r}")
        return str(value)
    raise AssertionError(f"unsupported config type {annotation} for {name}")


def parse_set_options(pairs):
    """Turn ('a=1', 'b=x') into {'a': 1, 'b': 'x'}, values parsed as YAML scalars."""
    out = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set expects key=value, got '{pair}'")
        try:
            out[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            out[key.strip()] = raw
    return out


def read_yaml(path):
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise UserError(f"config file {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of key: value")
    return data


def build_config(cls, config_path=None, flags=None, sets=(), base=None):
    """Build and validate a `cls` instance from its defaults, `base` (a dict of settings), a YAML file,
    flags and --set pairs, later layers winning.

    `flags` holds command-line values; None (or False for on/off flags) means "not given".
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    layers = [base or {}, read_yaml(config_path) if config_path else {}]
    layers.append({k: v for k, v in (flags or {}).items() if v is not None and v is not False})
    layers.append(parse_set_options(sets))
    values = {}
    for layer in layers:
        for key, value in layer.items():
            key = key.replace("-", "_")
            if key not in fields:
                known = ", ".join(sorted(fields))
                raise UserError(f"unknown config key '{key}' (known: {known})")
            values[key] = _coerce(key, value, hints[key])
    try:
        config = cls(**values)
    except TypeError as err:  # a required field left unset
        missing = [n for n, f in fields.items() if n not in values and _is_required(f)]
        raise UserError(f"missing required setting(s): {', '.join(missing) or err}") from None
    config.validate()
    return config


def _is_required(field):
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


def to_yaml(config):
    """The resolved config as YAML (tuples as lists), for --dry-run and run directories."""
    data = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}
    return yaml.safe_dump(data, sort_keys=False)


# ---------------------------------------------------------------------------------------------
# Per-command configs.

MIN_SIZE, MAX_SIZE = 8, 512


@dataclasses.dataclass
class PrepareConfig:
    """`gan-aug prepare`: read a source, decode, resize, split by lesion, write one .npz."""

    out: str
    source: str = "toy"
    root: typing.Optional[str] = None  # folder (or file, for medmnist-npz); unused by toy
    size: int = 64
    csv: typing.Optional[str] = None  # labels/metadata CSV when not found under root
    metadata_csv: typing.Optional[str] = None  # isic-csv: the optional ISIC 2019 metadata CSV
    val_frac: float = 0.1
    test_frac: float = 0.2
    seed: int = 0
    skip_missing: bool = False
    skip_bad: bool = False
    force: bool = False
    workers: int = 0  # 0: one per CPU core
    toy_count: int = 2000

    def validate(self):
        from gan_aug.data.readers import READERS

        if self.source not in READERS:
            raise UserError(f"unknown source '{self.source}' (choose from {', '.join(READERS)})")
        if self.source != "toy" and not self.root:
            raise UserError(f"--root is required for source '{self.source}'")
        if not MIN_SIZE <= self.size <= MAX_SIZE:
            raise UserError(f"--size must be between {MIN_SIZE} and {MAX_SIZE}, got {self.size}")
        if not (0 <= self.val_frac < 1 and 0 <= self.test_frac < 1 and self.val_frac + self.test_frac < 1):
            raise UserError("split fractions must be in [0, 1) and leave some images for train")
        if self.workers < 0:
            raise UserError("--workers must be >= 0")
        if self.toy_count < 50:
            raise UserError("toy_count must be at least 50")
        if not self.out.endswith(".npz"):
            raise UserError(f"--out must name a .npz file, got {self.out}")


@dataclasses.dataclass
class GanConfig:
    """`gan-aug train-gan`: one class-conditional GAN on the train split of a prepared set."""

    data: str
    out: str
    classes: typing.Tuple[str, ...] = ()  # empty: every class of the prepared set
    arch: str = "dcgan"
    kimg: float = 100.0  # training length, thousands of real images shown to D
    batch_size: int = 32
    z_dim: int = 128
    g_channels: int = 32
    d_channels: int = 32
    loss: str = "hinge"
    lr_g: float = 1e-4
    lr_d: float = 4e-4
    beta1: float = 0.5
    beta2: float = 0.999
    r1_gamma: float = 0.0  # 0 disables R1
    r1_every: int = 16  # lazy R1: every this many D steps, scaled up to match
    diffaugment: typing.Tuple[str, ...] = ("color", "translation", "cutout")
    ada_target: float = 0.0  # > 0: adapt the augmentation probability towards this E[sign(D(real))]
    ada_speed_kimg: float = 20.0
    ema_kimg: float = 2.0  # half-life of the generator average, thousands of images
    cond_start_kimg: float = 0.0  # transitional conditioning: class signal off before this ...
    cond_end_kimg: float = 0.0  # ... ramping linearly to full strength here (equal: off)
    balanced_classes: bool = False  # draw real images class-balanced instead of by frequency
    ckpt_every: float = 10.0  # kimg between checkpoints
    snapshot_every: float = 5.0  # kimg between sample grids and TensorBoard flushes
    grid_columns: int = 8
    seed: int = 0
    device: str = "auto"  # auto, cpu, cuda, cuda:N
    amp: bool = True  # bf16 autocast on CUDA, and on CPUs with native bf16 kernels
    compile: bool = False  # torch.compile the networks on CUDA
    threads: int = 0  # CPU threads, 0: torch's default
    deterministic: bool = False  # deterministic algorithms (CPU runs are deterministic anyway)
    resume: bool = False
    force: bool = False

    def validate(self):
        from gan_aug.gan.augment import AUGMENTS
        from gan_aug.gan.losses import LOSSES
        from gan_aug.gan.networks import NETWORKS

        if self.arch not in NETWORKS:
            raise UserError(f"unknown arch '{self.arch}' (choose from {', '.join(NETWORKS)})")
        if self.loss not in LOSSES:
            raise UserError(f"unknown loss '{self.loss}' (choose from {', '.join(LOSSES)})")
        unknown = [a for a in self.diffaugment if a not in AUGMENTS]
        if unknown:
            raise UserError(f"unknown diffaugment op(s) {', '.join(unknown)} (choose from {', '.join(AUGMENTS)})")
        positive = {"kimg": self.kimg, "batch_size": self.batch_size, "z_dim": self.z_dim,
                    "g_channels": self.g_channels, "d_channels": self.d_channels, "lr_g": self.lr_g,
                    "lr_d": self.lr_d, "r1_every": self.r1_every, "ckpt_every": self.ckpt_every,
                    "snapshot_every": self.snapshot_every, "grid_columns": self.grid_columns,
                    "ada_speed_kimg": self.ada_speed_kimg}
        for name, value in positive.items():
            if not value > 0:
                raise UserError(f"{name} must be > 0, got {value}")
        if self.r1_gamma < 0 or self.ema_kimg < 0 or self.threads < 0:
            raise UserError("r1_gamma, ema_kimg and threads must be >= 0")
        if not 0 <= self.ada_target < 1:
            raise UserError("ada_target must be in [0, 1)")
        if self.cond_end_kimg < self.cond_start_kimg:
            raise UserError("cond_end_kimg must be >= cond_start_kimg")
        if self.resume and self.force:
            raise UserError("--resume and --force contradict each other: pick one")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise UserError(f"device must be auto, cpu, cuda or cuda:N, got {self.device}")


@dataclasses.dataclass
class SynthConfig:
    """`gan-aug synthesize`: sample a labelled synthetic set from one or more GAN checkpoints."""

    checkpoints: typing.Tuple[str, ...]
    out: str
    n: int = 1000
    classes: typing.Tuple[str, ...] = ()  # empty: every class the checkpoints know
    distribution: str = "balance"  # balance, uniform, or name=count,...
    truncation: float = 1.0
    seed: int = 0
    format: str = "png"  # png (ImageFolder + manifest) or npz
    filter_checkpoints: typing.Tuple[str, ...] = ()  # classifiers: keep samples they assign to their class ...
    min_confidence: typing.Optional[float] = None  # ... with at least this mean probability (0.5 when unset)
    max_draws: int = 20  # give up on a class after this many candidates per image asked for
    batch_size: int = 256
    device: str = "auto"
    threads: int = 0  # CPU threads, 0: torch's default
    force: bool = False

    def validate(self):
        if not self.checkpoints:
            raise UserError("give at least one --checkpoint (a run directory or a .pt file)")
        if self.n < 1:
            raise UserError(f"-n must be >= 1, got {self.n}")
        if not 0 < self.truncation <= 2:
            raise UserError(f"--truncation must be in (0, 2], got {self.truncation}")
        if self.format not in ("png", "npz"):
            raise UserError(f"--format must be png or npz, got {self.format}")
        if self.min_confidence is not None and not self.filter_checkpoints:
            raise UserError("--min-confidence needs --filter-checkpoint (the classifier that judges the samples)")
        if self.filter_checkpoints and self.min_confidence is None:
            self.min_confidence = 0.5
        if self.min_confidence is not None and not 0 < self.min_confidence < 1:
            raise UserError(f"--min-confidence must be in (0, 1), got {self.min_confidence}")
        if self.max_draws < 1:
            raise UserError(f"max_draws must be >= 1, got {self.max_draws}")
        if (self.format == "npz") != self.out.endswith(".npz"):
            raise UserError("--format npz writes a .npz file: name --out FILE.npz (and a folder for png)")
        if self.batch_size < 1 or self.threads < 0:
            raise UserError("batch_size must be >= 1 and threads >= 0")


@dataclasses.dataclass
class ClassifierConfig:
    """`gan-aug train-classifier`: one lesion classifier on a prepared set (+ synthetic images)."""

    data: str
    out: str
    model: str = "small_cnn"
    task: str = "multiclass"
    balance: str = "none"  # none, oversample, class-weight, focal
    synthetic: typing.Optional[str] = None  # synthetic folder or .npz to mix in
    mix: float = 0.0  # probability a balanced draw is synthetic (when its class has synthetic images)
    mix_policy: str = "balanced"  # balanced, topup
    mix_until: float = 1.0  # share of the epochs (the first ones) that draw synthetic images; real only after
    epochs: int = 20
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    patience: int = 0  # early stopping: epochs without a better val BMA; 0 = train all epochs
    # Which epoch best.pt holds: the best val BMA, or the last one (no choice at all: a small val split
    # can make the best-val choice a lottery between near-equal epochs).
    keep: str = "best-val"
    # Evaluate, select and save an exponential moving average of the weights (half-life in epochs; 0 = the
    # raw weights). The average moves smoothly, so the best-val-epoch choice is less at the mercy of one
    # lucky epoch on a small val split.
    ema_half_life: float = 0.0
    focal_gamma: float = 2.0
    # Distillation: classifiers of this prepared set whose mean class probabilities replace the hard labels
    # of every training image, real and synthetic (a GAN sample's intended class is only what G was asked for).
    teachers: typing.Tuple[str, ...] = ()
    use_metadata: bool = False
    pretrained: typing.Optional[str] = None  # local state-dict file for a torchvision backbone
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # bf16 autocast on CUDA and on CPUs with native bf16 kernels
    threads: int = 0
    deterministic: bool = False
    resume: bool = False
    force: bool = False

    def validate(self):
        from classifier.models import BACKBONES
        from classifier.sampling import POLICIES
        from classifier.tasks import TASKS

        if self.model not in BACKBONES:
            raise UserError(f"unknown model '{self.model}' (choose from {', '.join(BACKBONES)})")
        if self.task not in TASKS:
            raise UserError(f"unknown task '{self.task}' (choose from {', '.join(TASKS)})")
        if self.balance not in BALANCES:
            raise UserError(f"unknown balance '{self.balance}' (choose from {', '.join(BALANCES)})")
        if self.mix_policy not in POLICIES:
            raise UserError(f"unknown mix policy '{self.mix_policy}' (choose from {', '.join(POLICIES)})")
        if not 0 <= self.mix <= 1:
            raise UserError(f"--mix must be in [0, 1], got {self.mix}")
        if not 0 < self.mix_until <= 1:
            raise UserError(f"--mix-until must be in (0, 1], got {self.mix_until}")
        if self.mix > 0 and not self.synthetic:
            raise UserError("--mix needs --synthetic SYN")
        if self.synthetic and self.balance not in ("none", "oversample"):
            raise UserError("mixing uses the class-balanced stream: drop --balance (or use oversample)")
        if self.teachers and (self.task != "multiclass" or self.balance == "focal"):
            raise UserError("--teacher (distillation) needs --task multiclass and a balance other than focal")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be >= 1")
        if self.lr <= 0 or self.weight_decay < 0 or self.patience < 0 or self.threads < 0 or self.ema_half_life < 0:
            raise UserError("lr must be > 0; weight_decay, patience, threads and ema_half_life >= 0")
        if self.keep not in KEEP_RULES:
            raise UserError(f"unknown keep rule '{self.keep}' (choose from {', '.join(KEEP_RULES)})")
        if self.keep == "last" and self.patience:
            raise UserError("early stopping (patience) picks the epoch by val BMA: it needs keep best-val")
        if self.resume and self.force:
            raise UserError("--resume and --force contradict each other: pick one")

    @property
    def balanced_stream(self):
        return self.balance == "oversample" or bool(self.synthetic)


BALANCES = ("none", "oversample", "class-weight", "focal")
KEEP_RULES = ("best-val", "last")


@dataclasses.dataclass
class ScoreConfig:
    """`gan-aug score`: how good, how diverse and how private a synthetic set is, per class."""

    data: str
    synthetic: str
    features: str = "inception"  # inception or lesion:CLASSIFIER_CKPT
    fid_weights: typing.Optional[str] = None  # local Inception weights for --features inception
    out: str = "scores.json"
    kid_subset_size: int = 1000
    cas: bool = True  # train on synthetic only, test on real val
    cas_epochs: int = 10
    memorization: bool = True
    embed_per_source: int = 500  # images per source in the TensorBoard projector (0: none)
    batch_size: int = 64
    seed: int = 0
    threads: int = 0  # CPU threads, 0: torch's default

    def validate(self):
        if not (self.features == "inception" or self.features.startswith("lesion:")):
            raise UserError(f"--features must be inception or lesion:CLASSIFIER_CKPT, got {self.features}")
        if (self.kid_subset_size < 2 or self.cas_epochs < 1 or self.batch_size < 1 or self.embed_per_source < 0
                or self.threads < 0):
            raise UserError("need kid_subset_size >= 2, cas_epochs >= 1, batch_size >= 1, embed_per_source >= 0 "
                            "and threads >= 0")


@dataclasses.dataclass
class CompareConfig:
    """`gan-aug compare`: arms x seeds of one classifier recipe on one prepared set, and the report."""

    data: str
    out: str
    arms: typing.Tuple[str, ...] = ("none", "oversample", "class-weight", "focal", "mix:0.1", "mix:0.3", "mix:0.5")
    seeds: typing.Tuple[int, ...] = (0, 1, 2, 3, 4)
    synthetic: typing.Optional[str] = None  # a synthetic set for the mix arms ...
    gan_run: typing.Optional[str] = None  # ... or a GAN run to synthesize one from (into OUT/synthetic)
    synthetic_sets: typing.Tuple[str, ...] = ()  # more sets, NAME=PATH, for arms like mix:0.3@NAME
    synth_n: int = 5000
    synth_truncation: float = 1.0
    synth_distribution: str = "balance"
    external: typing.Tuple[str, ...] = ()  # name=source:root, e.g. isic2018=isic-csv:/data/ISIC2018_Test
    teachers: typing.Tuple[str, ...] = ()  # classifier checkpoints that +kd arms distil from
    # The classifier recipe, identical for every arm:
    model: str = "small_cnn"
    task: str = "multiclass"
    epochs: int = 20
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    patience: int = 0
    keep: str = "best-val"
    ema_half_life: float = 0.0
    use_metadata: bool = False
    pretrained: typing.Optional[str] = None
    threads: int = 0
    device: str = "auto"
    bootstrap: int = 2000

    def validate(self):
        from gan_aug.experiment import is_generative, parse_arm, split_distill, synthetic_set_name

        for arm in self.arms:
            parse_arm(arm)
        if len(set(self.arms)) != len(self.arms) or len(set(self.seeds)) != len(self.seeds):
            raise UserError("arms and seeds must not repeat")
        for entry in self.synthetic_sets:
            name, sep, path = entry.partition("=")
            if not sep or not name or not path or not name.replace("_", "").replace("-", "").isalnum():
                raise UserError(f"synthetic_sets entries look like NAME=PATH (NAME: letters, digits, - or _), "
                                f"got '{entry}'")
        generative = {synthetic_set_name(a) for a in self.arms if is_generative(a)}
        if "" in generative and not (self.synthetic or self.gan_run):
            raise UserError("mix/topup arms need `synthetic: SYN` or `gan_run: RUN` in the config")
        unknown = sorted(generative - {""} - set(self.synthetic_paths()))
        if unknown:
            raise UserError(f"arms name synthetic set(s) {', '.join(unknown)}, which synthetic_sets does not define")
        if not self.seeds:
            raise UserError("give at least one seed")
        if any(split_distill(a)[1] for a in self.arms) and not self.teachers:
            raise UserError("+kd arms distil from `teachers: [CLASSIFIER, ...]`, which the config does not give")
        for entry in self.external:
            name, sep, rest = entry.partition("=")
            if not sep or ":" not in rest:
                raise UserError(f"external entries look like name=source:root, got '{entry}'")
        if self.synth_n < 1 or self.bootstrap < 100:
            raise UserError("synth_n >= 1 and bootstrap >= 100")
        # The classifier recipe every arm shares, checked by its own rules here: a bad value fails before any run.
        ClassifierConfig(data=self.data, out=self.out, **self.classifier_flags()).validate()

    def classifier_flags(self):
        """The ClassifierConfig settings every arm shares."""
        keys = ("model", "task", "epochs", "batch_size", "lr", "weight_decay", "patience", "keep", "ema_half_life",
                "use_metadata", "pretrained", "threads", "device")
        return {k: getattr(self, k) for k in keys}

    def synthetic_paths(self):
        """Synthetic set name -> path; '' is the default set (`synthetic`, or OUT/synthetic from `gan_run`)."""
        named = dict(entry.partition("=")[::2] for entry in self.synthetic_sets)
        return {"": self.synthetic or str(Path(self.out) / "synthetic"), **named}
