"""torch-fidelity adaptor: feature extractors (registered with torch-fidelity), and Fréchet distance,
KID and precision/recall computed from features extracted once per image set.

Extractors (registry below): 'inception' (torch-fidelity's Inception-v3 FID network: weights from a local
file, else torch's cache, else downloaded into it through torch.hub from torch-fidelity's own URL, as
torch-fidelity itself does) and 'lesion:CKPT' (a trained gan-aug classifier's penultimate features: a
domain Fréchet distance that knows what lesions look like).
"""

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torch_fidelity
from torch.utils.data import Dataset
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric
from torch_fidelity.metric_prc import KEY_METRIC_PRECISION, KEY_METRIC_RECALL, prc_features_to_metric
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY
from torch_fidelity.utils import create_feature_extractor, get_featuresdict_from_dataset

from classifier.checkpoint import classifier_file, load_classifier
from gan_aug.data.synthetic import sha256_file
from gan_aug.errors import UserError
from gan_aug.runtime import hub_download

INCEPTION_FILE = URL_INCEPTION_V3.rsplit("/", 1)[-1]
# torch.hub's convention: the name ends in the first 8 hex digits of the file's sha256 (here 6726825d).
INCEPTION_SHA256_PREFIX = INCEPTION_FILE.rsplit("-", 1)[-1].split(".")[0]
# What torch-fidelity's inception-v3-compat does to every image before the network, for scores.json.
INCEPTION_RESIZE = "bilinear to 299x299 px, TensorFlow 1.x compatible (torch-fidelity inception-v3-compat)"
LESION_EXTRACTOR = "gan-aug-lesion"
FD, KID, KID_STD, PRECISION, RECALL = "frechet_distance", "kid", "kid_std", "precision", "recall"


class UInt8Images(Dataset):
    """(N, H, W, 3) uint8 array -> items of (3, H, W) uint8 tensors, the form torch-fidelity expects."""

    def __init__(self, images):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return torch.from_numpy(np.ascontiguousarray(self.images[i])).permute(2, 0, 1)


class LesionFeatureExtractor(FeatureExtractorBase):
    """Penultimate features of a gan-aug classifier checkpoint (path in feature_extractor_weights_path)."""

    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        super().__init__(name, features_list)
        self.model, _, state = load_classifier(feature_extractor_weights_path)
        self.image_size = state["model_args"]["image_size"]
        self.meta_dim = state["model_args"]["meta_dim"]

    @staticmethod
    def get_provided_features_list():
        return ("penultimate",)

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return "penultimate"

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 3, 32, 32, dtype=torch.uint8)

    def forward(self, x):
        x = x.float() / 127.5 - 1  # (B, 3, H, W) in [-1, 1], as the classifier was trained
        if x.shape[-1] != self.image_size:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", antialias=True,
                              align_corners=False)
        device = next(self.model.parameters()).device
        meta = torch.zeros(len(x), self.meta_dim, device=device) if self.meta_dim else None
        return (self.model.features(x.to(device), meta).float(),)


if LESION_EXTRACTOR not in FEATURE_EXTRACTORS_REGISTRY:
    torch_fidelity.register_feature_extractor(LESION_EXTRACTOR, LesionFeatureExtractor)


def resolve_inception_weights(path, download=True):
    """The Inception weights file: `path` when given, else torch's hub cache, where torch-fidelity keeps it;
    with `download`, a missing one is fetched into that cache by torch.hub from torch-fidelity's URL, as
    torch-fidelity does itself. Offline, one line that says where to get the file and where to put it."""
    if path:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"Inception weights not found: {path}")
    else:
        path = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE
        if not path.is_file():
            if not download:
                raise UserError(f"no Inception weights at {path}: fetch {URL_INCEPTION_V3} and put it there "
                                "or pass --fid-weights PATH")
            with hub_download("the Inception weights for FID", URL_INCEPTION_V3, path, "pass --fid-weights PATH"):
                torch.hub.load_state_dict_from_url(URL_INCEPTION_V3, map_location="cpu", weights_only=True)
    try:  # torch-fidelity unpickles the file itself; make sure it is a plain state dict first
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise UserError(f"{path} is not a plain state-dict file: {str(err).splitlines()[0]}") from None
    return str(path)


def feature_record(features, fid_weights, image_size):
    """Which network and weights (sha256) and which resize turn `image_size` px images into the features, for
    scores.json: FIDs are comparable only when these agree. Resolves (and if need be downloads) the weights."""
    name, weights, layer = extractor_spec(features, fid_weights)
    if features == "inception":
        resize = f"{image_size} px, {INCEPTION_RESIZE}"
    else:
        weights = str(classifier_file(weights))
        size = load_classifier(weights)[2]["model_args"]["image_size"]
        resize = f"{image_size} px, bilinear antialiased to {size} px" if size != image_size else "none"
    digest = sha256_file(weights)
    record = {"extractor": name, "layer": layer, "weights": weights, "weights_sha256": digest, "resize": resize}
    if features == "inception":  # other weights load without complaint and give FDs of 1e-44 or 1e4
        record["official_weights"] = digest.startswith(INCEPTION_SHA256_PREFIX)
    return record


def extractor_spec(features, fid_weights=None):
    """(torch-fidelity extractor name, weights path, feature layer) for --features inception|lesion:CKPT."""
    if features == "inception":
        return "inception-v3-compat", resolve_inception_weights(fid_weights), "2048"
    if features.startswith("lesion:"):
        checkpoint = features.split(":", 1)[1]
        if not Path(checkpoint).exists():
            raise UserError(f"classifier checkpoint not found: {checkpoint}")
        return LESION_EXTRACTOR, checkpoint, "penultimate"
    raise UserError(f"unknown --features '{features}' (use inception or lesion:CLASSIFIER_CKPT)")


def extract_features(images, features, fid_weights=None, batch_size=64, verbose=False, cuda=False):
    """(N, D) float64 features of (N, H, W, 3) uint8 images, on the GPU with cuda=True."""
    name, weights, layer = extractor_spec(features, fid_weights)
    extractor = create_feature_extractor(name, [layer], cuda=cuda, feature_extractor_weights_path=weights,
                                         verbose=verbose, feature_extractor_compile=False)
    out = get_featuresdict_from_dataset(UInt8Images(images), extractor, batch_size, cuda=cuda, save_cpu_ram=True,
                                        verbose=verbose)
    return out[layer].double()


def frechet_distance(features_1, features_2):
    stats = [fid_features_to_statistics(torch.as_tensor(f, dtype=torch.float64)) for f in (features_1, features_2)]
    return fid_statistics_to_metric(stats[0], stats[1], verbose=False)[KEY_METRIC_FID]


def kernel_distance(features_1, features_2, subset_size=1000, subsets=100, seed=0):
    """(KID mean, std); the subset size shrinks to the smaller set so small classes still get a value."""
    size = min(subset_size, len(features_1), len(features_2))
    if size < 2:
        return float("nan"), float("nan")
    out = kid_features_to_metric(torch.as_tensor(features_1), torch.as_tensor(features_2), kid_subsets=subsets,
                                 kid_subset_size=size, verbose=False, rng_seed=seed)
    return out[KEY_METRIC_KID_MEAN], out[KEY_METRIC_KID_STD]


def precision_recall(synthetic, real, neighborhood=3):
    """Improved precision/recall (Kynkäänniemi et al. 2019); synthetic first, as torch-fidelity expects.
    Distances in row blocks (save_cpu_ram): the full matrices of a 50,000-image set need ~20 GB and were
    killed for memory on a 24 GB machine; the blocks give the same numbers in well under 1 GB."""
    k = min(neighborhood, len(synthetic) - 1, len(real) - 1)
    if k < 1:
        return float("nan"), float("nan")
    out = prc_features_to_metric(torch.as_tensor(synthetic, dtype=torch.float32),
                                 torch.as_tensor(real, dtype=torch.float32), prc_neighborhood=k,
                                 prc_batch_size=4096, save_cpu_ram=True, verbose=False)
    return out[KEY_METRIC_PRECISION], out[KEY_METRIC_RECALL]


def set_scores(synthetic, real, kid_subset_size=1000):
    """Fréchet distance, KID and precision/recall of one pair of feature sets."""
    kid, kid_std = kernel_distance(synthetic, real, kid_subset_size)
    precision, recall = precision_recall(synthetic, real)
    fd = frechet_distance(synthetic, real) if min(len(synthetic), len(real)) >= 2 else float("nan")
    return {FD: fd, KID: kid, KID_STD: kid_std, PRECISION: precision, RECALL: recall,
            "n_synthetic": len(synthetic), "n_real": len(real)}
