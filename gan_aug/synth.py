"""`gan-aug synthesize`: sample a labelled, reproducible, traceable synthetic set from trained GANs.

Output (ImageFolder layout): SYN/<class>/<index>.png, SYN/manifest.csv (one row per image) and
SYN/synthetic.json (provenance: what each GAN was trained on, the sampling settings, the counts).
Images are written atomically and the manifest last, so a crash never lists a half-written image.
With --format npz the same content goes into one prepared-set-style .npz instead.
"""

import csv
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from gan_aug.data.prepare import fingerprint
from gan_aug.errors import UserError
from gan_aug.fileio import atomic_write
from gan_aug.gan.checkpoint import load_checkpoint, resolve_checkpoint
from gan_aug.gan.networks import build_networks
from gan_aug.gan.sampling import to_uint8
from gan_aug.runtime import resolve_device, use_threads

MANIFEST = "manifest.csv"
PROVENANCE = "synthetic.json"
MANIFEST_COLUMNS = ("file", "class", "class_index", "seed", "truncation", "checkpoint_sha256", "step")


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def no_images(size):
    return np.zeros((0, size, size, 3), np.uint8)


def class_generator(seed, class_index):
    """The latent RNG of one class: its samples depend only on (seed, class)."""
    return torch.Generator().manual_seed(seed * 1_000_003 + class_index)


class GanSource:
    """One checkpoint's G_ema, ready to sample its classes."""

    def __init__(self, path, device):
        self.path = resolve_checkpoint(path)
        state = load_checkpoint(self.path)
        self.sha256 = sha256_file(self.path)
        self.class_names = tuple(state["class_names"])
        self.step, self.data, self.config = int(state["step"]), state["data"], state["config"]
        self.image_size, self.z_dim = int(state["image_size"]), int(state["model_args"]["z_dim"])
        self.model_args = state["model_args"]
        self.G, _ = build_networks(state["model_args"])
        self.G.load_state_dict(state["G_ema"])
        self.G.eval().to(device, memory_format=torch.channels_last)  # as trained, for identical bits
        self.device = device

    @torch.no_grad()
    def _generate(self, z, class_index, truncation, batch_size):
        out = []
        for i in range(0, len(z), batch_size):
            zb = z[i:i + batch_size].to(self.device)
            c = torch.full((len(zb),), class_index, dtype=torch.long, device=self.device)
            out.append(to_uint8(self.G(zb, c, truncation=truncation)))
        return np.concatenate(out) if out else no_images(self.image_size)

    def sample(self, class_index, n, seed, truncation, batch_size):
        """(n, H, W, 3) uint8 images of one class; depends only on (seed, class_index, n)."""
        gen = class_generator(seed, class_index)
        return self._generate(torch.randn(n, self.z_dim, generator=gen), class_index, truncation, batch_size)

    def sample_filtered(self, class_index, n, seed, truncation, batch_size, accept, max_draws):
        """(images, candidates drawn): the first n candidates of one class that `accept` keeps."""
        gen = class_generator(seed, class_index)
        kept, n_kept, drawn = [], 0, 0
        while n_kept < n and drawn < max_draws:
            images = self._generate(torch.randn(batch_size, self.z_dim, generator=gen), class_index, truncation,
                                    batch_size)
            drawn += batch_size
            kept.append(images[accept(images)])
            n_kept += len(kept[-1])
        images = np.concatenate(kept) if kept else no_images(self.image_size)
        return images[:n], drawn


class ConfidenceFilter:
    """Keeps a synthetic image only when trained classifiers give its intended class at least
    `min_confidence` (their mean probability, when several): drops samples that do not look like
    their label (off-class or blank ones). An ensemble judges more steadily than one network, whose
    own quirks would otherwise shape the set. The judges must come from the GAN's own prepared set
    (see classifier.teachers), so the filter brings no test information into the synthetic set.
    """

    def __init__(self, checkpoints, min_confidence, gan_data, image_size, device):
        from classifier.teachers import TeacherEnsemble

        self.judges = TeacherEnsemble(checkpoints, gan_data["fingerprint"], image_size, device)
        self.paths, self.class_names = self.judges.paths, self.judges.class_names
        self.sha256 = [sha256_file(path) for path in self.paths]
        self.min_confidence = min_confidence

    def accepts(self, images, class_name):
        """(n,) bool mask over (n, H, W, 3) uint8 images meant to show `class_name`."""
        probs = self.judges.probabilities(torch.from_numpy(images).permute(0, 3, 1, 2))
        return (probs[:, self.class_names.index(class_name)] >= self.min_confidence).numpy()


def split_counts(distribution, n, class_names, real_counts):
    """Images per class: 'balance' (fill the rarest classes first), 'uniform', or 'mel=1000,df=500'."""
    if distribution == "uniform":
        base, extra = divmod(n, len(class_names))
        return {c: base + (i < extra) for i, c in enumerate(class_names)}
    if distribution == "balance":
        counts = np.array([real_counts[c] for c in class_names], dtype=np.int64)
        synthetic = np.zeros_like(counts)
        for _ in range(n):  # water-filling one image at a time: n is thousands, classes few
            synthetic[np.argmin(counts + synthetic)] += 1
        return dict(zip(class_names, synthetic.tolist()))
    counts = {}
    for part in distribution.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in class_names or not value.strip().isdigit():
            raise UserError(f"bad --distribution entry '{part}': use balance, uniform or "
                            f"name=count with names from {', '.join(class_names)}")
        counts[name] = int(value)
    return counts


def load_sources(checkpoints, device):
    """class name -> (GanSource, index in that GAN); refuses overlapping or inconsistent checkpoints."""
    by_class, sources = {}, [GanSource(p, device) for p in checkpoints]
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


def check_out(out, force, is_npz):
    """Refuse an --out that holds something we may not replace."""
    out = Path(out)
    if is_npz:
        if out.exists() and not force:
            raise UserError(f"{out} already exists (use --force to overwrite)")
    elif out.exists() and any(out.iterdir()):
        if not force:
            raise UserError(f"{out} is not empty (use --force to replace a synthetic set there)")
        if not (out / PROVENANCE).exists() and not (out / MANIFEST).exists():
            raise UserError(f"{out} is not a synthetic set; refusing to delete it even with --force")


def clear_out(out, is_npz):
    """Make --out an empty folder (png); an npz is replaced atomically when written. Call check_out first."""
    out = Path(out)
    if not is_npz:
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)


def synthesize(config, progress=True):
    """Run `gan-aug synthesize`; returns the provenance dict."""
    is_npz = config.format == "npz"
    use_threads(config.threads)
    device = resolve_device(config.device)
    sources, by_class = load_sources(config.checkpoints, device)
    wanted = list(config.classes) or list(by_class)
    unknown = [c for c in wanted if c not in by_class]
    if unknown:
        raise UserError(f"unknown class(es) {', '.join(unknown)} (the checkpoints have {', '.join(by_class)})")
    real_counts = {}
    for source in sources:
        counts = source.data.get("class_counts") or [0] * len(source.class_names)
        real_counts.update(zip(source.class_names, counts))
    counts = split_counts(config.distribution, config.n, wanted, real_counts)
    check_out(config.out, config.force, is_npz)
    confidence_filter = None
    if config.filter_checkpoints:
        confidence_filter = ConfidenceFilter(config.filter_checkpoints, config.min_confidence, sources[0].data,
                                             sources[0].image_size, device)
        missing = [c for c in wanted if c not in confidence_filter.class_names]
        if missing:
            raise UserError(f"the filter classifier does not know class(es) {', '.join(missing)}")

    # Sample everything before touching --out: a failure here (a filter that rejects too much) loses nothing.
    per_class, acceptance = {}, {}
    bar = tqdm(total=sum(counts.values()), unit="img", desc="synthesize", disable=not progress)
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
    bar.close()

    clear_out(config.out, is_npz)
    out = Path(config.out)
    rows, labels = [], []
    for class_index, name in enumerate(tqdm(wanted, desc="write", unit="class", disable=not progress or is_npz)):
        source, _ = by_class[name]
        for i, image in enumerate(per_class.get(name, [])):
            file = f"{name}/{i:06d}.png"
            if not is_npz:
                with atomic_write(out / file, durable=False) as handle:  # the manifest, last, is fsynced
                    Image.fromarray(image).save(handle, format="PNG")
            rows.append({"file": file, "class": name, "class_index": class_index, "seed": config.seed,
                         "truncation": config.truncation, "checkpoint_sha256": source.sha256, "step": source.step})
            labels.append(class_index)

    provenance = {
        "format": "gan-aug/synthetic/1", "class_names": wanted, "image_size": sources[0].image_size,
        "counts": {c: counts.get(c, 0) for c in wanted}, "seed": config.seed, "truncation": config.truncation,
        "distribution": config.distribution,
        "gan_data": {"fingerprint": sources[0].data["fingerprint"], "split": sources[0].data["split"]},
        "gans": [{"checkpoint": str(s.path), "sha256": s.sha256, "step": s.step, "classes": list(s.class_names),
                  "data": s.data, "model_args": s.model_args, "config": s.config} for s in sources],
    }
    if confidence_filter is not None:
        provenance["filter"] = {"checkpoints": [str(p) for p in confidence_filter.paths],
                                "sha256": confidence_filter.sha256,
                                "min_confidence": config.min_confidence, "acceptance": acceptance}
    if is_npz:
        arrays = [per_class[c] for c in wanted if c in per_class]
        images = np.concatenate(arrays) if arrays else no_images(sources[0].image_size)
        _write_npz(out, images, np.array(labels, dtype=np.int64), rows, provenance)
    else:
        with atomic_write(out / PROVENANCE, "w") as handle:
            json.dump(provenance, handle, indent=2, sort_keys=True)
        with atomic_write(out / MANIFEST, "w") as handle:  # last: its presence means the set is complete
            writer = csv.DictWriter(handle, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
    return provenance


def _write_npz(out, images, labels, rows, provenance):
    split = np.full(len(labels), "train")
    ids = np.array([r["file"] for r in rows], dtype=str)
    with atomic_write(out) as handle:
        np.savez(handle, images=images, labels=labels, class_names=np.array(provenance["class_names"], dtype=str),
                 split=split, group=ids, image_id=ids, source=np.array("synthetic"),
                 fingerprint=np.array(fingerprint(images, labels, split)),
                 provenance=np.array(json.dumps(provenance, sort_keys=True)))


def load_synthetic(path):
    """(images (N,H,W,3) uint8, labels (N,), class_names, provenance) of a synthetic folder or .npz."""
    path = Path(path)
    if path.suffix == ".npz" and path.is_file():
        with np.load(path, allow_pickle=False) as data:
            if "provenance" not in data.files:
                raise UserError(f"{path} is not a gan-aug synthetic set (no provenance)")
            return (data["images"], data["labels"].astype(np.int64), tuple(data["class_names"].tolist()),
                    json.loads(str(data["provenance"])))
    manifest, provenance_path = path / MANIFEST, path / PROVENANCE
    if not manifest.is_file() or not provenance_path.is_file():
        raise UserError(f"{path} is not a complete synthetic set (needs {MANIFEST} and {PROVENANCE})")
    provenance = json.loads(provenance_path.read_text())
    class_names = tuple(provenance["class_names"])
    with open(manifest, newline="") as handle:
        rows = list(csv.DictReader(handle))
    images = [np.asarray(Image.open(path / r["file"]).convert("RGB")) for r in rows]
    size = provenance["image_size"]
    images = np.stack(images) if images else no_images(size)
    labels = np.array([class_names.index(r["class"]) for r in rows], dtype=np.int64)
    return images, labels, class_names, provenance
