"""Tasks (registry): what the classifier predicts, its loss, and how outputs become probabilities.

- multiclass: every class of the prepared set.
- binary: malignant (mel, bcc, akiec, scc) vs benign.
- two-stage: a binary screen, then the class within the screened group; both heads share features
  and the final class probabilities are p(group) * p(class | group).
- multilabel: one independent yes/no (sigmoid) per label, the set's classes but nv (ISIC 2017: melanoma?
  seborrheic keratosis?), scored per label (AUC).
"""

import numpy as np
import torch
import torch.nn.functional as F

from classifier.metrics import compute_metrics, decided_classes, multilabel_metrics
from gan_aug.data.domain import MALIGNANT, NO_LABEL_CLASS
from gan_aug.errors import UserError


def malignant_mask(class_names, need="binary and two-stage tasks"):
    mask = torch.tensor([name in MALIGNANT for name in class_names])
    if not mask.any() or mask.all():
        raise UserError(f"{need} need both malignant ({', '.join(sorted(MALIGNANT))}) and benign classes; this set "
                        f"has {', '.join(class_names)}")
    return mask


def class_loss(logits, targets, weight=None, focal_gamma=0.0, label_smoothing=0.0, logit_offset=None):
    """Cross-entropy, optionally class-weighted and/or focal (Lin et al. 2017). `targets`: (B,) class indices,
    or (B, K) class probabilities (distillation, batch mixing; not with focal). `logit_offset` (K,) is added to
    the logits first: tau * log(prior) makes the loss balanced softmax / logit-adjusted."""
    if logit_offset is not None:
        logits = logits + logit_offset
    if focal_gamma <= 0:
        return F.cross_entropy(logits, targets, weight=weight, label_smoothing=label_smoothing)
    log_p = F.log_softmax(logits, dim=1).gather(1, targets[:, None]).squeeze(1)
    loss = -((1 - log_p.exp()) ** focal_gamma) * log_p
    if weight is not None:
        loss = loss * weight[targets]
        return loss.sum() / weight[targets].sum()
    return loss.mean()


class Task:
    """What the tasks share: each image's true outputs, and the metrics of a prediction set."""
    multilabel = False

    def positives(self, targets):
        """(N, outputs) bool: which outputs are true of each image, from `targets` (one per image here)."""
        return np.asarray(targets)[:, None] == np.arange(len(self.output_names))[None]

    def metrics(self, targets, probs):
        return compute_metrics(targets, probs, self.output_names)

    def decisions(self, targets, probs):
        """(true class, decided class, the classes' names) of each image: what BMA and recall count."""
        return np.asarray(targets), np.asarray(probs).argmax(axis=1), list(self.output_names)

    def malignancy(self, targets, probs):
        """(is each image malignant, the model's malignant score): the probabilities of the malignant outputs summed
        (for a two-stage model exactly its screen's p(malignant), so both stages give one answer)."""
        mask = malignant_mask(self.output_names, "operating points").numpy()
        return mask[np.asarray(targets)], np.asarray(probs)[:, mask].sum(axis=1)


class Multiclass(Task):
    name = "multiclass"

    def __init__(self, class_names):
        self.output_names = tuple(class_names)
        self.heads = {"class": len(class_names)}

    def targets(self, labels):
        return labels

    def loss(self, outputs, labels, weight, **kw):
        return class_loss(outputs["class"], labels, weight, **kw)

    def probabilities(self, outputs):
        return F.softmax(outputs["class"].float(), dim=1)


class Binary(Task):
    name = "binary"

    def __init__(self, class_names):
        self.malignant = malignant_mask(class_names)
        self.output_names = ("benign", "malignant")
        self.heads = {"malignant": 2}

    def targets(self, labels):
        return self.malignant.to(labels.device)[labels].long()

    def loss(self, outputs, labels, weight, **kw):
        return class_loss(outputs["malignant"], self.targets(labels), weight, **kw)

    def probabilities(self, outputs):
        return F.softmax(outputs["malignant"].float(), dim=1)

    def malignancy(self, targets, probs):
        return np.asarray(targets) == 1, np.asarray(probs)[:, 1]


class TwoStage(Task):
    name = "two-stage"

    def __init__(self, class_names):
        self.malignant = malignant_mask(class_names)
        self.output_names = tuple(class_names)
        self.heads = {"malignant": 2, "class": len(class_names)}

    def targets(self, labels):
        return labels

    def loss(self, outputs, labels, weight, **kw):
        screen = class_loss(outputs["malignant"], self.malignant.to(labels.device)[labels].long(), **kw)
        return screen + class_loss(outputs["class"], labels, weight, **kw)

    def stages(self, outputs):
        """(p(group) (B, 2) as benign, malignant; p(class | its group) (B, K)): the two steps of the prediction."""
        p_group = F.softmax(outputs["malignant"].float(), dim=1)
        mask = self.malignant.to(p_group.device)
        logits = outputs["class"].float()
        within_malignant = F.softmax(logits.masked_fill(~mask, float("-inf")), dim=1)
        within_benign = F.softmax(logits.masked_fill(mask, float("-inf")), dim=1)
        return p_group, torch.where(mask, within_malignant, within_benign)

    def probabilities(self, outputs):
        p_group, within = self.stages(outputs)
        return within * torch.where(self.malignant.to(within.device), p_group[:, 1:], p_group[:, :1])


class Multilabel(Task):
    """Independent labels (ISIC 2017's melanoma and seborrheic keratosis): a sigmoid and a binary cross-entropy
    each. The labels are the set's classes but nv, ISIC 2017's class of images with neither label; an image is
    positive for its own class's label only. Targets stay class indices: the loss and metrics expand them."""
    name = "multilabel"
    multilabel = True

    def __init__(self, class_names):
        self.class_names = tuple(class_names)
        self.output_names = tuple(c for c in class_names if c != NO_LABEL_CLASS)
        self.heads = {"labels": len(self.output_names)}
        # class index -> its label's index, -1 for the class with no label
        self.label_of_class = torch.tensor([self.output_names.index(c) if c in self.output_names else -1
                                            for c in class_names])

    def targets(self, labels):
        return labels

    def positives(self, targets):
        labels = self.label_of_class.numpy()[np.asarray(targets)]
        return labels[:, None] == np.arange(len(self.output_names))[None]

    def loss(self, outputs, labels, weight, **kw):
        label = self.label_of_class.to(labels.device)[labels]
        y = (label[:, None] == torch.arange(len(self.output_names), device=labels.device)[None]).float()  # (B, L)
        return F.binary_cross_entropy_with_logits(outputs["labels"].float(), y)

    def probabilities(self, outputs):
        return torch.sigmoid(outputs["labels"].float())

    def metrics(self, targets, probs):
        return multilabel_metrics(targets, probs, self.class_names, self.output_names, self.positives(targets))

    def decisions(self, targets, probs):
        return np.asarray(targets), decided_classes(probs, self.class_names, self.output_names), list(self.class_names)

    def malignancy(self, targets, probs):
        """Each label is scored on its own: the malignant score is the most probable malignant label's."""
        labels = np.array([name in MALIGNANT for name in self.output_names])
        if not labels.any():
            raise UserError("an operating point needs a malignant label; this model has "
                            f"{', '.join(self.output_names)}")
        truth = np.array([name in MALIGNANT for name in self.class_names])[np.asarray(targets)]
        return truth, np.asarray(probs)[:, labels].max(axis=1)


TASKS = {}


def register(task_class):
    assert task_class.name not in TASKS
    TASKS[task_class.name] = task_class


register(Multiclass)
register(Binary)
register(TwoStage)
register(Multilabel)
