"""`gan-aug synthesize`: sample a labelled, reproducible, traceable synthetic set from trained GANs and diffusion
models.

The set's file format (folder or .npz, manifest, provenance) is gan_aug/data/synthetic.py's.
"""

import numpy as np
import torch
from tqdm import tqdm

from classifier.teachers import TeacherEnsemble
from gan_aug.data.synthetic import (SampledProvenance, check_out, no_images, sha256_file, write_synthetic_folder,
                                    write_synthetic_npz)
from gan_aug.errors import UserError
from gan_aug.gan.checkpoint import load_checkpoint, load_generator, resolve_checkpoint
from gan_aug.gan.sampling import generate
from gan_aug.legacy import DIFFUSION_CHECKPOINT, GAN_CHECKPOINT
from gan_aug.runtime import resolve_device, use_threads
from gan_aug.synth.config import DEFAULT_SAMPLING, SEED_STRIDE


def class_generator(seed, class_index):
    """The latent RNG of one class: its samples depend only on (seed, class)."""
    return torch.Generator().manual_seed(seed * SEED_STRIDE + class_index)


class GeneratorSource:
    """One trained generator's checkpoint, ready to sample its classes; subclasses draw a batch (_draw)."""

    def _read(self, path, load):
        """The checkpoint's state by `load`, and what every source keeps of it; sets path and sha256."""
        self.path = resolve_checkpoint(path)
        state = load(self.path)
        self.sha256 = sha256_file(self.path)
        self.class_names = tuple(state["class_names"])
        self.step, self.data, self.config = int(state["step"]), state["data"], state["config"]
        self.kimg = int(state["images_seen"]) / 1000
        self.image_size, self.model_args = int(state["image_size"]), state["model_args"]
        return state

    def sample(self, class_index, n, seed, truncation, batch_size):
        """(n, H, W, 3) uint8 images of one class; depends only on (seed, class_index, n, batch_size)."""
        return self._draw(class_generator(seed, class_index), n, class_index, truncation, batch_size, 0)

    def sample_filtered(self, class_index, n, seed, truncation, batch_size, accept, max_draws):
        """(images, candidates drawn): the first n candidates of one class that `accept` keeps."""
        gen = class_generator(seed, class_index)
        kept, n_kept, drawn = [], 0, 0
        while n_kept < n and drawn < max_draws:
            images = self._draw(gen, batch_size, class_index, truncation, batch_size, drawn)
            drawn += batch_size
            kept.append(images[accept(images)])
            n_kept += len(kept[-1])
        images = np.concatenate(kept) if kept else no_images(self.image_size)
        return images[:n], drawn

    def record(self):
        """What the provenance keeps of this checkpoint."""
        return {"checkpoint": str(self.path), "sha256": self.sha256, "step": self.step,
                "classes": list(self.class_names), "data": self.data, "model_args": self.model_args,
                "config": self.config}


class GanSource(GeneratorSource):
    """A GAN checkpoint's G_ema."""

    def __init__(self, path, device, sampling=None):
        state = self._read(path, load_checkpoint)
        self.G = load_generator(state, self.path)
        self.z_dim = int(state["model_args"]["z_dim"])
        self.G.eval().to(device, memory_format=torch.channels_last)  # as trained, for identical bits
        self.device = torch.device(device)  # a name such as 'cpu' too: generate asks for its .type

    def _draw(self, gen, n, class_index, truncation, batch_size, offset):
        """n images from latents drawn from `gen`; stylegan_lite's noise seeded from the class's seed + offset."""
        z = torch.randn(n, self.z_dim, generator=gen)
        if not len(z):
            return no_images(self.image_size)
        return generate(self.G, z, class_index, truncation, batch_size, self.device, gen.initial_seed() + offset)


class DiffusionSource(GeneratorSource):
    """A diffusion checkpoint's averaged UNet, sampled by `sampling` = (sampler, steps, guidance)."""

    def __init__(self, path, device, sampling):
        from gan_aug.diffusion.checkpoint import load_checkpoint as load_diffusion, load_sampling_unet

        state = self._read(path, load_diffusion)
        self.unet = load_sampling_unet(state, self.path).to(device)
        self.sampler, self.steps, self.guidance = sampling
        if self.guidance != 1 and not self.config.get("label_dropout"):
            raise UserError(f"{self.path} was trained without label_dropout, so it has no unconditional prediction "
                            "for --guidance above 1")

    def _draw(self, gen, n, class_index, truncation, batch_size, offset):
        """n images from initial noise drawn from `gen` (the samplers add none of their own)."""
        from gan_aug.diffusion.model import sample

        noise = torch.randn(n, 3, self.image_size, self.image_size, generator=gen)
        return sample(self.unet, self.model_args, torch.full((n,), class_index), noise, self.steps, self.sampler,
                      self.guidance, batch_size)

    def record(self):
        return {**super().record(), "kind": "diffusion",
                "sampling": {"sampler": self.sampler, "steps": self.steps, "guidance": self.guidance}}


# A checkpoint's "format" -> what samples it.
SOURCES = {GAN_CHECKPOINT: GanSource, DIFFUSION_CHECKPOINT: DiffusionSource}


def open_source(path, device, sampling=DEFAULT_SAMPLING):
    """The GanSource or DiffusionSource of a checkpoint (a file or a run directory's latest.pt)."""
    path = resolve_checkpoint(path)
    try:  # only the small "format" entry is read: the tensors stay mapped on disk
        kind = torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("format")
    except Exception:  # the source's own loader says what is wrong with the file, in one line
        kind = GAN_CHECKPOINT
    return SOURCES.get(kind, GanSource)(path, device, sampling)


class ConfidenceFilter:
    """Keeps a synthetic image only when trained classifiers give its intended class at least
    `min_confidence` (their mean probability, when several): drops samples that do not look like
    their label (off-class or blank ones). An ensemble judges more steadily than one network, whose
    own quirks would otherwise shape the set. The judges must come from the GAN's own prepared set
    (see classifier.teachers), so the filter brings no test information into the synthetic set.
    """

    def __init__(self, checkpoints, min_confidence, gan_data, image_size, device):
        self.judges = TeacherEnsemble(checkpoints, gan_data["fingerprint"], image_size, device)
        self.paths, self.class_names = self.judges.paths, self.judges.class_names
        self.sha256 = [sha256_file(path) for path in self.paths]
        self.min_confidence = min_confidence

    def accepts(self, images, class_name):
        """(n,) bool mask over (n, H, W, 3) uint8 images meant to show `class_name`."""
        probs = self.judges.probabilities(torch.from_numpy(images).permute(0, 3, 1, 2))
        return (probs[:, self.class_names.index(class_name)] >= self.min_confidence).numpy()


def split_counts(config, class_names, real_counts):
    """Images per class: 'balance' (fill the rarest classes first), 'uniform', or 'mel=1000,df=500'."""
    n = config.n
    if config.distribution == "uniform":
        base, extra = divmod(n, len(class_names))
        return {c: base + (i < extra) for i, c in enumerate(class_names)}
    if config.distribution == "balance":
        counts = np.array([real_counts[c] for c in class_names], dtype=np.int64)
        synthetic = np.zeros_like(counts)
        for _ in range(n):  # water-filling one image at a time: n is thousands, classes few
            synthetic[np.argmin(counts + synthetic)] += 1
        return dict(zip(class_names, synthetic.tolist()))
    counts = config.explicit_counts()
    unknown = [name for name in counts if name not in class_names]
    if unknown:
        raise UserError(f"--distribution names class(es) {', '.join(unknown)}: use names from "
                        f"{', '.join(class_names)}")
    return counts


def load_sources(checkpoints, device, sampling=DEFAULT_SAMPLING):
    """class name -> (source, index in that generator); refuses overlapping or inconsistent checkpoints."""
    by_class, sources = {}, [open_source(p, device, sampling) for p in checkpoints]
    for source in sources:
        if source.image_size != sources[0].image_size:
            raise UserError("checkpoints differ in image size: synthesize them separately")
        if source.data["fingerprint"] != sources[0].data["fingerprint"]:
            raise UserError("checkpoints were trained on different prepared sets")
        for i, name in enumerate(source.class_names):
            if name in by_class:
                raise UserError(f"class {name} is in two checkpoints: {by_class[name][0].path} and {source.path}")
            by_class[name] = (source, i)
    return sources, by_class


def synthesize(config, progress=True):
    """Run `gan-aug synthesize`; returns the provenance dict."""
    is_npz = config.format == "npz"
    check_out(config.out, config.force, is_npz)
    use_threads(config.threads)
    device = resolve_device(config.device)
    sources, by_class = load_sources(config.checkpoints, device, (config.sampler, config.steps, config.guidance))
    wanted = list(config.classes) or list(by_class)
    unknown = [c for c in wanted if c not in by_class]
    if unknown:
        raise UserError(f"unknown class(es) {', '.join(unknown)} (the checkpoints have {', '.join(by_class)})")
    real_counts = {}
    for source in sources:
        counts = source.data.get("class_counts") or [0] * len(source.class_names)
        real_counts.update(zip(source.class_names, counts))
    counts = split_counts(config, wanted, real_counts)
    confidence_filter = None
    if config.filter_checkpoints:
        confidence_filter = ConfidenceFilter(config.filter_checkpoints, config.min_confidence, sources[0].data,
                                             sources[0].image_size, device)
        missing = [c for c in wanted if c not in confidence_filter.class_names]
        if missing:
            raise UserError(f"the filter classifier does not know class(es) {', '.join(missing)}")

    # Sample everything before writing: a failure here (a filter that rejects too much) leaves no trace.
    per_class, acceptance = {}, {}
    # A bar left open by an exception would garble every later bar in this process: `with` closes it.
    with tqdm(total=sum(counts.values()), unit="img", desc="synthesize", disable=not progress) as bar:
        for name in wanted:
            source, gan_index = by_class[name]
            n = counts.get(name, 0)
            if confidence_filter is None:
                per_class[name] = source.sample(gan_index, n, config.seed, config.truncation, config.batch_size)
            elif n:
                images, drawn = source.sample_filtered(
                    gan_index, n, config.seed, config.truncation, config.batch_size,
                    lambda batch, name=name: confidence_filter.accepts(batch, name), max_draws=config.max_draws * n)
                if len(images) < n:
                    raise UserError(f"only {len(images)} of {n} {name} samples reached confidence "
                                    f"{config.min_confidence} in {drawn} draws: lower --min-confidence")
                per_class[name], acceptance[name] = images, round(n / drawn, 4)
            bar.update(n)

    rows, labels = [], []
    for class_index, name in enumerate(wanted):
        source, _ = by_class[name]
        for i in range(len(per_class.get(name, []))):
            rows.append({"file": f"{name}/{i:06d}.png", "class": name, "class_index": class_index, "seed": config.seed,
                         "truncation": config.truncation, "checkpoint_sha256": source.sha256, "step": source.step})
            labels.append(class_index)

    provenance: SampledProvenance = {
        "format": "gan-aug/synthetic/1", "class_names": wanted, "image_size": sources[0].image_size,
        "counts": {c: counts.get(c, 0) for c in wanted}, "seed": config.seed, "truncation": config.truncation,
        "distribution": config.distribution,
        "gan_data": {"fingerprint": sources[0].data["fingerprint"], "split": sources[0].data["split"]},
        "gans": [s.record() for s in sources],
    }
    if confidence_filter is not None:
        provenance["filter"] = {"checkpoints": [str(p) for p in confidence_filter.paths],
                                "sha256": confidence_filter.sha256,
                                "min_confidence": config.min_confidence, "acceptance": acceptance}
    if is_npz:
        arrays = [per_class[c] for c in wanted if c in per_class]
        images = np.concatenate(arrays) if arrays else no_images(sources[0].image_size)
        write_synthetic_npz(config.out, images, np.array(labels, dtype=np.int64), rows, provenance)
    else:
        with tqdm(total=len(wanted), desc="write", unit="class", disable=not progress) as bar:
            write_synthetic_folder(config.out, {c: per_class.get(c, []) for c in wanted}, rows, provenance,
                                   config.force, bar.update)
    return provenance
