"""The readers of the sets that carry skin type (issue #44): Fitzpatrick17k, DDI and PAD-UFES-20, on fixtures
built from their published CSV columns; skin type recorded, shown by info and reported as a subgroup axis."""

import csv
import json

import pytest

from classifier.evaluate import external_set
from conftest import write_jpeg
from gan_aug.data.prepared import load_prepared

FITZ_COLUMNS = ["md5hash", "fitzpatrick_scale", "fitzpatrick_centaur", "label", "nine_partition_label",
                "three_partition_label", "qc", "url", "url_alphanum"]
DDI_COLUMNS = ["", "DDI_ID", "DDI_file", "skin_tone", "malignant", "disease"]
PAD_COLUMNS = ["patient_id", "lesion_id", "smoke", "drink", "background_father", "background_mother", "age",
               "pesticide", "gender", "skin_cancer_history", "cancer_history", "has_piped_water",
               "has_sewage_system", "fitspatrick", "region", "diameter_1", "diameter_2", "diagnostic", "itch",
               "grew", "hurt", "changed", "bleed", "elevation", "img_id", "biopsed"]


def write_csv(path, columns, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)


def fitzpatrick17k(root, n=30):
    verdicts = ["benign", "malignant", "non-neoplastic"]
    scales = [1, 2, 3, 4, 5, 6, -1]
    rows = [{"md5hash": f"{i:032x}", "fitzpatrick_scale": scales[i % 7], "label": "some condition",
             "three_partition_label": verdicts[i % 3]} for i in range(n)]
    write_csv(root / "fitzpatrick17k.csv", FITZ_COLUMNS, rows)
    for i, row in enumerate(rows):
        write_jpeg(root / "data" / f"{row['md5hash']}.jpg", i)
    return root, rows


def ddi(root, n=24):
    tones = [12, 34, 56]
    rows = [{"": i, "DDI_ID": i + 1, "DDI_file": f"{i + 1:06d}.png", "skin_tone": tones[i % 3],
             "malignant": "True" if i % 4 == 0 else "False", "disease": "x"} for i in range(n)]
    write_csv(root / "ddi_metadata.csv", DDI_COLUMNS, rows)
    for i, row in enumerate(rows):
        write_jpeg(root / row["DDI_file"].replace(".png", ".jpg"), i)  # any image format, by stem
    return root, rows


def pad_ufes(root, n=36, diagnoses=("ACK", "BCC", "MEL", "NEV", "SEK")):
    rows = [{"patient_id": f"PAT_{i // 2}", "lesion_id": i, "age": 40 + i, "gender": "FEMALE" if i % 2 else "MALE",
             "fitspatrick": (i % 6) + 1 if i % 5 else "", "region": "ARM", "diagnostic": diagnoses[i % len(diagnoses)],
             "img_id": f"PAT_{i // 2}_{i}_{100 + i}.png"} for i in range(n)]
    write_csv(root / "metadata.csv", PAD_COLUMNS, rows)
    for i, row in enumerate(rows):
        write_jpeg(root / f"imgs_part_{1 + i % 3}" / row["img_id"].replace(".png", ".jpg"), i)
    return root, rows


def test_fitzpatrick17k_reads_benign_and_malignant_with_their_skin_types(tmp_path):
    root, rows = fitzpatrick17k(tmp_path / "f17k")
    data = external_set("fitzpatrick17k", root, 16)
    kept = [r for r in rows if r["three_partition_label"] != "non-neoplastic"]
    assert data.class_names == ("benign", "malignant") and len(data.labels) == len(kept)
    by_id = dict(zip(data.image_id, zip(data.labels, data.skin_type)))
    roman = {1: "I", 2: "II", 3: "III", 4: "IV", 5: "V", 6: "VI", -1: ""}
    for row in kept:
        assert by_id[row["md5hash"]] == (row["three_partition_label"] == "malignant", roman[row["fitzpatrick_scale"]])


def test_ddi_reads_its_skin_tone_bands_and_verdicts(tmp_path):
    root, rows = ddi(tmp_path / "ddi")
    data = external_set("ddi", root, 16)
    assert sorted(set(data.skin_type)) == ["I-II", "III-IV", "V-VI"]
    assert list(data.labels) == [int(r["malignant"] == "True") for r in rows]


def test_pad_ufes_prepares_with_patients_as_groups_and_info_shows_skin_type(tmp_path, run_cli):
    root, rows = pad_ufes(tmp_path / "pad")
    out = tmp_path / "pad.npz"
    result = run_cli("prepare", "--source", "pad-ufes-20", "--root", root, "--size", 16, "--out", out,
                     "--val-frac", 0, "--test-frac", 0.3, "--workers", 1)
    assert result.exit_code == 0, result.output
    prepared = load_prepared(out)
    assert set(prepared.class_names) == {"akiec", "bcc", "mel", "nv", "bkl"}  # no SCC row: no scc class
    assert len(set(prepared.group)) == len(rows) // 2  # a patient's two images are one group
    for group in set(prepared.group):
        assert len(set(prepared.split[prepared.group == group])) == 1
    skin = dict(zip(prepared.image_id, prepared.skin_type))
    assert skin["PAT_0_1_101"] == "II" and skin["PAT_0_0_100"] == ""  # fitspatrick left empty: unknown
    assert prepared.sex is not None and prepared.age[list(prepared.image_id).index("PAT_0_1_101")] == 41
    info = run_cli("info", out)
    assert "age, sex, site, skin type" in info.output


def test_evaluate_reports_skin_type_subgroups_with_their_n(toy16, tmp_path, run_cli):
    root, rows = pad_ufes(tmp_path / "pad")
    run = tmp_path / "clf"
    assert run_cli("train-classifier", "--data", toy16, "--out", run, "--epochs", 1, "--set", "threads=1").exit_code == 0
    out = tmp_path / "m.json"
    result = run_cli("evaluate", "--checkpoint", run, "--source", "pad-ufes-20", "--root", root, "--out", out)
    assert result.exit_code == 0, result.output
    subgroups = json.loads(out.read_text())["subgroups"]["skin type"]
    expected = {}
    for i, row in enumerate(rows):
        band = ("I", "II", "III", "IV", "V", "VI")[row["fitspatrick"] - 1] if row["fitspatrick"] else "unknown"
        expected[band] = expected.get(band, 0) + 1
    assert {k: v["n"] for k, v in subgroups.items()} == expected


@pytest.mark.parametrize("value, message", [("7", "skin type '7'"), ("pale", "skin type 'pale'")])
def test_a_value_that_is_no_skin_type_is_refused_in_one_line(tmp_path, run_cli, value, message):
    root, rows = pad_ufes(tmp_path / "pad", n=6)
    with open(root / "metadata.csv") as handle:
        text = handle.read()
    lines = text.splitlines()
    header = lines[0].split(",")
    cells = lines[2].split(",")
    cells[header.index("fitspatrick")] = value
    (root / "metadata.csv").write_text("\n".join([lines[0], lines[1], ",".join(cells), *lines[3:]]) + "\n")
    result = run_cli("prepare", "--source", "pad-ufes-20", "--root", root, "--size", 16, "--out", tmp_path / "p.npz",
                     "--val-frac", 0, "--test-frac", 0)
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "p.npz").exists()
