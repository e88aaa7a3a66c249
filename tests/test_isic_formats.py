"""Every ISIC ground-truth layout (2016-2020, on small CSVs with the official columns), groups from lesion and
patient ids, and per-image metadata/groups CSVs for any source (prepare --metadata-csv / --groups-csv)."""

import csv
import json

import numpy as np
import pytest
from conftest import write_jpeg

from gan_aug.data.prepared import load_prepared


def write_csv(path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        if header:
            writer.writerow(header)
        writer.writerows(rows)
    return path


def isic_images(root, n):
    ids = [f"ISIC_{i:07d}" for i in range(n)]
    for i, image_id in enumerate(ids):
        write_jpeg(root / "images" / f"{image_id}.jpg", i)
    return ids


def prepare(run_cli, root, out, *extra):
    result = run_cli("prepare", "--source", "isic-csv", "--root", root, "--size", 16, "--workers", 1, "--out", out,
                     *extra)
    assert result.exit_code == 0, result.output
    return load_prepared(out)


def counts(prepared):
    return dict(zip(prepared.class_names, prepared.class_counts().tolist()))


def groups_stay_in_one_split(prepared):
    return all(len(set(prepared.split[prepared.group == g])) == 1 for g in np.unique(prepared.group))


def test_isic_2016_training_and_test_ground_truth(run_cli, tmp_path):
    """No header; benign/malignant words in the training file, 0.0/1.0 in the test file."""
    root = tmp_path / "isic2016"
    ids = isic_images(root, 40)
    write_csv(root / "ISBI2016_ISIC_Part3_Training_GroundTruth.csv", None,
              [[i, "malignant" if n % 4 == 0 else "benign"] for n, i in enumerate(ids)])
    prepared = prepare(run_cli, root, tmp_path / "train.npz")
    assert counts(prepared) == {"benign": 30, "malignant": 10}
    test_csv = write_csv(tmp_path / "ISBI2016_ISIC_Part3_Test_GroundTruth.csv", None,
                         [[i, "1.0" if n % 5 == 0 else "0.0"] for n, i in enumerate(ids)])
    prepared = prepare(run_cli, root, tmp_path / "test.npz", "--csv", test_csv)
    assert counts(prepared) == {"benign": 32, "malignant": 8}


def test_isic_2017_two_labels_and_its_metadata(run_cli, tmp_path):
    root = tmp_path / "isic2017"
    ids = isic_images(root, 45)
    rows = [[i, "1.0" if n % 3 == 0 else "0.0", "1.0" if n % 3 == 1 else "0.0"] for n, i in enumerate(ids)]
    write_csv(root / "ISIC-2017_Training_Part3_GroundTruth.csv", ["image_id", "melanoma", "seborrheic_keratosis"], rows)
    meta = write_csv(tmp_path / "ISIC-2017_Training_Data_metadata.csv", ["image_id", "age_approximate", "sex"],
                     [[i, "unknown" if n == 0 else 35 + n, "female" if n % 2 else "male"] for n, i in enumerate(ids)])
    prepared = prepare(run_cli, root, tmp_path / "p.npz", "--metadata-csv", meta)
    assert counts(prepared) == {"mel": 15, "bkl": 15, "nv": 15}  # seborrheic keratosis is HAM10000's bkl
    order = np.argsort(prepared.image_id)
    assert np.isnan(prepared.age[order][0]) and prepared.age[order][1] == 36
    assert prepared.sex[order][:2].tolist() == ["male", "female"] and prepared.site is None

    rows[4][1] = "1.0"  # a melanoma that is also a seborrheic keratosis
    write_csv(root / "ISIC-2017_Training_Part3_GroundTruth.csv", ["image_id", "melanoma", "seborrheic_keratosis"], rows)
    result = run_cli("prepare", "--source", "isic-csv", "--root", root, "--out", tmp_path / "bad.npz")
    assert result.exit_code == 1 and "line 6: melanoma and seborrheic_keratosis are both 1" in result.output
    assert result.output.count("\n") == 1


def test_isic_2018_with_its_lesion_groupings(run_cli, isic2018_root, tmp_path):
    """ISIC 2018 ships lesion ids in a separate file: --groups-csv keeps a lesion's images in one split."""
    ids = sorted(p.stem for p in (isic2018_root / "images").iterdir())
    groupings = write_csv(tmp_path / "ISIC2018_Task3_Training_LesionGroupings.csv",
                          ["image", "lesion_id", "diagnosis_confirm_type"],
                          [[i, f"IL_{n // 3:07d}", "histopathology"] for n, i in enumerate(ids)])
    prepared = prepare(run_cli, isic2018_root, tmp_path / "p.npz", "--groups-csv", groupings)
    assert len(np.unique(prepared.group)) == 28 and groups_stay_in_one_split(prepared)
    assert prepared.age is None  # a groups CSV brings groups only


def test_isic_2019_metadata_gives_groups_and_metadata(run_cli, isic2019_root, tmp_path):
    prepared = prepare(run_cli, isic2019_root, tmp_path / "p.npz", "--metadata-csv", isic2019_root / "meta.csv")
    assert "scc" in prepared.class_names and len(np.unique(prepared.group)) == 48 and groups_stay_in_one_split(prepared)
    assert set(prepared.site) == {"torso"} and set(prepared.sex) == {"female"} and np.isfinite(prepared.age).all()


@pytest.mark.parametrize("version", ["v1", "v2", "benign_malignant only"])
def test_isic_2020_verdicts_patients_and_metadata(version, run_cli, tmp_path):
    root = tmp_path / "isic2020"
    ids = isic_images(root, 60)
    header = ["image_name", "patient_id", "lesion_id", "sex", "age_approx", "anatom_site_general_challenge",
              "diagnosis", "benign_malignant", "target"]
    rows = [[i, f"IP_{n // 4:07d}", f"IL_{n // 2:07d}", "male" if n % 2 else "female", "" if n == 1 else 45,
             "torso" if n % 3 else "head/neck", "melanoma" if n % 5 == 0 else "nevus",
             "malignant" if n % 5 == 0 else "benign", int(n % 5 == 0)] for n, i in enumerate(ids)]
    drop = {"v1": ["lesion_id"], "v2": [], "benign_malignant only": ["target"]}[version]
    keep = [c for c, name in enumerate(header) if name not in drop]
    write_csv(root / "ISIC_2020_Training_GroundTruth.csv", [header[c] for c in keep],
              [[row[c] for c in keep] for row in rows])
    prepared = prepare(run_cli, root, tmp_path / "p.npz")
    assert counts(prepared) == {"benign": 48, "malignant": 12}
    # a patient's images (their lesions look alike) stay in one split: the patient is the group, not the lesion
    assert len(np.unique(prepared.group)) == 15 and groups_stay_in_one_split(prepared)
    order = np.argsort(prepared.image_id)
    assert np.isnan(prepared.age[order][1]) and prepared.age[order][0] == 45
    assert set(prepared.site) == {"torso", "head/neck"} and set(prepared.sex) == {"male", "female"}


def test_a_bad_verdict_is_named(run_cli, tmp_path):
    root = tmp_path / "isic2016"
    ids = isic_images(root, 3)
    write_csv(root / "ISBI2016_ISIC_Part3_Training_GroundTruth.csv", None,
              [[ids[0], "benign"], [ids[1], "maybe"], [ids[2], "benign"]])
    result = run_cli("prepare", "--source", "isic-csv", "--root", root, "--out", tmp_path / "p.npz")
    assert result.exit_code == 1 and "line 2: class value 'maybe' is not 0 or 1" in result.output


def test_imagefolder_takes_groups_and_metadata_csvs(run_cli, imagefolder_root, tmp_path):
    """An ImageFolder set has no lesion ids of its own: a CSV keyed by file name gives them (and age/sex/site)."""
    stems = [f"img_{i}" for i in range(12)]
    groups = write_csv(tmp_path / "groups.csv", ["image", "patient_id"], [[s, f"P{n // 2}"] for n, s in enumerate(stems)])
    out = tmp_path / "p.npz"
    result = run_cli("prepare", "--source", "imagefolder", "--root", imagefolder_root, "--size", 16, "--workers", 1,
                     "--val-frac", 0.25, "--test-frac", 0.25, "--groups-csv", groups, "--out", out)
    assert result.exit_code == 0, result.output
    prepared = load_prepared(out)
    # each file name is in all three class folders, so a patient holds 6 images over 3 classes
    assert len(np.unique(prepared.group)) == 6 and groups_stay_in_one_split(prepared)
    meta = write_csv(tmp_path / "meta.csv", ["image", "age", "sex", "site"],
                     [[f"benign/{s}", 50, "female", "back"] for s in stems])
    result = run_cli("prepare", "--source", "imagefolder", "--root", imagefolder_root, "--size", 16, "--workers", 1,
                     "--metadata-csv", meta, "--out", tmp_path / "m.npz")
    assert result.exit_code == 0 and "24 image(s) are not in" in result.output
    prepared = load_prepared(tmp_path / "m.npz")
    assert (prepared.sex == "female").sum() == 12 and (prepared.site == "back").sum() == 12

    bad = write_csv(tmp_path / "bad.csv", ["image", "colour"], [["img_0", "red"]])
    result = run_cli("prepare", "--source", "imagefolder", "--root", imagefolder_root, "--groups-csv", bad,
                     "--out", tmp_path / "b.npz")
    assert result.exit_code == 1 and "has none of the columns patient_id" in result.output


def test_a_binary_model_is_scored_on_a_verdict_only_set(run_cli, ham_root, tmp_path):
    """ISIC 2016/2020 say only benign or malignant: a binary-task HAM10000 model is scored on that verdict."""
    data = tmp_path / "ham.npz"
    assert run_cli("prepare", "--source", "ham10000", "--root", ham_root, "--size", 16, "--out", data).exit_code == 0
    run = tmp_path / "binary"
    assert run_cli("train-classifier", "--data", data, "--out", run, "--task", "binary", "--epochs", 1).exit_code == 0
    root = tmp_path / "isic2016"
    ids = isic_images(root, 20)
    write_csv(root / "ISBI2016_ISIC_Part3_Test_GroundTruth.csv", None,
              [[i, "1.0" if n % 4 == 0 else "0.0"] for n, i in enumerate(ids)])
    result = run_cli("evaluate", "--checkpoint", run, "--source", "isic-csv", "--root", root, "--out",
                     tmp_path / "isic2016.json")
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "isic2016.json").read_text())
    assert metrics["class_names"] == ["benign", "malignant"] and metrics["per_class"]["malignant"]["support"] == 5
    multiclass = tmp_path / "multiclass"
    assert run_cli("train-classifier", "--data", data, "--out", multiclass, "--epochs", 1).exit_code == 0
    result = run_cli("evaluate", "--checkpoint", multiclass, "--source", "isic-csv", "--root", root, "--out",
                     tmp_path / "x.json")
    assert result.exit_code == 1 and "class(es) benign, malignant of the evaluation set are unknown" in result.output
