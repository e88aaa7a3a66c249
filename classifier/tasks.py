"""Tasks (registry): what the classifier predicts, its loss, and how outputs become probabilities.

- multiclass: every class of the prepared set.
- binary: malignant (mel, bcc, akiec, scc) vs benign.
- two-stage: a binary screen, then the class within the screened group; both heads share features
  and the final class probabilities are p(group) * p(class | group).
"""

import torch
import torch.nn.functional as F

from gan_aug.data.domain import MALIGNANT
from gan_aug.errors import UserError


def malignant_mask(class_names):
    mask = torch.tensor([name in MALIGNANT for name in class_names])
    if not mask.any() or mask.all():
        raise UserError(f"binary and two-stage tasks need both malignant ({', '.join(sorted(MALIGNANT))}) "
                        f"and benign classes; this set has {', '.join(class_names)}")
    return mask


def class_loss(logits, targets, weight=None, focal_gamma=0.0, label_smoothing=0.0):
    """Cross-entropy, optionally class-weighted and/or focal (Lin et al. 2017). `targets`: (B,) class indices,
    or (B, K) class probabilities (distillation; not with focal)."""
    if focal_gamma <= 0:
        return F.cross_entropy(logits, targets, weight=weight, label_smoothing=label_smoothing)
    log_p = F.log_softmax(logits, dim=1).gather(1, targets[:, None]).squeeze(1)
    loss = -((1 - log_p.exp()) ** focal_gamma) * log_p
    if weight is not None:
        loss = loss * weight[targets]
        return loss.sum() / weight[targets].sum()
    return loss.mean()


class Multiclass:
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


class Binary:
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


class TwoStage:
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


TASKS = {}


def register(task_class):
    assert task_class.name not in TASKS
    TASKS[task_class.name] = task_class


register(Multiclass)
register(Binary)
register(TwoStage)
