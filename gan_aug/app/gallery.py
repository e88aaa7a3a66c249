"""The Generate tab's work: a small synthetic set from the GAN through `synthesize` itself (so its manifest and
provenance are the real thing), written under the app's temporary folder and zipped for download."""

import csv
import math
import uuid
import zipfile
from pathlib import Path

from gan_aug.config import build_config
from gan_aug.data.synthetic import MANIFEST
from gan_aug.errors import UserError
from gan_aug.synth.config import MAX_SEED, SynthConfig
from gan_aug.synth.sample import synthesize


def read_seed(seed):
    """The page's seed as an int, or a UserError that says what a seed is (not Python's int(inf) message)."""
    try:
        number = float(seed)
    except (TypeError, ValueError, OverflowError):  # None, text; an int past a float's range
        number = math.nan
    if isinstance(seed, bool) or not math.isfinite(number) or number != int(number) or not 0 <= number <= MAX_SEED:
        raise UserError(f"the seed must be a whole number from 0 to {MAX_SEED:,}, got {seed!r}")
    return seed if isinstance(seed, int) else int(number)


def generate(gan, class_name, count, truncation, seed, workdir, device="auto"):
    """(the PNG files of the images, the zip of the set with manifest.csv and synthetic.json), both in a new
    folder of `workdir`; UserError for settings synthesize refuses. Files, not arrays, go to the page: Gradio
    would write arrays to paths named by their content, which identical concurrent requests overwrite while
    they are read (see ui.save_pngs)."""
    seed = read_seed(seed)
    folder = Path(workdir) / f"generate-{uuid.uuid4().hex[:12]}"
    name = f"{class_name}_seed{seed}_trunc{truncation:g}"
    config = build_config(SynthConfig, None, {"checkpoints": (gan,), "out": str(folder / name), "n": int(count),
                                              "classes": (class_name,), "distribution": f"{class_name}={int(count)}",
                                              "truncation": float(truncation), "seed": seed, "device": device})
    synthesize(config, progress=False)
    with open(folder / name / MANIFEST, newline="") as handle:
        images = [folder / name / row["file"] for row in csv.DictReader(handle)]
    archive = folder / f"{name}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as handle:
        for file in sorted((folder / name).rglob("*")):
            if file.is_file():
                handle.write(file, Path(name) / file.relative_to(folder / name))
    return images, archive
