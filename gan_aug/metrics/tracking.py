"""Quality while a GAN trains (stylegan2-ada's metric tracking, per class): every `metrics_every` kimg,
the Fréchet distance and KID of `metrics_n` generated images against the train split, overall and per
class, in one feature space. The GAN loop calls it with a sampler and keeps best.pt by the overall FD.

The feature space: `inception` when its weights are here (or --set fid_weights=PATH), else
`lesion:CLASSIFIER_CKPT`; `auto` takes the first that is available and says what to do when neither is.
"""

import numpy as np

from gan_aug.data.folds import load_view
from gan_aug.errors import UserError
from gan_aug.gan.training_data import FD_KEY, select_training_data
from gan_aug.metrics import fidelity


def resolve_features(features, fid_weights):
    """The feature space to track in: inception, lesion:CKPT, or for `auto` the first one available."""
    if features != "auto":
        fidelity.extractor_spec(features, fid_weights)  # refuses a missing checkpoint or weights file now
        return features
    try:
        fidelity.resolve_inception_weights(fid_weights, download=False)  # auto: only weights already here
        return "inception"
    except UserError:
        raise UserError("metrics_every needs a feature space: no Inception weights here, so give "
                        "--set metrics_features=lesion:CLASSIFIER_CKPT (a classifier of this prepared set) or "
                        "--set fid_weights=PATH (torch-fidelity's Inception file)") from None


class TrainingQuality:
    """Reference features of the GAN's training images, extracted at the first call (under torchrun only
    rank 0 measures); calling it scores a sampler. A feature space that is not available fails at once."""

    def __init__(self, config, device):
        self.features = resolve_features(config.metrics_features, config.fid_weights)
        self.fid_weights, self.n, self.device = config.fid_weights, config.metrics_n, device
        prepared = load_view(config.data, config.folds, config.fold)
        self.images, self.labels, self.class_names = select_training_data(prepared, config.classes,
                                                                          config.batch_size)
        self.reference = None
        counts = np.bincount(self.labels, minlength=len(self.class_names))
        # The generated set follows the train split's class mix, so the overall FD compares like with like;
        # a few images at least per class, so every class gets a (noisy) value.
        self.counts = np.maximum(np.round(self.n * counts / counts.sum()).astype(int), 8)

    def _extract(self, images):
        return fidelity.extract_features(images, self.features, self.fid_weights,
                                         cuda=self.device.type == "cuda").numpy()

    def __call__(self, sample):
        """Scalars for stats.jsonl and TensorBoard; `sample(class_index, n)` returns (n, H, W, 3) uint8."""
        if self.reference is None:
            self.reference = self._extract(self.images)
        images = [sample(c, int(n)) for c, n in enumerate(self.counts)]
        labels = np.concatenate([np.full(len(batch), c) for c, batch in enumerate(images)])
        generated = self._extract(np.concatenate(images))
        out = {FD_KEY: fidelity.frechet_distance(generated, self.reference),
               "Metrics/kid": fidelity.kernel_distance(generated, self.reference)[0]}
        for c, name in enumerate(self.class_names):
            g, r = generated[labels == c], self.reference[self.labels == c]
            out[f"Metrics/fd/{name}"] = fidelity.frechet_distance(g, r) if min(len(g), len(r)) >= 2 else float("nan")
            out[f"Metrics/kid/{name}"] = fidelity.kernel_distance(g, r)[0]
        return out
