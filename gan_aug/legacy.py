"""Files written by earlier gan-aug versions, brought up to today's format in one place (as stylegan2-ada keeps
its legacy module). Each reader migrates what it loads right after checking its format, so the rest of the code
sees today's keys only. A key added to a format gets its value from before the key here, never from a
`.get(key, default)` where the file happens to be read: the old value is history and must not follow a change
of today's default."""

CLASSIFIER_CHECKPOINT = "gan-aug/classifier-checkpoint/1"
GAN_CHECKPOINT = "gan-aug/gan-checkpoint/1"
DIFFUSION_CHECKPOINT = "gan-aug/diffusion-checkpoint/1"

# A classifier checkpoint's model_args, as its code behaved before each key was recorded.
CLASSIFIER_MODEL_ARGS = {
    "dropout": 0.2,  # the heads' fixed dropout before it became a setting
    "input_norm": None,  # pixels in [-1, 1] before ImageNet backbones recorded their normalisation
    "color_constancy": "none",  # before prepare --color-constancy
}
GAN_STATE = {"best_fd": float("inf")}  # before train-gan tracked its best FD: no snapshot was chosen yet
PREPARED_SET = {"color_constancy": "none"}  # arrays of a prepared .npz before prepare --color-constancy
DATA_FACTS = {"color_constancy": "none"}  # compare's data.json and a bundle's facts, likewise


def with_defaults(record, defaults):
    """`record` with each key of `defaults` it lacks set to the value from before that key."""
    return {**defaults, **record}


def migrate_checkpoint(state):
    """A loaded checkpoint dict (its format already checked) in today's keys."""
    if state["format"] == CLASSIFIER_CHECKPOINT and isinstance(state.get("model_args"), dict):
        return {**state, "model_args": with_defaults(state["model_args"], CLASSIFIER_MODEL_ARGS)}
    if state["format"] == GAN_CHECKPOINT:
        return with_defaults(state, GAN_STATE)
    return state
