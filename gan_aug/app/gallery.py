"""The Generate tab's work: a small synthetic set from the GAN through `synthesize` itself (so its manifest and
provenance are the real thing), written under the app's temporary folder and zipped for download."""

import uuid
import zipfile
from pathlib import Path

import numpy as np

from gan_aug.config import build_config
from gan_aug.data.synthetic import load_synthetic
from gan_aug.synth.config import SynthConfig
from gan_aug.synth.sample import synthesize


def generate(gan, class_name, count, truncation, seed, workdir, device="auto"):
    """(images (n, H, W, 3) uint8, the zip of the set with manifest.csv and synthetic.json) in a new folder of
    `workdir`; UserError for settings synthesize refuses."""
    folder = Path(workdir) / f"generate-{uuid.uuid4().hex[:12]}"
    name = f"{class_name}_seed{int(seed)}_trunc{truncation:g}"
    config = build_config(SynthConfig, None, {"checkpoints": (gan,), "out": str(folder / name), "n": int(count),
                                              "classes": (class_name,), "distribution": f"{class_name}={int(count)}",
                                              "truncation": float(truncation), "seed": int(seed), "device": device})
    synthesize(config, progress=False)
    images = load_synthetic(folder / name)[0]
    archive = folder / f"{name}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as handle:
        for file in sorted((folder / name).rglob("*")):
            if file.is_file():
                handle.write(file, Path(name) / file.relative_to(folder / name))
    return np.asarray(images), archive
