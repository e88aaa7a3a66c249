"""Teacher ensembles: trained classifiers whose mean class probabilities judge or label other images.

Two users: the synthesize confidence filter (keep a GAN sample only when the teachers believe its
label) and distillation in train-classifier (`teachers`: train on the teachers' probabilities instead
of hard labels). A teacher must be an image-only multiclass classifier trained on the same prepared set
(its train split, selected on val), so it brings no val/test information into what it judges or labels.
"""

import hashlib

import torch

from classifier.checkpoint import classifier_file, load_classifier
from classifier.inference import predict
from gan_aug.errors import UserError
from gan_aug.runtime import autocast_for


def load_teacher(path, fingerprint, image_size, device):
    """(model, task, class names) of one teacher, refused unless trained on the prepared set `fingerprint`."""
    model, task, state = load_classifier(path, device)
    args = state["model_args"]
    if args["task"] != "multiclass" or args["meta_dim"]:
        raise UserError(f"{path}: a teacher or filter classifier must be image-only and multiclass "
                        "(trained with --task multiclass, without --use-metadata)")
    if state["data"]["fingerprint"] != fingerprint:
        raise UserError(f"{path} was trained on another prepared set: use a classifier trained on this "
                        "prepared set (train split, selected on val)")
    if args["image_size"] != image_size:
        raise UserError(f"{path} takes {args['image_size']} px images, these are {image_size} px")
    return model, task, list(args["class_names"])


CHUNK = 4096  # images hashed at a time


class TeacherEnsemble:
    def __init__(self, checkpoints, fingerprint, image_size, device):
        self.paths = [classifier_file(c) for c in checkpoints]
        teachers = [load_teacher(path, fingerprint, image_size, device) for path in self.paths]
        self.models = [model for model, _, _ in teachers]
        _, self.task, self.class_names = teachers[0]  # one prepared set (fingerprint checked): same classes
        self.device = device
        self.autocast = autocast_for(device, True)
        self._labelled = {}  # content digest of a training pool -> its probabilities (see label_pool)

    def probabilities(self, images):
        """(N, K) mean class probabilities of the teachers for uint8 images (N, 3, H, W): a tensor, or
        classifier.data.DeviceRows (a memory-mapped set's rows, read batch by batch)."""
        if torch.is_tensor(images):
            images = images.to(self.device)
        return torch.stack([predict(m, self.task, images, None, autocast=self.autocast)
                            for m in self.models]).mean(dim=0)

    def label_pool(self, images):
        """probabilities(images), remembered by content: a compare trains every seed of an arm on the same
        pool (real train images + one synthetic set), so one ensemble labels it once, not once per seed."""
        digest = hashlib.blake2b(digest_size=16)
        for start in range(0, len(images), CHUNK):  # a pool larger than memory is read a chunk at a time
            digest.update(images[start:start + CHUNK].cpu().contiguous().numpy().data)
        key = digest.hexdigest()
        if key not in self._labelled:
            self._labelled[key] = self.probabilities(images).cpu()
        return self._labelled[key]
