"""bundle and rescore: a toy comparison bundled, then re-scored on its own external set with identical numbers;
tampered bundles and bad external sets refused with nothing written."""

import json
import re
import shutil

import pytest
import torch

from gan_aug.compare.bundle import MANIFEST, read_bundled_predictions

pytestmark = pytest.mark.slow


def claim_lines(text):
    """The headline's gain lines and the per-split table rows of a report."""
    return [line for line in text.splitlines() if line.startswith("- ") and "BMA points" in line
            or re.match(r"\| (none|oversample|mix)", line)]


@pytest.fixture(scope="module")
def toy_compare(toy16, toy_gan, tmp_path_factory):
    """A finished toy comparison (2 arms x 2 seeds) with an ISIC-layout external set, bundle: true."""
    from click.testing import CliRunner

    from gan_aug.cli import cli
    from conftest import write_isic

    work = tmp_path_factory.mktemp("cmp")
    isic = work / "isic"
    write_isic(isic, ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"), 42)
    run = lambda *args: CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert run("synthesize", "--checkpoint", toy_gan, "-n", 60, "--out", work / "syn").exit_code == 0
    cfg = work / "compare.yaml"
    cfg.write_text(f"data: {toy16}\nsynthetic: {work / 'syn'}\narms: [oversample, mix:0.5]\nseeds: [0, 1]\n"
                   f"epochs: 1\nbatch_size: 32\nbootstrap: 200\nexternal: [isicx=isic-csv:{isic}]\nbundle: true\n"
                   "posthoc: [bias, label-shift]\n")
    result = run("compare", "--config", cfg, "--out", work / "out")
    assert result.exit_code == 0, result.output
    return work, isic


def test_bundle_holds_weights_configs_predictions_and_no_images(toy_compare):
    work, _ = toy_compare
    bundle = work / "out" / "bundle"
    manifest = json.loads((bundle / MANIFEST).read_text())
    assert len(manifest["runs"]) == 4 and manifest["splits"] == ["val", "test", "isicx"]
    files = manifest["files"]
    assert {"compare.yaml", "report.md", "results.csv"} <= set(files)
    assert not [f for f in files if f.endswith((".npz", ".npy", ".png", ".jpg"))]
    state = torch.load(bundle / "runs" / "mix_0.5_seed1" / "best.pt", weights_only=True)
    assert not {"optimizer", "scheduler", "training_model"} & set(state)  # no optimizer, no second copy
    full = torch.load(work / "out" / "runs" / "mix_0.5_seed1" / "best.pt", weights_only=True)
    assert all(torch.equal(full["model"][k], v) for k, v in state["model"].items())
    bundled = read_bundled_predictions(bundle / "runs" / "mix_0.5_seed1" / "test_predictions.csv.gz")
    import numpy as np
    saved = np.load(work / "out" / "runs" / "mix_0.5_seed1" / "test_predictions.npz")
    assert (bundled["y_pred"] == saved["y_pred"]).all() and np.allclose(bundled["probs"], saved["probs"], atol=1e-7)
    assert list(bundled["image_id"]) == list(saved["image_id"])


def test_rescore_on_the_compares_own_external_set_gives_identical_numbers(toy_compare, tmp_path, run_cli):
    work, isic = toy_compare
    out = tmp_path / "rescored"
    result = run_cli("rescore", work / "out" / "bundle", "--external", f"isicx=isic-csv:{isic}", "--out", out)
    assert result.exit_code == 0, result.output
    assert "isicx: 4 of 4 runs predict every image as the bundle recorded" in result.output
    original = (work / "out" / "report.md").read_text()
    rescored = (out / "report.md").read_text()
    isic_lines = lambda text: [l for l in claim_lines(text.split("## isicx")[0]) if "isicx" in l] + \
        claim_lines(text.split("## isicx")[1].split("## ")[0])
    assert isic_lines(rescored) and isic_lines(rescored) == isic_lines(original)
    assert "## Predicted-class shares" in rescored and "| true |" in rescored
    # the post-hoc fits read the bundle's val predictions: the corrected gains match compare's too
    posthoc = lambda text: [l for l in text.split("## Post-hoc class corrections")[1].splitlines()
                            if l.startswith("- isicx")]
    assert posthoc(rescored) and posthoc(rescored) == posthoc(original)
    assert "gan-aug rescore" in rescored.splitlines()[0]


def test_tampered_bundles_are_refused(toy_compare, tmp_path, run_cli):
    work, isic = toy_compare
    cases = {"changed weights": lambda b: _flip_a_byte(b / "runs" / "oversample_seed0" / "best.pt"),
             "planted file": lambda b: (b / "runs" / "oversample_seed0" / "extra.pt").write_bytes(b"x"),
             "missing file": lambda b: (b / "runs" / "mix_0.5_seed0" / "done.json").unlink(),
             "escaping path": lambda b: _edit_manifest(b, lambda m: m["files"].update(
                 {"../outside.txt": {"sha256": "0" * 64, "size": 1}}))}
    expected = {"changed weights": "does not match the bundle's manifest", "planted file": "not in the bundle's manifest",
                "missing file": "is missing", "escaping path": "path outside the bundle"}
    for name, tamper in cases.items():
        bundle = tmp_path / name.replace(" ", "_")
        shutil.copytree(work / "out" / "bundle", bundle)
        tamper(bundle)
        out = tmp_path / f"out_{name.replace(' ', '_')}"
        result = run_cli("rescore", bundle, "--external", f"isicx=isic-csv:{isic}", "--out", out)
        assert result.exit_code == 1 and expected[name] in result.output, (name, result.output)
        assert len(result.output.strip().splitlines()) == 1 and not out.exists()


def test_rescore_refuses_bad_inputs_and_never_writes_into_the_bundle(toy_compare, tmp_path, run_cli):
    from conftest import write_isic

    work, isic = toy_compare
    bundle = work / "out" / "bundle"
    before = sorted((p.relative_to(bundle), p.stat().st_mtime_ns) for p in bundle.rglob("*"))
    isic2019 = tmp_path / "isic2019"
    write_isic(isic2019, ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK"), 18)
    cases = [(["--external", f"new=isic-csv:{isic2019}"], "never learned"),
             (["--external", f"new=isic-csv:{isic}", "--out", bundle / "report"], "lies inside the bundle"),
             (["--external", f"test=isic-csv:{isic}"], "not train, val or test"),
             (["--external", "new"], "name=source:root"),
             (["--external", f"a=isic-csv:{isic}", "--external", f"a=isic-csv:{isic}"], "two external sets")]
    for args, message in cases:
        out = tmp_path / "out"
        result = run_cli("rescore", bundle, *args, *(["--out", out] if "--out" not in args else []))
        assert result.exit_code == 1 and message in result.output, (args, result.output)
        assert not out.exists()
    (tmp_path / "taken").mkdir()
    result = run_cli("rescore", bundle, "--external", f"x=isic-csv:{isic}", "--out", tmp_path / "taken")
    assert result.exit_code == 1 and "already exists" in result.output
    assert sorted((p.relative_to(bundle), p.stat().st_mtime_ns) for p in bundle.rglob("*")) == before


def test_bundle_refuses_to_replace_its_own_comparison(toy_compare, tmp_path, run_cli):
    work, _ = toy_compare
    result = run_cli("bundle", work / "out", "--out", work / "out", "--force")
    assert result.exit_code == 1 and "would replace the comparison" in result.output
    result = run_cli("bundle", tmp_path, "--out", tmp_path / "b")
    assert result.exit_code == 1 and "not a compare folder" in result.output and not (tmp_path / "b").exists()
    result = run_cli("bundle", work / "out", "--out", tmp_path / "b", "--no-external-predictions")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "b" / MANIFEST).read_text())
    assert manifest["splits"] == ["val", "test"] and not [f for f in manifest["files"] if "isicx" in f]


def _flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))


def _edit_manifest(bundle, change):
    manifest = json.loads((bundle / MANIFEST).read_text())
    change(manifest)
    (bundle / MANIFEST).write_text(json.dumps(manifest))


def test_force_replaces_a_linked_out_and_leaves_its_target_whole(toy_compare, tmp_path, run_cli):
    work, _ = toy_compare
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    link = tmp_path / "b"
    link.symlink_to(target)
    result = run_cli("bundle", work / "out", "--out", link, "--force")
    assert result.exit_code == 0, result.output
    assert not link.is_symlink() and (link / MANIFEST).is_file()
    assert (target / "keep.txt").read_text() == "mine" and sorted(p.name for p in target.iterdir()) == ["keep.txt"]


def test_rescore_exclude_leaves_out_the_images_an_audit_flagged(toy_compare, tmp_path, run_cli):
    """--exclude AUDIT.json scores each external set without the images the audit found near duplicates of in
    the train split; an audit of another prepared set, or one that never searched the set, is refused."""
    import pandas as pd

    work, isic = toy_compare
    bundle = work / "out" / "bundle"
    fingerprint = json.loads((bundle / MANIFEST).read_text())["data"]["fingerprint"]
    ids = sorted(pd.read_csv(next(isic.glob("*.csv")))["image"].astype(str))
    flagged = ids[:5]
    pair = lambda i: {"kind": "external:isicx", "a": {"set": "isicx", "id": i}, "b": {"set": "toy", "id": "x"},
                      "score": 0.9, "margin": 0.5, "hamming": 3}
    audit = {"fingerprint": fingerprint, "candidates": {"within": 10, "external:isicx": 30},
             "pairs": [pair(i) for i in flagged]}
    (tmp_path / "audit.json").write_text(json.dumps(audit))
    out = tmp_path / "clean"
    result = run_cli("rescore", bundle, "--external", f"isicx=isic-csv:{isic}", "--exclude",
                     tmp_path / "audit.json", "--out", out)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "rescore.json").read_text())
    assert summary["excluded"] == {"isicx": flagged} and summary["matches"] == {"isicx": None}
    import numpy as np

    kept = np.load(next((out / "runs").iterdir()) / "isicx_predictions.npz")
    assert sorted(kept["image_id"].astype(str)) == ids[5:]
    assert "isicx: 5" in (out / "report.md").read_text()

    for change, message in (({"fingerprint": "0" * 64}, "audited another prepared set"),
                            ({"candidates": {"within": 10}}, "did not search an external set named isicx")):
        (tmp_path / "other.json").write_text(json.dumps({**audit, **change}))
        result = run_cli("rescore", bundle, "--external", f"isicx=isic-csv:{isic}", "--exclude",
                         tmp_path / "other.json", "--out", tmp_path / "refused")
        assert result.exit_code == 1 and message in result.output and not (tmp_path / "refused").exists()
