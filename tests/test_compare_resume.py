"""compare resumes only what the config trains (issue #39): each finished run records its recipe and a changed
config is refused, naming the keys; --force trains those runs again; a folder compare did not make is not written
over; a stale OUT/synthetic is not reused; an input refused before the first run leaves nothing behind."""

import json
import os

import pytest
import yaml

from gan_aug.compare.config import CompareConfig
from gan_aug.compare.summary import run_dir
from gan_aug.config import build_config
from gan_aug.errors import UserError


def compare_yaml(tmp_path, data, name="compare.yaml", **changes):
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"data": str(data), "arms": ["none"], "seeds": [0], "epochs": 1, "threads": 1,
                                    "batch_size": 64, "bootstrap": 100, "device": "cpu", **changes}))
    return path


def stamps(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def edited_set(toy16, path):
    """toy16 with its pixels inverted: another prepared set (another fingerprint), same classes and splits."""
    import numpy as np

    from gan_aug.data.prepared import fingerprint

    with np.load(toy16) as archive:
        arrays = {key: archive[key] for key in archive.files}
    arrays["images"] = 255 - arrays["images"]
    arrays["fingerprint"] = np.array(fingerprint(arrays["images"], arrays["labels"], arrays["split"]))
    np.savez(path, **arrays)
    return path


@pytest.mark.slow
def test_a_changed_recipe_or_data_is_refused_naming_the_keys_and_force_trains_again(toy16, tmp_path, run_cli):
    out = tmp_path / "cmp"
    cfg = compare_yaml(tmp_path, toy16)
    assert run_cli("compare", "--config", cfg, "--out", out).exit_code == 0
    done = run_dir(out, "none", 0) / "done.json"
    recipe = json.loads(done.read_text())["recipe"]
    assert recipe["epochs"] == 1 and len(recipe["data"]) == 64 and "device" not in recipe
    before = stamps(out)
    # Before: exit 0, the epoch-1 run reused while config.yaml and report.md claimed 2 epochs.
    result = run_cli("compare", "--config", cfg, "--out", out, "--set", "epochs=2", "--set", "lr=0.01")
    assert result.exit_code == 1 and "epochs, lr differ" in result.output, result.output
    assert "none_seed0: epochs 1 (config: epochs 2); lr 0.002 (config: lr 0.01)" in result.output
    other = edited_set(toy16, tmp_path / "other.npz")
    result = run_cli("compare", "--config", compare_yaml(tmp_path, other, "other.yaml"), "--out", out)
    assert result.exit_code == 1 and "data differs" in result.output, result.output
    assert stamps(out) == before  # config.yaml, data.json and the report still describe the runs
    # A device or thread count is how a run ran, not what it learnt: resuming elsewhere reuses the run.
    assert run_cli("compare", "--config", cfg, "--out", out, "--set", "threads=2").exit_code == 0
    assert done.read_bytes() == before["runs/none_seed0/done.json"]

    # A run that predates the record is judged by its own config.yaml and best.pt (train-classifier's).
    record = json.loads(done.read_text())
    del record["recipe"]
    done.write_text(json.dumps(record))
    result = run_cli("compare", "--config", cfg, "--out", out, "--set", "lr=0.01")
    assert result.exit_code == 1 and "lr differs" in result.output, result.output
    result = run_cli("compare", "--config", compare_yaml(tmp_path, other, "other.yaml"), "--out", out)
    assert result.exit_code == 1 and "data differs" in result.output, result.output

    result = run_cli("compare", "--config", cfg, "--out", out, "--set", "epochs=2", "--force")
    assert result.exit_code == 0, result.output
    assert json.loads(done.read_text())["recipe"]["epochs"] == 2
    assert yaml.safe_load((out / "config.yaml").read_text())["force"] is False  # the record, not the command


def test_a_folder_compare_did_not_make_is_not_written_over(toy16, tmp_path, run_cli):
    for name in ("report.md", "results.csv", "config.yaml"):
        out = tmp_path / name.replace(".", "_")
        (out / "notes").mkdir(parents=True)
        (out / name).write_text("mine\n")
        result = run_cli("compare", "--config", compare_yaml(tmp_path, toy16), "--out", out)
        assert result.exit_code == 1 and f"holds {name}" in result.output and "--force" in result.output
        assert (out / name).read_text() == "mine\n" and sorted(os.listdir(out)) == sorted(["notes", name])


def test_inputs_refused_before_the_first_run_leave_nothing_behind(toy16, toy_gan, tmp_path, run_cli):
    """README: a refused command writes nothing. Before, compare left OUT with config.yaml, data.json and
    config.lock (a missing gan_run was found only when synthesizing)."""
    empty = tmp_path / "empty"
    empty.mkdir()
    for changes, message in (({"arms": ["none", "mix:0.3"], "gan_run": str(tmp_path / "none")}, "checkpoint not found"),
                             ({"external": [f"x=isic-csv:{tmp_path / 'nowhere'}"]}, "not found"),
                             ({"arms": ["none", "mix:0.3"], "synthetic": str(toy16)}, "synthetic"),
                             ({"arms": ["none", "mix:0.3"], "gan_run": str(toy_gan), "synth_n": 7,
                               "synth_distribution": "mel=-1"}, "")):
        for out in (tmp_path / "new" / "deeper" / "cmp", empty):
            result = run_cli("compare", "--config", compare_yaml(tmp_path, toy16, **changes), "--out", out)
            assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output, \
                result.output
            assert not (tmp_path / "new").exists() and os.listdir(empty) == [], (changes, os.listdir(empty))


def test_a_synthetic_set_made_otherwise_is_refused_then_made_again_with_force(toy16, toy_gan, tmp_path):
    from gan_aug.compare.resume import stale_syntheses
    from gan_aug.synth.config import SynthConfig
    from gan_aug.synth.sample import synthesize

    out = tmp_path / "cmp"
    synthesize(build_config(SynthConfig, None, {"checkpoints": (str(toy_gan),), "out": str(out / "synthetic"),
                                                "n": 14}), progress=False)
    config = lambda **changes: build_config(CompareConfig, None, {
        "data": str(toy16), "out": str(out), "arms": "none,mix:0.3", "gan_run": str(toy_gan), "synth_n": 14,
        **changes})
    assert stale_syntheses(config(), force=False) == set()
    with pytest.raises(UserError, match="synthesized otherwise than this config says .synth_n differs"):
        stale_syntheses(config(synth_n=20), force=False)
    with pytest.raises(UserError, match="synth_truncation, synth_n differ"):
        stale_syntheses(config(synth_n=20, synth_truncation=0.5), force=False)
    assert stale_syntheses(config(synth_n=20), force=True) == {str(out / "synthetic")}
    with pytest.raises(UserError, match="checkpoint not found"):
        stale_syntheses(config(gan_run=str(tmp_path / "gone")), force=True)


def test_a_run_records_the_content_of_its_synthetic_set(toy16, toy_gan, tmp_path):
    from gan_aug.compare.resume import differences, recipes
    from gan_aug.data.prepared import load_prepared

    config = build_config(CompareConfig, None, {"data": str(toy16), "out": str(tmp_path), "arms": "none,mix:0.3",
                                                "synthetic": "syn"})
    prepared = load_prepared(toy16)
    images, labels = prepared.images[:8], prepared.labels[:8]
    one = recipes(config, prepared, {"": (images, labels)})
    other = recipes(config, prepared, {"": (images[::-1].copy(), labels)})
    assert "synthetic" not in one["none"] and differences(one["mix:0.3"], other["mix:0.3"]) == ["synthetic"]
    assert differences(one["none"], other["none"]) == []


def test_shard_takes_ascii_digits_only():
    for shard in ("²/3", "1/٣", "١/٢", "1/2/3", "0/1", "1/0", "1/" + "9" * 30):
        with pytest.raises(UserError, match="--shard looks like K/N"):
            CompareConfig(data="d", out="o", arms=("none",), shard=shard).shard_index()
    assert CompareConfig(data="d", out="o", shard=" 2 / 3 ").shard_index() == (2, 3)
