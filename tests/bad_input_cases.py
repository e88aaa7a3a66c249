"""The cases of tests/test_bad_inputs.py: (id, command, failure class, the input, make(bench) -> the command's
arguments, a fragment of the error line, whether progress shows above the error). docs/bad-inputs.md lists them."""

import json
import os
from collections import namedtuple

import numpy as np
from PIL import Image

Case = namedtuple("Case", "id command kind what make expect progress", defaults=(False,))

ESCAPE, OVERWRITE, WRONG, FULL, KILL, DAMAGED = KINDS = (
    "Path escapes", "Overwriting without --force", "Silent wrong data", "Disk full", "Kills and partial runs",
    "Would-be tracebacks: damaged files, wrong kinds of path")

NOISE = np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes()  # a binary file
GAN_SETS = ["--set", "batch_size=16", "--set", "z_dim=16", "--set", "g_channels=8", "--set", "d_channels=8",
            "--set", "threads=1"]
NO_EXTRAS = ["--no-cas", "--no-memorization"]


def prepare(b, *extra, root=None, out=None, source="ham10000"):
    return ["prepare", "--source", source, "--root", root or b.ham, "--size", 16, "--out", out or b.tmp / "out.npz",
            "--workers", 1, "--val-frac", 0, "--test-frac", 0, *extra]


def train_gan(b, *extra, data=None, out=None):
    return ["train-gan", "--data", data or b.data, "--out", out or b.out, "--kimg", 0.016, *GAN_SETS, *extra]


def synthesize(b, *extra, checkpoint=None, out=None):
    return ["synthesize", "--checkpoint", checkpoint or b.gan, "-n", 7, "--out", out or b.out, *extra]


def score(b, *extra, syn=None, out=None):
    return ["score", "--data", b.data, "--synthetic", syn or b.syn, "--features", f"lesion:{b.clf / 'best.pt'}",
            *NO_EXTRAS, "--out", out or b.tmp / "s.json", *extra]


def train_classifier(b, *extra, data=None, out=None):
    return ["train-classifier", "--data", data or b.data, "--out", out or b.out, "--epochs", 1, "--set", "threads=1",
            *extra]


def evaluate(b, *extra, checkpoint=None, out=None, data=None):
    source = ["--data", data or b.data] if "--source" not in extra else []
    return ["evaluate", "--checkpoint", checkpoint or b.clf, *source, "--out", out or b.tmp / "m.json",
            "--device", "cpu", *extra]


def explain(b, *images, checkpoint=None, out=None, extra=()):
    return ["explain", "--checkpoint", checkpoint or b.clf, *images, "--out", out or b.out, *extra]


def compare(b, data=None, out=None, **config):
    settings = {"data": str(data or b.data), "arms": ["none"], "seeds": [0], "epochs": 1, "threads": 1,
                "bootstrap": 100, "device": "cpu", **config}
    return ["compare", "--config", b.file("compare.yaml", json.dumps(settings)), "--out", out or b.out]


def rescore(b, *extra, bundle=None, external=None, out=None):
    return ["rescore", bundle or b.copy("bundle"), "--external", external or f"isicx=isic-csv:{b.stock / 'isic'}",
            "--out", out or b.out, "--device", "cpu", *extra]


def audit(b, *extra, data=None, out=None):
    return ["audit", data or b.data, "--out", out or b.out, *extra]


def an_audit_of(b, **changes):
    """An audit.json naming the bundle's isicx set, with `changes`."""
    record = {"fingerprint": "0" * 64, "candidates": {"external:isicx": 1}, "pairs": [], **changes}
    return b.file("audit.json", json.dumps(record))


def tune(b, space="{lr: {low: 1.0e-3, high: 1.0e-2}}", out=None):
    text = f"data: {b.data}\nstartup_trials: 1\nspace: {space}\nrecipe: {{epochs: 1, threads: 1}}\n"
    return ["tune", "--config", b.file("tune.yaml", text), "--out", out or b.out, "--trials", 1]


def sqlite_db(b, name, tables, keep=None):
    """A SQLite file with these tables (a few pages of rows each), cut to `keep` of its bytes when given."""
    import contextlib
    import sqlite3

    path = b.tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(path)) as connection:
        for table in tables:
            connection.execute(f"CREATE TABLE {table} (x TEXT)")
            connection.executemany(f"INSERT INTO {table} VALUES (?)", [("x" * 100,)] * 300)
        connection.commit()
    return b.cut(path, keep) if keep else path


def without_recipe(b):
    """The stock comparison, its run's done.json as runs wrote it before they recorded their recipe."""
    done = b.copy("cmp") / "runs" / "oversample_seed0" / "done.json"
    record = json.loads(done.read_text())
    del record["recipe"]
    done.write_text(json.dumps(record))
    return done.parents[2]


def edit_bundle(b, edit):
    """A copy of the stock bundle after `edit(folder)`."""
    folder = b.copy("bundle")
    edit(folder)
    return folder


def flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))


def relink(path):
    """`path` replaced by a link to a copy of itself outside the bundle."""
    outside = path.parents[3] / f"outside_{path.name}"
    outside.write_bytes(path.read_bytes())
    path.unlink()
    path.symlink_to(outside)


def manifest_with(folder, name):
    manifest = json.loads((folder / "MANIFEST.json").read_text())
    manifest["files"][name] = {"sha256": "0" * 64, "size": 1}
    (folder / "MANIFEST.json").write_text(json.dumps(manifest))


def edited_pixels(b):
    with np.load(b.stock / "toy16.npz") as archive:
        arrays = {key: archive[key] for key in archive.files}
    arrays["images"] = 255 - arrays["images"]
    np.savez(b.tmp / "edited.npz", **arrays)
    return b.tmp / "edited.npz"


def demo(b, *extra):
    return ["demo", "--out", b.out, *extra]


def image(b, name, mode="RGB", size=16, dtype=np.uint8):
    path = b.tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.zeros((size, size, 3) if mode == "RGB" else (size, size), dtype)
    Image.fromarray(array).save(path)
    return path


def csv_rows(b, *rows):
    (b.ham / "HAM10000_metadata.csv").write_text("\n".join(("lesion_id,image_id,dx",) + rows) + "\n")
    return b


def newest_step(b):
    return sorted((b.gan / "checkpoints").glob("step*.pt"))[-1]


def edit_args(**changes):
    return lambda state: state["model_args"].update(changes)


def provenance(b, **changes):
    data = json.loads((b.syn / "synthetic.json").read_text())
    data["gan_data"].update(changes)
    (b.syn / "synthetic.json").write_text(json.dumps(data))
    return b.syn


def first_png(b):
    return b.syn / (b.syn / "manifest.csv").read_text().splitlines()[1].split(",")[0]


def folder_with(b, name, make):
    make(b.folder / "nv" / name)
    return b.folder


def after(_setup, args):
    """`args`, once the setup written before them has run (Python evaluates call arguments left to right)."""
    return args


def exported(b, fmt="imagefolder", name="exp"):
    """The toy set's train split as `gan-aug export` writes it, in the case's folder; returns the receipt."""
    from gan_aug.config import build_config
    from gan_aug.data.config import ExportConfig
    from gan_aug.data.exchange import export, receipt_path

    out = b.tmp / (f"{name}.zip" if fmt == "stylegan2-ada" else name)
    export(build_config(ExportConfig, None, {"data": str(b.data), "out": str(out), "format": fmt}))
    return receipt_path(out)


def generated(b):
    """Another generator's images: gen/mel and gen/nv, two 16 px PNGs each (made once per case)."""
    if not (b.tmp / "gen").exists():
        for name in ("mel/seed0.png", "mel/seed1.png", "nv/seed0.png", "nv/seed1.png"):
            image(b, f"gen/{name}")
    return b.tmp / "gen"


def import_synthetic(b, *extra, images=None, receipt=None, out=None):
    return ["import-synthetic", images or generated(b), "--data", b.data, "--receipt", receipt or exported(b),
            "--generator", "g", "--out", out or b.out, *extra]


def labelled(b, rows):
    """import-synthetic of gen/ with a --labels CSV of `rows` (after its header line)."""
    return import_synthetic(b, "--labels", b.file("labels.csv", rows), images=generated(b))


def edited_receipt(b, **changes):
    receipt = exported(b)
    receipt.write_text(json.dumps({**json.loads(receipt.read_text()), **changes}))
    return receipt


def linked(b, name, target):
    """b.tmp/`name`, a link to `target`."""
    (b.tmp / name).symlink_to(target)
    return b.tmp / name


def export_args(b, *extra, out=None, fmt="stylegan2-ada"):
    return ["export", "--data", b.data, "--format", fmt, "--out", out or b.tmp / "set.zip", *extra]


def full_after(b, args):
    """`args`, and the disk full from here on: their setup has written what it needed first."""
    b.disk_full()
    return args


CASES = [
    # -- prepare ----------------------------------------------------------------------------------------------
    Case("prepare-out-exists", "prepare", OVERWRITE, "--out names an existing file",
         lambda b: b.file("out.npz", b"old") and prepare(b), "already exists (use --force to overwrite)"),
    Case("prepare-out-is-folder", "prepare", DAMAGED, "--out names a folder (with --force)",
         lambda b: (b.tmp / "out.npz").mkdir() or prepare(b, "--force"), "is a folder, where a file is to be written"),
    Case("prepare-out-read-only", "prepare", DAMAGED, "--out in a read-only folder",
         lambda b: prepare(b, out=b.read_only(b.tmp / "ro") / "out.npz"), "Permission denied"),
    Case("prepare-out-under-a-file", "prepare", DAMAGED, "--out inside a path that is a file",
         lambda b: prepare(b, out=b.file("afile", "x") / "out.npz"), "a file stands where a folder is needed"),
    Case("prepare-binary-csv", "prepare", DAMAGED, "the metadata CSV is binary",
         lambda b: b.file("ham/HAM10000_metadata.csv", NOISE) and prepare(b), "is not a readable UTF-8 CSV file"),
    Case("prepare-csv-missing-column", "prepare", DAMAGED, "the metadata CSV lacks dx",
         lambda b: b.ham and b.file("ham/HAM10000_metadata.csv", "lesion_id,image_id\nL1,ISIC_0000000\n")
         and prepare(b), "lacks column(s) dx"),
    Case("prepare-csv-unknown-label", "prepare", DAMAGED, "a dx outside HAM10000's classes",
         lambda b: prepare(csv_rows(b, "L1,ISIC_0000000,wart")), "unknown dx label(s) wart"),
    Case("prepare-csv-header-only", "prepare", DAMAGED, "the metadata CSV has no rows",
         lambda b: prepare(csv_rows(b)), "has no rows"),
    Case("prepare-image-listed-twice", "prepare", WRONG, "one image id under two lesion ids",
         lambda b: prepare(csv_rows(b, "L1,ISIC_0000000,mel", "L2,ISIC_0000000,mel", "L3,ISIC_0000001,nv")),
         "1 image id(s) listed more than once, e.g. ISIC_0000000 under lesion id(s) L1, L2"),
    Case("prepare-image-missing", "prepare", KILL, "an image id with no file",
         lambda b: after((b.ham / "images" / "ISIC_0000003.jpg").unlink(), prepare(b)), "image id(s) have no file"),
    Case("prepare-zero-byte-image", "prepare", DAMAGED, "a zero-byte JPEG",
         lambda b: b.ham and b.file("ham/images/ISIC_0000004.jpg", b"") and prepare(b), "unreadable image(s)"),
    Case("prepare-cut-jpeg", "prepare", KILL, "a JPEG cut short by a killed copy",
         lambda b: b.cut(b.ham / "images" / "ISIC_0000005.jpg", 0.3) and prepare(b), "unreadable image(s)"),
    Case("prepare-float-tiff", "prepare", WRONG, "a 32-bit float TIFF (no known colours)",
         lambda b: prepare(b, root=folder_with(b, "depth.tif", lambda p: Image.fromarray(
             np.zeros((16, 16), np.float32)).save(p)), source="imagefolder"), "image mode F is not supported"),
    Case("prepare-int32-tiff", "prepare", WRONG, "a 32-bit integer TIFF",
         lambda b: prepare(b, root=folder_with(b, "count.tif", lambda p: Image.fromarray(
             np.full((16, 16), 70000, np.int32)).save(p)), source="imagefolder"), "image mode I is not supported"),
    Case("prepare-class-with-separator", "prepare", ESCAPE, "a class folder named with a path separator (\\)",
         lambda b: after((b.folder / "nv").rename(b.folder / "n\\v"), prepare(b, root=b.folder, source="imagefolder")),
         "class name 'n\\\\v' is not allowed"),
    Case("prepare-medmnist-zero-byte", "prepare", DAMAGED, "a zero-byte MedMNIST .npz",
         lambda b: prepare(b, root=b.file("dermamnist.npz", b""), source="medmnist-npz"),
         "is not a readable MedMNIST .npz file: No data left in file"),
    Case("prepare-medmnist-cut", "prepare", KILL, "a MedMNIST .npz cut short",
         lambda b: prepare(b, root=b.cut(b.copy("toy16.npz", "dermamnist.npz")), source="medmnist-npz"),
         "is not a readable MedMNIST .npz file: File is not a zip file"),
    Case("prepare-isic-two-classes", "prepare", DAMAGED, "an ISIC row with two classes set",
         lambda b: prepare(b, "--csv", b.file("gt.csv", "image,MEL,NV\nISIC_0000000,1.0,1.0\n"), source="isic-csv"),
         "expected exactly one class set to 1, got 2"),
    Case("prepare-root-missing", "prepare", DAMAGED, "--root does not exist",
         lambda b: prepare(b, root=b.tmp / "nowhere"), "root folder not found"),
    Case("prepare-disk-full", "prepare", FULL, "the disk fills while the .npz is written (--force over an old one)",
         lambda b: b.file("out.npz", b"old") and b.disk_full() or prepare(b, "--force"), "No space left on device"),
    # -- info -------------------------------------------------------------------------------------------------
    Case("info-zero-byte", "info", DAMAGED, "a zero-byte .npz",
         lambda b: ["info", b.file("z.npz", b"")], "is not a readable prepared set: No data left in file"),
    Case("info-cut", "info", KILL, "a prepared set cut short",
         lambda b: ["info", b.cut(b.data)], "is not a readable prepared set: File is not a zip file"),
    Case("info-text-file", "info", DAMAGED, "a text file named .npz",
         lambda b: ["info", b.file("t.npz", "image,label\n")], "is not a readable prepared set"),
    Case("info-bare-npy", "info", DAMAGED, "a bare .npy array named .npz",
         lambda b: np.save(b.tmp / "a.npy", np.zeros(3)) or ["info", os.replace(b.tmp / "a.npy", b.tmp / "a.npz")
                                                              or b.tmp / "a.npz"], "a single .npy array"),
    Case("info-missing-labels", "info", DAMAGED, "an .npz without labels",
         lambda b: ["info", b.npz(labels=None)], "is not a gan-aug prepared set (missing labels)"),
    Case("info-labels-outside", "info", WRONG, "a label past the class list",
         lambda b: ["info", b.npz(labels=np.full(200, 7))], "200 label(s) outside the 7 classes"),
    Case("info-float-images", "info", WRONG, "float images",
         lambda b: ["info", b.npz(images=np.zeros((200, 16, 16, 3), np.float32))], "images must be uint8"),
    Case("info-pickled-array", "info", DAMAGED, "an object (pickled) array",
         lambda b: ["info", b.npz(source=np.array([{"x": 1}], dtype=object))], "Object arrays cannot be loaded"),
    Case("info-short-group", "info", DAMAGED, "fewer lesion ids than images",
         lambda b: ["info", b.npz(group=np.array(["g"] * 5))], "group do not match the images"),
    Case("info-hostile-class", "info", ESCAPE, "a class named ../../evil",
         lambda b: ["info", b.npz(class_names=np.array(["../../evil", "b", "c", "d", "e", "f", "g"]))],
         "class name '../../evil' is not allowed"),
    Case("info-missing", "info", DAMAGED, "no such file", lambda b: ["info", b.tmp / "none.npz"],
         "prepared set not found"),
    # -- train-gan --------------------------------------------------------------------------------------------
    Case("gan-out-holds-run", "train-gan", OVERWRITE, "--out holds a run", lambda b: train_gan(b, out=b.gan),
         "holds another run (use --resume to continue it or --force to start over)"),
    Case("gan-out-not-empty", "train-gan", OVERWRITE, "--out holds someone's files",
         lambda b: b.file("out/notes.txt", "mine") and train_gan(b), "is not empty"),
    Case("gan-out-is-file", "train-gan", DAMAGED, "--out is a file",
         lambda b: b.file("out", "x") and train_gan(b), "exists and is not a directory"),
    Case("gan-out-read-only", "train-gan", DAMAGED, "--out in a read-only folder",
         lambda b: train_gan(b, out=b.read_only(b.tmp / "ro") / "run"), "Permission denied"),
    Case("gan-resume-zero-byte-checkpoint", "train-gan", DAMAGED, "--resume from a zero-byte checkpoint",
         lambda b: b.file(newest_step(b).relative_to(b.tmp), b"") and train_gan(b, "--resume", out=b.gan),
         "is not a readable checkpoint"),
    Case("gan-resume-cut-checkpoint", "train-gan", KILL, "--resume from a checkpoint cut short",
         lambda b: b.cut(newest_step(b)) and train_gan(b, "--resume", out=b.gan), "is not a readable checkpoint"),
    Case("gan-resume-edited-model-args", "train-gan", DAMAGED, "--resume from a checkpoint with edited model_args",
         lambda b: b.checkpoint(newest_step(b), edit_args(z_dim=99)) and train_gan(b, "--resume", out=b.gan),
         "cannot resume: architecture differs"),
    Case("gan-resume-missing-keys", "train-gan", DAMAGED, "--resume from a checkpoint without D",
         lambda b: b.checkpoint(newest_step(b), lambda s: s.pop("D")) and train_gan(b, "--resume", out=b.gan),
         "is not a whole GAN checkpoint (it lacks D)"),
    Case("gan-resume-other-data", "train-gan", WRONG, "--resume on another prepared set",
         lambda b: train_gan(b, "--resume", out=b.gan, data=b.npz(split=np.full(200, "train"))),
         "cannot resume: the run was trained on a different prepared set"),
    Case("gan-resume-nothing", "train-gan", KILL, "--resume where no run was started",
         lambda b: train_gan(b, "--resume"), "nothing to resume"),
    Case("gan-disk-full", "train-gan", FULL, "the disk fills at the first checkpoint",
         lambda b: b.disk_full("torch.save") or train_gan(b), "No space left on device", True),
    Case("gan-data-zero-byte", "train-gan", DAMAGED, "--data is a zero-byte file",
         lambda b: train_gan(b, data=b.file("z.npz", b"")), "is not a readable prepared set"),
    Case("gan-data-labels-outside", "train-gan", WRONG, "--data with labels past the class list",
         lambda b: train_gan(b, data=b.npz(labels=np.full(200, -1))), "200 label(s) outside the 7 classes"),
    Case("gan-unknown-class", "train-gan", DAMAGED, "--class names no class of the set",
         lambda b: train_gan(b, "--class", "wart"), "unknown class(es) wart"),
    Case("gan-config-binary", "train-gan", DAMAGED, "--config is a binary file",
         lambda b: train_gan(b, "--config", b.file("c.yaml", NOISE)), "is not valid YAML"),
    # -- synthesize -------------------------------------------------------------------------------------------
    Case("syn-zero-byte-checkpoint", "synthesize", DAMAGED, "a zero-byte checkpoint",
         lambda b: synthesize(b, checkpoint=b.file("g.pt", b"")), "is not a readable checkpoint"),
    Case("syn-cut-checkpoint", "synthesize", KILL, "a checkpoint cut short",
         lambda b: synthesize(b, checkpoint=b.cut(b.gan / "latest.pt")), "is not a readable checkpoint"),
    Case("syn-edited-model-args", "synthesize", DAMAGED, "model_args edited (z_dim)",
         lambda b: synthesize(b, checkpoint=b.checkpoint(b.gan / "latest.pt", edit_args(z_dim=99))),
         "its model_args do not rebuild its generator"),
    Case("syn-unknown-arch", "synthesize", DAMAGED, "model_args naming an unknown network",
         lambda b: synthesize(b, checkpoint=b.checkpoint(b.gan / "latest.pt", edit_args(arch="biggan"))),
         "its model_args do not rebuild its generator"),
    Case("syn-classifier-as-gan", "synthesize", DAMAGED, "a classifier checkpoint given as the GAN",
         lambda b: synthesize(b, checkpoint=b.clf / "best.pt"), "is not a gan-aug GAN checkpoint"),
    Case("syn-hostile-class", "synthesize", ESCAPE, "a checkpoint whose class is ../../x",
         lambda b: synthesize(b, checkpoint=b.checkpoint(b.gan / "latest.pt", lambda s: s["class_names"].__setitem__(
             0, "../../x"))), "class name '../../x' is not allowed"),
    Case("syn-out-holds-set", "synthesize", OVERWRITE, "--out holds a synthetic set",
         lambda b: synthesize(b, out=b.syn), "add --force to replace it"),
    Case("syn-out-not-a-set", "synthesize", OVERWRITE, "--out holds someone's files (even with --force)",
         lambda b: b.file("out/notes.txt", "mine") and synthesize(b, "--force"), "is not a synthetic set"),
    Case("syn-out-is-file", "synthesize", DAMAGED, "--out is a file",
         lambda b: b.file("out", "x") and synthesize(b), "exists and is not a folder"),
    Case("syn-out-read-only", "synthesize", DAMAGED, "--out in a read-only folder",
         lambda b: synthesize(b, out=b.read_only(b.tmp / "ro") / "syn"), "Permission denied", True),
    Case("syn-disk-full", "synthesize", FULL, "the disk fills while the set is written (--force over an old set)",
         lambda b: b.syn and b.disk_full() or synthesize(b, "--force", out=b.syn), "No space left on device", True),
    Case("syn-distribution-unknown-class", "synthesize", DAMAGED, "--distribution names no class of the GAN",
         lambda b: ["synthesize", "--checkpoint", b.gan, "--distribution", "wart=3", "--out", b.out],
         "--distribution names class(es) wart"),
    Case("syn-checkpoint-missing", "synthesize", DAMAGED, "no such checkpoint",
         lambda b: synthesize(b, checkpoint=b.tmp / "none.pt"), "checkpoint not found"),
    # -- score ------------------------------------------------------------------------------------------------
    Case("score-cut-provenance", "score", KILL, "synthetic.json cut short",
         lambda b: b.cut(b.syn / "synthetic.json") and score(b), "the provenance is not valid JSON"),
    Case("score-manifest-missing-png", "score", DAMAGED, "the manifest names a missing PNG",
         lambda b: score(b, syn=b.manifest(lambda row: row.update(file="mel/999999.png"))),
         "image 'mel/999999.png' not found"),
    Case("score-manifest-corrupt-png", "score", DAMAGED, "the manifest names a corrupt PNG",
         lambda b: after(first_png(b).write_bytes(NOISE), score(b)), "unreadable image"),
    Case("score-manifest-wrong-size-png", "score", WRONG, "a PNG of another size than the set's",
         lambda b: image(b, first_png(b).relative_to(b.tmp), size=20) and score(b),
         "is 20x20 px, the set's images are 16x16"),
    Case("score-manifest-unknown-class", "score", WRONG, "a manifest row of a class the set does not have",
         lambda b: score(b, syn=b.manifest(lambda row: row.update({"class": "wart"}))),
         "class 'wart' is not one of the set's classes"),
    Case("score-manifest-escape", "score", ESCAPE, "a manifest row naming ../../outside.png",
         lambda b: image(b, "outside.png") and score(b, syn=b.manifest(lambda row: row.update(
             file="../../outside.png"))), "is outside the synthetic set's folder"),
    Case("score-manifest-symlink", "score", ESCAPE, "a manifest row naming a link that points outside",
         lambda b: (b.syn / "mel" / "link.png").symlink_to(image(b, "outside.png")) or score(
             b, syn=b.manifest(lambda row: row.update(file="mel/link.png"))), "is outside the synthetic set's folder"),
    Case("score-binary-manifest", "score", DAMAGED, "a binary manifest.csv",
         lambda b: after((b.syn / "manifest.csv").write_bytes(NOISE), score(b)), "is not a readable UTF-8 CSV file"),
    Case("score-incomplete-set", "score", KILL, "a set folder without its manifest",
         lambda b: (b.syn / "manifest.csv").unlink() or score(b), "is not a complete synthetic set"),
    Case("score-out-exists", "score", OVERWRITE, "--out names an existing file",
         lambda b: b.file("s.json", "{}") and score(b), "already exists (use --force to overwrite)"),
    # -- train-classifier -------------------------------------------------------------------------------------
    Case("clf-cut-provenance", "train-classifier", KILL, "--synthetic whose synthetic.json is cut short",
         lambda b: b.cut(b.syn / "synthetic.json") and train_classifier(b, "--synthetic", b.syn, "--mix", 0.2),
         "the provenance is not valid JSON"),
    Case("clf-synthetic-zero-byte-npz", "train-classifier", DAMAGED, "--synthetic is a zero-byte .npz",
         lambda b: train_classifier(b, "--synthetic", b.file("s.npz", b""), "--mix", 0.2),
         "is not a readable synthetic set"),
    Case("clf-synthetic-of-other-data", "train-classifier", WRONG, "--synthetic from a GAN of another set",
         lambda b: train_classifier(b, "--synthetic", provenance(b, fingerprint="0" * 64), "--mix", 0.2),
         "synthetic set refused"),
    Case("clf-teacher-zero-byte", "train-classifier", DAMAGED, "--teacher is a zero-byte file",
         lambda b: train_classifier(b, "--teacher", b.file("t.pt", b"")), "is not a readable checkpoint"),
    Case("clf-teacher-edited-model-args", "train-classifier", DAMAGED, "--teacher with edited model_args",
         lambda b: train_classifier(b, "--teacher", b.checkpoint(b.clf / "best.pt", edit_args(model="resnet18"))),
         "its model_args do not rebuild its model"),
    Case("clf-out-holds-run", "train-classifier", OVERWRITE, "--out holds a run",
         lambda b: train_classifier(b, out=b.clf), "holds another run"),
    Case("clf-resume-cut-latest", "train-classifier", KILL, "--resume from a latest.pt cut short",
         lambda b: b.cut(b.clf / "latest.pt") and train_classifier(b, "--resume", out=b.clf),
         "is not a readable checkpoint"),
    Case("clf-disk-full", "train-classifier", FULL, "the disk fills at the first checkpoint",
         lambda b: b.disk_full("torch.save") or train_classifier(b), "No space left on device", True),
    Case("clf-data-cut", "train-classifier", KILL, "--data cut short",
         lambda b: train_classifier(b, data=b.cut(b.data)), "File is not a zip file"),
    Case("clf-data-labels-outside", "train-classifier", WRONG, "--data with labels past the class list",
         lambda b: train_classifier(b, data=b.npz(labels=np.full(200, 9))), "label(s) outside the 7 classes"),
    # -- evaluate ---------------------------------------------------------------------------------------------
    Case("eval-zero-byte-checkpoint", "evaluate", DAMAGED, "a zero-byte checkpoint",
         lambda b: evaluate(b, checkpoint=b.file("c.pt", b"")), "is not a readable checkpoint"),
    Case("eval-edited-model-args", "evaluate", DAMAGED, "model_args edited (another network)",
         lambda b: evaluate(b, checkpoint=b.checkpoint(b.clf / "best.pt", edit_args(model="resnet18"))),
         "its model_args do not rebuild its model"),
    Case("eval-model-args-lacking-task", "evaluate", DAMAGED, "model_args without the task",
         lambda b: evaluate(b, checkpoint=b.checkpoint(b.clf / "best.pt", lambda s: s["model_args"].pop("task"))),
         "its model_args do not rebuild its model ('task')"),
    Case("eval-out-exists", "evaluate", OVERWRITE, "--out names an existing file",
         lambda b: b.file("m.json", "{}") and evaluate(b), "already exists (use --force to overwrite)"),
    Case("eval-out-is-folder", "evaluate", DAMAGED, "--out names a folder (with --force)",
         lambda b: (b.tmp / "m.json").mkdir() or evaluate(b, "--force"), "is a folder, where a file is to be written"),
    Case("eval-out-read-only", "evaluate", DAMAGED, "--out in a read-only folder",
         lambda b: evaluate(b, out=b.read_only(b.tmp / "ro") / "m.json"), "Permission denied"),
    Case("eval-disk-full", "evaluate", FULL, "the disk fills while metrics.json is written (--force)",
         lambda b: b.file("m.json", "{}") and b.disk_full() or evaluate(b, "--force"), "No space left on device"),
    Case("eval-external-zero-byte-image", "evaluate", DAMAGED, "an external set with a zero-byte image",
         lambda b: evaluate(b, "--source", "imagefolder", "--root", folder_with(b, "z.png", lambda p: p.write_bytes(
             b""))), "unreadable image(s)"),
    Case("eval-external-unknown-class", "evaluate", WRONG, "an external set with a class the model never saw",
         lambda b: after((b.folder / "nv").rename(b.folder / "wart"),
                         evaluate(b, "--source", "imagefolder", "--root", b.folder)), "class(es) wart"),
    Case("eval-data-cut", "evaluate", KILL, "--data cut short",
         lambda b: evaluate(b, data=b.cut(b.data)), "File is not a zip file"),
    # -- explain ----------------------------------------------------------------------------------------------
    Case("explain-missing-image", "explain", DAMAGED, "an image that does not exist",
         lambda b: explain(b, b.tmp / "none.png"), "image not found"),
    Case("explain-zero-byte-image", "explain", DAMAGED, "a zero-byte image",
         lambda b: explain(b, b.file("z.png", b"")), "unreadable image"),
    Case("explain-float-image", "explain", WRONG, "a 32-bit float TIFF",
         lambda b: explain(b, image(b, "d.tif", mode="F", dtype=np.float32)), "image mode F is not supported"),
    Case("explain-zero-byte-checkpoint", "explain", DAMAGED, "a zero-byte checkpoint",
         lambda b: explain(b, image(b, "x.png"), checkpoint=b.file("c.pt", b"")), "is not a readable checkpoint"),
    Case("explain-edited-model-args", "explain", DAMAGED, "model_args edited (more heads)",
         lambda b: explain(b, image(b, "x.png"), checkpoint=b.checkpoint(b.clf / "best.pt", lambda s: s[
             "model_args"]["heads"].update({k: v + 1 for k, v in s["model_args"]["heads"].items()}))),
         "its model_args do not rebuild its model"),
    Case("explain-overlay-exists", "explain", OVERWRITE, "an overlay of that name exists",
         lambda b: b.file("out/x_gradcam.png", b"old") and explain(b, image(b, "x.png")), "already exists"),
    Case("explain-out-is-file", "explain", DAMAGED, "--out is a file",
         lambda b: b.file("out", "x") and explain(b, image(b, "x.png")), "exists and is not a folder"),
    Case("explain-disk-full", "explain", FULL, "the disk fills while overlays are written (--force)",
         lambda b: b.file("out/x_gradcam.png", b"old") and b.disk_full() or explain(b, image(b, "x.png"),
                                                                                  extra=["--force"]),
         "No space left on device"),
    # -- compare ----------------------------------------------------------------------------------------------
    Case("compare-unknown-arm", "compare", DAMAGED, "an arm no one knows", lambda b: compare(b, arms=["wat"]),
         "unknown arm 'wat'"),
    Case("compare-data-zero-byte", "compare", DAMAGED, "data is a zero-byte file",
         lambda b: compare(b, data=b.file("z.npz", b"")), "is not a readable prepared set"),
    Case("compare-damaged-done", "compare", KILL, "a finished run's done.json damaged since",
         lambda b: b.file("out/runs/none_seed0/done.json", '{"arm": "no') and compare(b),
         "done.json is damaged", True),
    Case("compare-binary-manifest", "compare", DAMAGED, "the synthetic set's manifest is binary",
         lambda b: after((b.syn / "manifest.csv").write_bytes(NOISE), compare(b, arms=["mix:0.3"],
                                                                             synthetic=str(b.syn))),
         "is not a readable UTF-8 CSV file"),
    Case("compare-gan-run-missing", "compare", DAMAGED, "gan_run names no run",
         lambda b: compare(b, arms=["mix:0.3"], gan_run=str(b.tmp / "none")), "checkpoint not found"),
    Case("compare-set-of-other-data", "compare", WRONG, "a synthetic set whose GAN saw another prepared set",
         lambda b: compare(b, arms=["mix:0.3"], synthetic=str(provenance(b, fingerprint="0" * 64))),
         "synthetic set refused", True),
    Case("compare-config-binary", "compare", DAMAGED, "--config is a binary file",
         lambda b: ["compare", "--config", b.file("c.yaml", NOISE), "--out", b.out], "is not valid YAML"),
    Case("compare-out-is-file", "compare", DAMAGED, "--out is a file",
         lambda b: b.file("out", "x") and compare(b), "a file stands where a folder is needed"),
    # -- compare resumes only what its config trains; tune's study and outputs (issue #39) ---------------------
    Case("compare-resumed-epochs-changed", "compare", WRONG, "a finished comparison resumed with other epochs",
         lambda b: compare(b, out=b.copy("cmp"), arms=["oversample"], epochs=2), "epochs differs"),
    Case("compare-resumed-data-changed", "compare", WRONG, "a finished comparison resumed on another prepared set",
         lambda b: compare(b, data=b.npz(images=255 - np.load(b.stock / "toy16.npz")["images"]), out=b.copy("cmp"),
                           arms=["oversample"]), "data differs"),
    Case("compare-resumed-old-run-lr-changed", "compare", WRONG,
         "a run finished before runs recorded their recipe, resumed with another lr",
         lambda b: compare(b, out=without_recipe(b), arms=["oversample"], lr=0.01), "lr differs"),
    Case("compare-synthetic-made-otherwise", "compare", WRONG, "OUT/synthetic made with other synth_* settings",
         lambda b: b.copy("syn", "out/synthetic") and compare(b, arms=["mix:0.3"], gan_run=str(b.gan), synth_n=70),
         "synth_distribution, synth_n differ"),
    Case("compare-report-not-its-own", "compare", OVERWRITE, "--out holds a hand-written report.md",
         lambda b: b.file("out/report.md", "# mine\n") and compare(b), "holds report.md"),
    Case("compare-config-not-its-own", "compare", OVERWRITE, "--out holds a hand-written config.yaml",
         lambda b: b.file("out/config.yaml", "arms: [none]\n") and compare(b), "holds config.yaml"),
    Case("compare-results-not-its-own", "compare", OVERWRITE, "--out holds a hand-written results.csv",
         lambda b: b.file("out/results.csv", "arm,bma\n") and compare(b), "holds results.csv"),
    Case("compare-shard-superscript", "compare", DAMAGED, "--shard \u00b2/3 (a digit int() refuses)",
         lambda b: compare(b) + ["--shard", "\u00b2/3"], "--shard looks like K/N"),
    Case("compare-cut-predictions", "compare", KILL, "a finished run's predictions cut short",
         lambda b: b.cut(b.copy("cmp") / "runs/oversample_seed0/test_predictions.npz") and compare(
             b, out=b.tmp / "cmp", arms=["oversample"]), "is not a readable predictions file"),
    Case("compare-done-not-a-record", "compare", DAMAGED, "a finished run's done.json is JSON of another shape",
         lambda b: b.copy("cmp") and b.file("cmp/runs/oversample_seed0/done.json", '{"arm": "oversample"}')
         and compare(b, out=b.tmp / "cmp", arms=["oversample"]), "not a run's record"),
    Case("tune-study-db-not-sqlite", "tune", DAMAGED, "OUT/study.db is a binary file of another kind",
         lambda b: b.file("out/study.db", NOISE) and tune(b), "is not a SQLite database"),
    Case("tune-study-db-cut", "tune", KILL, "OUT/study.db cut short",
         lambda b: sqlite_db(b, "out/study.db", ("studies", "version_info"), keep=0.3) and tune(b),
         "study.db is not a readable study database"),
    Case("tune-study-db-of-another-program", "tune", WRONG, "OUT/study.db is another program's SQLite database",
         lambda b: sqlite_db(b, "out/study.db", ("notes",)) and tune(b), "is another program's database"),
    Case("tune-study-db-is-folder", "tune", DAMAGED, "OUT/study.db is a folder",
         lambda b: (b.out / "study.db").mkdir(parents=True) or tune(b), "is a folder, where the study database"),
    Case("tune-space-infinite-end", "tune", DAMAGED, "a search range up to .inf",
         lambda b: tune(b, "{epochs: {low: 1, high: .inf}}"), "high must be a finite number"),
    Case("tune-space-infinite-step", "tune", DAMAGED, "a search step of .inf",
         lambda b: tune(b, "{lr: {low: 1.0e-3, high: 1.0e-2, step: .inf}}"), "step must be a finite number"),
    Case("tune-best-yaml-not-its-own", "tune", OVERWRITE, "--out holds a hand-written best.yaml",
         lambda b: b.file("out/best.yaml", "lr: 0.1\n") and tune(b), "holds best.yaml that tune did not write"),
    Case("tune-best-yaml-edited-in-its-folder", "tune", OVERWRITE, "a best.yaml without tune's header beside its study",
         lambda b: b.file("out/study.db", b"") and b.file("out/best.yaml", "lr: 0.1\n") and tune(b),
         "holds best.yaml that tune did not write"),
    # -- numbers and YAML that no config holds (issue #39) ------------------------------------------------------
    Case("train-classifier-epochs-inf", "train-classifier", DAMAGED, "--set epochs=.inf",
         lambda b: train_classifier(b, "--set", "epochs=.inf"), "must be an integer"),
    Case("train-classifier-lr-nan", "train-classifier", DAMAGED, "--set lr=.nan",
         lambda b: train_classifier(b, "--set", "lr=.nan"), "must be a finite number"),
    Case("train-classifier-seed-past-2-64", "train-classifier", DAMAGED, "a seed past 2^64",
         lambda b: train_classifier(b, "--seed", str(2 ** 64 + 5)), "must be within"),
    Case("train-gan-alias-bomb", "train-gan", DAMAGED, "a 400-byte YAML alias bomb as --config",
         lambda b: train_gan(b, "--config", b.file("bomb.yaml", "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
             f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8)))),
         "expands to over 100,000 values"),
    Case("synthesize-seed-overflows", "synthesize", DAMAGED, "--seed 10^13 (its class seeds would overflow torch's)",
         lambda b: synthesize(b, "--seed", 10 ** 13), "--seed must be in 0.."),
    Case("synthesize-count-absurd", "synthesize", DAMAGED, "-n 1000000000000",
         lambda b: synthesize(b)[:4] + [1000000000000] + synthesize(b)[5:], "-n must be in 1..10,000,000"),
    Case("info-pixels-edited", "info", WRONG, "a prepared set whose pixels were edited, its fingerprint kept",
         lambda b: ["info", edited_pixels(b)], "changed after prepare"),
    Case("train-classifier-diverges", "train-classifier", DAMAGED, "a weight decay so large the loss becomes nan",
         lambda b: train_classifier(b, "--set", "weight_decay=1e300"), "training diverged in epoch 1", True),
    Case("prepare-color-constancy-unknown", "prepare", DAMAGED, "--color-constancy retinex (no such method)",
         lambda b: prepare(b, "--color-constancy", "retinex"), "retinex"),
    Case("evaluate-color-constancy-mismatch", "evaluate", WRONG,
         "a model of a plain set scored on a shades-of-gray set",
         lambda b: evaluate(b, data=b.npz(color_constancy=np.array("shades-of-gray"))), "shades-of-gray"),
    Case("evaluate-hair-removal-mismatch", "evaluate", WRONG, "a model of a plain set scored on a hair-removed set",
         lambda b: evaluate(b, data=b.npz(color_constancy=np.array("hair-removal"))),
         "learned from images as captured, but the evaluation set holds images with hair removed"),
    Case("prepared-preprocessing-misordered", "info", DAMAGED, "a set recording its corrections in an order "
         "prepare never runs", lambda b: ["info", b.npz(color_constancy=np.array("shades-of-gray+hair-removal"))],
         "does not know how to apply"),
    # -- intervals and operating points (issue #44) -------------------------------------------------------------
    Case("evaluate-operating-point-unknown", "evaluate", DAMAGED, "--operating-point recall=0.9",
         lambda b: evaluate(b, "--operating-point", "recall=0.9"), "sens=X or spec=X"),
    Case("evaluate-operating-point-out-of-range", "evaluate", DAMAGED, "--operating-point sens=1.5",
         lambda b: evaluate(b, "--operating-point", "sens=1.5"), "X in (0, 1]"),
    Case("evaluate-patient-level-alone", "evaluate", DAMAGED, "--patient-level max without an operating point",
         lambda b: evaluate(b, "--patient-level", "max"), "give --operating-point too"),
    # -- per-image tables (issue #39) ---------------------------------------------------------------------------
    Case("prepare-groups-csv-image-twice", "prepare", WRONG, "--groups-csv gives one image two lesion ids",
         lambda b: prepare(b, "--groups-csv", b.file("groups.csv", "image,lesion_id\nISIC_0000001,L1\n"
                                                     "ISIC_0000001,L2\n"), root=b.copy("ham")),
         "lists 1 image id(s) more than once, e.g. ISIC_0000001"),
    Case("prepare-metadata-csv-image-twice", "prepare", WRONG, "--metadata-csv lists an image twice",
         lambda b: prepare(b, "--metadata-csv", b.file("meta.csv", "image,age_approx\nISIC_0000002,40\n"
                                                       "ISIC_0000002,45\n"), root=b.copy("ham")),
         "more than once"),
    Case("prepare-metadata-age-text", "prepare", WRONG, "an age of 'abc'",
         lambda b: prepare(b, "--metadata-csv", b.file("meta.csv", "image,age_approx\nISIC_0000003,abc\n"),
                           root=b.copy("ham")), "age 'abc' of image ISIC_0000003 is not an age"),
    Case("prepare-metadata-age-negative", "prepare", WRONG, "an age of -5",
         lambda b: prepare(b, "--metadata-csv", b.file("meta.csv", "image,age_approx\nISIC_0000003,-5\n"),
                           root=b.copy("ham")), "age '-5' of image ISIC_0000003"),
    Case("prepare-metadata-age-huge", "prepare", WRONG, "an age of 1e9",
         lambda b: prepare(b, "--metadata-csv", b.file("meta.csv", "image,age_approx\nISIC_0000003,1e9\n"),
                           root=b.copy("ham")), "age '1e9' of image ISIC_0000003"),
    # -- bundle and rescore -----------------------------------------------------------------------------------
    Case("bundle-not-a-comparison", "bundle", DAMAGED, "RESULTS_DIR is not a compare folder",
         lambda b: ["bundle", b.tmp, "--out", b.out], "is not a compare folder"),
    Case("bundle-out-exists", "bundle", OVERWRITE, "--out exists",
         lambda b: b.file("out/notes.txt", "mine") and ["bundle", b.copy("cmp"), "--out", b.out],
         "already exists (use --force"),
    Case("bundle-out-is-the-comparison", "bundle", OVERWRITE, "--out is the comparison it bundles (--force)",
         lambda b: ["bundle", b.copy("cmp"), "--out", b.tmp / "cmp", "--force"], "would replace the comparison"),
    Case("rescore-not-a-bundle", "rescore", DAMAGED, "BUNDLE_DIR holds no manifest",
         lambda b: rescore(b, bundle=b.copy("clf")), "is not a gan-aug bundle"),
    Case("rescore-manifest-binary", "rescore", DAMAGED, "MANIFEST.json is a binary file",
         lambda b: rescore(b, bundle=edit_bundle(b, lambda f: (f / "MANIFEST.json").write_bytes(NOISE))),
         "MANIFEST.json is damaged"),
    Case("rescore-weights-changed", "rescore", WRONG, "a bundled best.pt changed since it was bundled",
         lambda b: rescore(b, bundle=edit_bundle(b, lambda f: flip_a_byte(f / "runs/oversample_seed0/best.pt"))),
         "does not match the bundle's manifest"),
    Case("rescore-file-planted", "rescore", WRONG, "a file added to the bundle",
         lambda b: rescore(b, bundle=edit_bundle(b, lambda f: (f / "runs/oversample_seed0/x.pt").write_bytes(b"x"))),
         "is not in the bundle's manifest"),
    Case("rescore-file-missing", "rescore", WRONG, "a bundled file deleted",
         lambda b: rescore(b, bundle=edit_bundle(b, lambda f: (f / "runs/oversample_seed0/done.json").unlink())),
         "is missing: the bundle does not match"),
    Case("rescore-manifest-escape", "rescore", ESCAPE, "the manifest lists ../outside",
         lambda b: rescore(b, bundle=edit_bundle(b, lambda f: manifest_with(f, "../outside.txt"))),
         "lists a path outside the bundle"),
    Case("rescore-weights-linked", "rescore", ESCAPE, "a bundled best.pt is a link to a file outside",
         lambda b: rescore(b, bundle=edit_bundle(b, lambda f: relink(f / "runs/oversample_seed0/best.pt"))),
         "is a link"),
    Case("rescore-unknown-classes", "rescore", WRONG, "an external set with a class the models never learned",
         lambda b: rescore(b, external=f"x=isic-csv:{b.stock / 'isic2019'}"), "never learned"),
    Case("rescore-out-in-bundle", "rescore", ESCAPE, "--out inside the bundle",
         lambda b: rescore(b, out=b.tmp / "bundle" / "report"), "lies inside the bundle"),
    Case("rescore-out-exists", "rescore", OVERWRITE, "--out exists",
         lambda b: b.file("out/notes.txt", "mine") and rescore(b), "already exists (use --force"),
    Case("rescore-external-name", "rescore", ESCAPE, "an external set named ../x",
         lambda b: rescore(b, external=f"../x=isic-csv:{b.stock / 'isic'}"), "letters, digits, - or _"),
    Case("rescore-exclude-not-an-audit", "rescore", DAMAGED, "--exclude names a binary file",
         lambda b: rescore(b, "--exclude", b.file("audit.json", NOISE)), "is not a gan-aug audit.json"),
    Case("rescore-exclude-other-prepared-set", "rescore", WRONG, "--exclude: an audit of another prepared set",
         lambda b: rescore(b, "--exclude", an_audit_of(b)), "audited another prepared set"),
    # -- audit (issue #41) --------------------------------------------------------------------------------------
    Case("audit-out-exists", "audit", OVERWRITE, "--out exists",
         lambda b: b.file("out/notes.txt", "mine") and audit(b), "already exists (use --force"),
    Case("audit-out-holds-the-data", "audit", OVERWRITE, "--out is the folder of the prepared set (--force)",
         lambda b: audit(b, "--force", out=b.data.parent), "apart from"),
    Case("audit-data-cut", "audit", KILL, "the prepared set cut short", lambda b: audit(b, data=b.cut(b.data)),
         "File is not a zip file"),
    Case("audit-features-not-lesion", "audit", DAMAGED, "--features inception",
         lambda b: audit(b, "--features", "inception"), "--features must be lesion:CLASSIFIER_CKPT"),
    Case("audit-synthetic-not-a-set", "audit", DAMAGED, "--synthetic names an empty folder",
         lambda b: audit(b, "--synthetic", b.file("empty/x.txt", "x").parent), "is not a complete synthetic set"),
    Case("audit-two-sets-one-name", "audit", WRONG, "two --synthetic sets of one name",
         lambda b: audit(b, "--synthetic", f"s={b.syn}", "--synthetic", f"s={b.syn}"), "two sets named s"),
    Case("audit-external-name", "audit", ESCAPE, "an external set named ../x",
         lambda b: audit(b, "--external", f"../x=isic-csv:{b.stock / 'isic'}"), "letters, digits, - or _"),
    # -- export and import-synthetic (issue #39) -----------------------------------------------------------------
    Case("import-labels-parent-path", "import-synthetic", ESCAPE, "a --labels row naming ../outside.png",
         lambda b: image(b, "outside.png") and labelled(b, "file,class\n../outside.png,mel\n"),
         "is outside the image folder"),
    Case("import-labels-absolute-path", "import-synthetic", ESCAPE, "a --labels row naming an absolute path",
         lambda b: labelled(b, f"file,class\n{image(b, 'outside.png')},mel\n"), "is outside the image folder"),
    Case("import-image-link-outside", "import-synthetic", ESCAPE, "an image that is a link to a file outside IMAGES",
         lambda b: after((generated(b) / "mel" / "link.png").symlink_to(image(b, "outside.png")),
                         import_synthetic(b)), "'mel/link.png' is outside the image folder"),
    Case("import-class-folder-link-outside", "import-synthetic", ESCAPE, "a class folder that links to a folder "
         "outside IMAGES", lambda b: after((generated(b) / "df").symlink_to(image(b, "elsewhere/x.png").parent),
                                           import_synthetic(b)), "'df/x.png' is outside the image folder"),
    Case("import-out-inside-images", "import-synthetic", ESCAPE, "--out inside IMAGES",
         lambda b: import_synthetic(b, out=generated(b) / "syn"), "lies inside IMAGES"),
    Case("import-out-is-images", "import-synthetic", OVERWRITE, "--out is IMAGES, a synthetic set (--force)",
         lambda b: import_synthetic(b, "--force", images=b.syn, out=b.syn), "is IMAGES"),
    Case("import-out-link", "import-synthetic", OVERWRITE, "--out is a link to a synthetic set elsewhere",
         lambda b: import_synthetic(b, out=linked(b, "out", b.syn)), "is a symbolic link"),
    Case("synthesize-out-link", "synthesize", OVERWRITE, "--out is a link to a synthetic set elsewhere",
         lambda b: synthesize(b, out=linked(b, "out", b.syn)), "is a symbolic link"),
    Case("export-out-link", "export", OVERWRITE, "--out is a link to someone's zip",
         lambda b: export_args(b, out=linked(b, "set.zip", b.file("mine.zip", "mine"))), "is a symbolic link"),
    Case("export-out-exists", "export", OVERWRITE, "the zip and its receipt exist",
         lambda b: exported(b, "stylegan2-ada", "set") and export_args(b), "already exist (use --force"),
    Case("export-out-not-an-export", "export", OVERWRITE, "--out is someone's folder (--force)",
         lambda b: b.file("mine/notes.txt", "mine") and export_args(b, "--force", out=b.tmp / "mine",
                                                                    fmt="imagefolder"), "is not a gan-aug export"),
    Case("import-class-index-negative", "import-synthetic", WRONG, "a --labels class_index of -1",
         lambda b: labelled(b, "file,class_index\nmel/seed0.png,-1\n"), "class_index '-1' is not one of 0-6"),
    Case("import-file-listed-twice", "import-synthetic", WRONG, "a --labels CSV listing one file twice",
         lambda b: labelled(b, "file,class\nmel/seed0.png,mel\nmel/seed0.png,mel\n"), "listed twice"),
    Case("import-file-under-two-classes", "import-synthetic", WRONG, "one file under two classes (as x and ./x)",
         lambda b: labelled(b, "file,class\nmel/seed0.png,mel\n./mel/seed0.png,nv\n"), "listed twice"),
    Case("import-image-link-inside", "import-synthetic", WRONG, "a link in one class folder to another's image",
         lambda b: after((generated(b) / "nv" / "again.png").symlink_to(b.tmp / "gen" / "mel" / "seed0.png"),
                         import_synthetic(b)), "listed twice, or a link to it"),
    Case("import-class-and-index-disagree", "import-synthetic", WRONG, "a row whose class and class_index differ",
         lambda b: labelled(b, "file,class,class_index\nmel/seed0.png,mel,5\n"), "disagree"),
    Case("import-receipt-class-order-edited", "import-synthetic", WRONG, "a receipt whose class order was edited",
         lambda b: import_synthetic(b, receipt=edited_receipt(b, class_names=[
             "nv", "mel", "akiec", "bcc", "bkl", "df", "vasc"])), "its class_names"),
    Case("import-receipt-counts-edited", "import-synthetic", WRONG, "a receipt whose image count was edited",
         lambda b: import_synthetic(b, receipt=edited_receipt(b, count=1)), "its count 1 is not"),
    Case("import-labels-missing", "import-synthetic", DAMAGED, "--labels names no file",
         lambda b: import_synthetic(b, "--labels", b.tmp / "none.csv"), "CSV file not found"),
    Case("export-out-dot", "export", DAMAGED, "--out .",
         lambda b: export_args(b, out=".", fmt="imagefolder"), "names no file or folder of its own"),
    Case("export-receipt-is-folder", "export", DAMAGED, "a folder stands where the receipt goes",
         lambda b: (b.tmp / "set.receipt.json").mkdir() or export_args(b),
         "where the export's receipt is to be written"),
    Case("import-receipt-cut", "import-synthetic", KILL, "a receipt cut short",
         lambda b: import_synthetic(b, receipt=b.cut(exported(b))), "is not a gan-aug export receipt"),
    Case("export-data-cut", "export", KILL, "--data cut short",
         lambda b: b.cut(b.data) and export_args(b), "File is not a zip file"),
    Case("import-disk-full", "import-synthetic", FULL, "the disk fills while the set is written (--force over "
         "an old set)", lambda b: full_after(b, import_synthetic(b, "--force", out=b.syn)), "No space left on device"),
    Case("export-disk-full", "export", FULL, "the disk fills while the zip is written (--force over an old "
         "export)", lambda b: exported(b, "stylegan2-ada", "set") and full_after(b, export_args(b, "--force")),
         "No space left on device"),
    # -- demo -------------------------------------------------------------------------------------------------
    Case("demo-out-not-empty", "demo", OVERWRITE, "--out holds files",
         lambda b: b.file("out/notes.txt", "mine") and demo(b), "is not empty (use --force"),
    Case("demo-out-is-file", "demo", DAMAGED, "--out is a file",
         lambda b: b.file("out", "x") and demo(b), "exists and is not a folder"),
    Case("demo-data-cut", "demo", KILL, "--data cut short", lambda b: demo(b, "--data", b.cut(b.data)),
         "File is not a zip file", True),
    Case("demo-data-labels-outside", "demo", WRONG, "--data with labels past the class list",
         lambda b: demo(b, "--data", b.npz(labels=np.full(200, 7))), "label(s) outside the 7 classes", True),
]
