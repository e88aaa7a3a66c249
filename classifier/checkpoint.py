"""Classifier checkpoints: plain state dicts plus the model_args that rebuild the network and task."""

from pathlib import Path

from classifier.models import LesionClassifier
from classifier.tasks import TASKS
from gan_aug.data.names import check_class_names
from gan_aug.errors import UserError, first_line
from gan_aug.fileio import load_checkpoint_file
from gan_aug.legacy import CLASSIFIER_CHECKPOINT

FORMAT = CLASSIFIER_CHECKPOINT
# The slice of a checkpoint that evaluates, explains and serves a model (best.pt, bundles): no optimizer or
# scheduler, no second (training) copy of the weights beside a weight average.
INFERENCE_KEYS = ("format", "model_args", "model", "config", "data", "epoch", "best", "history")


def inference_state(state):
    return {k: state[k] for k in INFERENCE_KEYS if k in state}


def build_from_args(model_args, pretrained=None):
    """(model, task) from a checkpoint's model_args."""
    task = TASKS[model_args["task"]](model_args["class_names"])
    model = LesionClassifier(model_args["model"], model_args["heads"], model_args["meta_dim"], pretrained,
                             model_args["dropout"], model_args["input_norm"])
    return model, task


def classifier_file(path):
    """The checkpoint file a user means: the path itself, or a run directory's best.pt."""
    path = Path(path)
    return path / "best.pt" if path.is_dir() else path


def load_classifier(path, device="cpu"):
    """(model in eval mode, task, checkpoint state) from best.pt/latest.pt or a run directory (best.pt)."""
    path = classifier_file(path)
    if not path.is_file():
        raise UserError(f"classifier checkpoint not found: {path}")
    state = load_checkpoint_file(path, FORMAT, "classifier", device)
    try:
        check_class_names(state["model_args"]["class_names"], str(path))
        model, task = build_from_args(state["model_args"])
        model.load_state_dict(state["model"])
    except UserError:
        raise
    except Exception as err:  # model_args edited into anything make the builders raise anything
        raise UserError(f"{path}: its model_args do not rebuild its model ({first_line(err)})") from None
    return model.to(device).eval(), task, state


def run_files(path):
    """The checkpoint files a path names: itself, a run directory's best.pt, or every fold's best.pt of a
    cross-validation folder (train-classifier --folds), which evaluate then scores as an ensemble."""
    path = Path(path)
    folds = sorted(path.glob("fold_*/best.pt")) if path.is_dir() and not (path / "best.pt").exists() else []
    return folds or [classifier_file(path)]
