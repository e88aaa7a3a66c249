"""gan-aug serve: the app driven through Gradio's Python client (classify, generate, every bad upload), and a
real headless Chromium that loads the page, uploads an image and sees the probabilities and the overlay (its
screenshot goes to the test's folder; GAN_AUG_WRITE_SAMPLES=1 writes it to samples/serve.png instead). Uploads stay in the app's temporary folder, which goes at stop (after a
kill, at the next start); the issue #39 cases: ages, seeds, the two-stage answer, sharing, concurrent uploads."""

import concurrent.futures
import csv
import io
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gan_aug.app import workdir as workdirs
from gan_aug.app.config import ServeConfig
from gan_aug.app.lesion import LesionModel
from gan_aug.app.ui import build_app, classify_handler, describe, generate_handler, running
from gan_aug.config import build_config
from gan_aug.data.config import PrepareConfig
from gan_aug.data.prepare import prepare
from gan_aug.data.toy import STYLES, render
from gan_aug.errors import UserError
from gan_aug.synth.config import MAX_SEED, SynthConfig

gradio_client = pytest.importorskip("gradio_client")
pytest.importorskip("gradio_client.exceptions")
ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = ROOT / "samples" / "serve.png"


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """A two-stage classifier of a 32 px toy set (two-stage: the page then shows every part of its answer)."""
    from classifier.config import ClassifierConfig
    from classifier.train import train_classifier

    root = tmp_path_factory.mktemp("app")
    prepare(PrepareConfig(out=str(root / "toy32.npz"), source="toy", size=32, toy_count=300, workers=1), progress=False)
    train_classifier(build_config(ClassifierConfig, None, {
        "data": str(root / "toy32.npz"), "out": str(root / "clf"), "task": "two-stage", "epochs": 6,
        "batch_size": 32, "balance": "oversample", "threads": 1}), progress=False)
    return root / "clf"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def lesion(path, size=(400, 300), mode="RGB", fmt=None):
    """A toy melanoma drawn at `size`, saved in `mode` (any size and mode: the app converts)."""
    side = max(size)
    left, top = (side - size[0]) // 2, (side - size[1]) // 2
    image = Image.fromarray(render(STYLES["mel"], side, np.random.default_rng(7))).crop(
        (left, top, left + size[0], top + size[1]))
    image.convert(mode).save(path, format=fmt)
    return path


def bad_uploads(folder):
    """name -> (file, what the page must say about it)."""
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.png").write_text("not an image at all")
    Image.new("1", (8000, 6250)).save(folder / "huge.png")  # 50 megapixels, a few kB on disk
    frames = [Image.new("RGB", (64, 64), colour) for colour in ("red", "blue")]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    frames[0].save(folder / "still.gif")
    with open(folder / "truncated.jpg", "wb") as handle:
        handle.write(lesion(io.BytesIO(), fmt="JPEG").getvalue()[:600])
    return {"empty.png": "empty (0 bytes)", "notes.png": "not an image", "huge.png": "50 megapixels",
            "anim.gif": "animated images are not accepted", "still.gif": "only JPEG and PNG",
            "truncated.jpg": "could not be read"}


@pytest.mark.slow
def test_classify_generate_and_every_bad_upload_through_the_client(classifier, toy_gan, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the app must write nothing where it is started
    config = build_config(ServeConfig, None, {"checkpoint": str(classifier), "gan": str(toy_gan),
                                              "port": free_port(), "threads": 1})
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    good = [lesion(uploads / "lesion.jpg"), lesion(uploads / "grey.png", (90, 120), "L"),
            lesion(uploads / "alpha.png", (64, 64), "RGBA")]
    with running(config) as (_, url, workdir):
        client = gradio_client.Client(url, verbose=False, download_files=str(tmp_path / "client"))
        classify = lambda path: client.predict(gradio_client.handle_file(str(path)), None, "unknown", "unknown",
                                               api_name="/classify")
        for name, message in bad_uploads(uploads).items():
            summary, bars, seen, overlay, nearest = classify(uploads / name)
            assert "Could not use this upload" in summary and message in summary, (name, summary)
            assert overlay is None and nearest == []
        for path in good:  # the server still serves, whatever the image's size and mode
            summary, bars, seen, overlay, nearest = classify(path)
            assert "Prediction:" in summary and "Malignant vs benign" in summary and "Two-stage" in summary
            probabilities = dict(bars["data"])
            assert len(probabilities) == 7 and abs(sum(probabilities.values()) - 1) < 1e-4
            assert Image.open(overlay).size == (256, 256) and len(nearest) == config.neighbours
        assert list(workdir.rglob("lesion.jpg"))  # the upload sits in the app's temporary folder ...

        status, gallery, archive = client.predict("mel", 5, 0.8, 3, api_name="/generate")
        assert "5 synthetic **mel** images" in status and len(gallery) == 5
        with zipfile.ZipFile(archive) as handle:
            names = handle.namelist()
            manifest = next(n for n in names if n.endswith("manifest.csv"))
            rows = list(csv.DictReader(io.TextIOWrapper(handle.open(manifest))))
        assert len(rows) == 5 and {r["class"] for r in rows} == {"mel"}
        assert any(n.endswith("synthetic.json") for n in names) and sum(n.endswith(".png") for n in names) == 5
        with pytest.raises(gradio_client.exceptions.AppError, match="greater than maximum value 64"):
            client.predict("mel", 1000, 1.0, 0, api_name="/generate")  # past --max-images, from a script
    assert not workdir.exists()  # ... and goes with it when the app stops
    assert sorted(p.name for p in tmp_path.iterdir()) == ["client", "uploads"]


def browser():
    """(chromium, chromedriver) of the distribution, or None."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (chromium, driver) if chromium and driver else None


@pytest.mark.skipif(browser() is None, reason="no chromium/chromedriver on PATH (.ci/run installs Debian's "
                                               "chromium and chromium-driver)")
@pytest.mark.slow
def test_a_real_browser_uploads_an_image_and_sees_probabilities_and_overlay(classifier, tmp_path):
    shot = SCREENSHOT if os.environ.get("GAN_AUG_WRITE_SAMPLES") else tmp_path / "serve.png"  # the repo stays as it was
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    chromium, chromedriver = browser()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1500"):
        options.add_argument(argument)
    config = build_config(ServeConfig, None, {"checkpoint": str(classifier), "port": free_port(), "threads": 1})
    with running(config) as (_, url, _):
        driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=chromedriver))
        try:
            driver.get(url)
            wait = WebDriverWait(driver, 120)
            assert "research tool, not a diagnostic device" in wait.until(
                lambda d: d.find_element(By.ID, "disclaimer")).text
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#upload input[type=file]"))
            driver.find_element(By.CSS_SELECTOR, "#upload input[type=file]").send_keys(
                str(lesion(tmp_path / "lesion.jpg")))
            wait.until(lambda d: ".jpg" in d.find_element(By.ID, "upload").text)  # uploaded: its name is shown
            driver.find_element(By.ID, "classify").click()
            summary = wait.until(lambda d: "Prediction:" in d.find_element(By.ID, "summary").text and
                                 d.find_element(By.ID, "summary")).text
            assert "Malignant vs benign" in summary
            wait.until(lambda d: d.execute_script(  # the overlay image is loaded and drawn
                "const i = document.querySelector('#overlay img'); return i && i.complete && i.naturalWidth > 0"))
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#probabilities canvas, #probabilities svg"))
            shot.parent.mkdir(exist_ok=True)
            driver.save_screenshot(str(shot))
        finally:
            driver.quit()
    assert shot.stat().st_size > 10_000


def untouched(component):
    """What the page sends for a field left as it loads: Gradio's number field has no empty state, its page sends
    0 for one left empty (the frontend's `value ??= 0`); other fields send their value."""
    import gradio as gr
    return 0 if isinstance(component, gr.Number) and component.value is None else component.value


@pytest.mark.slow  # a whole pipeline of its own (prepare, train, the page): the quick tier stays under 2 minutes
def test_an_empty_age_is_unknown_and_an_age_that_is_none_is_refused(ham_root, tmp_path):
    """Issue #39: the empty Age field reached a metadata model as 0 (a newborn); 1e308 or infinity gave
    "probability nan"; a negative age was taken silently."""
    from classifier.config import ClassifierConfig
    from classifier.train import train_classifier

    prepare(PrepareConfig(out=str(tmp_path / "ham.npz"), source="ham10000", root=str(ham_root), size=16, workers=1),
            progress=False)
    train_classifier(build_config(ClassifierConfig, None, {
        "data": str(tmp_path / "ham.npz"), "out": str(tmp_path / "meta"), "epochs": 1, "batch_size": 16,
        "use_metadata": True, "threads": 1}), progress=False)
    config = build_config(ServeConfig, None, {"checkpoint": str(tmp_path / "meta"), "threads": 1, "device": "cpu"})
    app = build_app(config, tmp_path)
    age = next(block for block in app.blocks.values() if str(getattr(block, "label", "")).startswith("Age"))
    model = LesionModel(config.checkpoint, "cpu", neighbours=2)
    classify = classify_handler(model, config.max_megapixels, tmp_path)
    upload = lesion(tmp_path / "lesion.png", (64, 64))
    image = Image.open(upload).convert("RGB")
    probabilities = lambda years: model.classify(image, years).probabilities

    summary, bars, *_ = classify(upload, age.preprocess(untouched(age)), "unknown", "unknown")
    assert "Prediction:" in summary
    assert dict(zip(bars["class"], bars["probability"])) == probabilities(None)  # unknown, not a newborn
    assert probabilities(None) != probabilities(0) and probabilities("") == probabilities(" ") == probabilities(None)
    summary, bars, seen, overlay, nearest = classify(upload, "45", "female", "back")
    assert "Prediction:" in summary and Image.open(overlay).size == (256, 256) and len(nearest) == 2
    for bad in ("1e308", 1e308, "inf", math.inf, -math.inf, "-3", -0.5, "121", "forty"):
        summary, bars, seen, overlay, nearest = classify(upload, bad, "unknown", "unknown")
        assert summary.startswith("**Could not use this age:**") and "not an age in years (0-120" in summary, bad
        assert bars is None and overlay is None and nearest == []
        with pytest.raises(UserError, match="not an age in years"):
            model.classify(image, bad)  # the model side refuses it too, whoever calls it


@pytest.mark.slow  # a whole pipeline of its own: the quick tier stays under 2 minutes
def test_a_two_stage_model_gives_one_answer(classifier, tmp_path):
    """Issue #39: the page said "bcc" and, beside it, "screen benign, then df". With the screen at P(malignant)
    0.475 and bcc nearly all of the malignant share, bcc (0.469) beats each benign class (0.131): the two-stage
    line must explain that prediction, not pick a class of its own."""
    import torch

    model = LesionModel(classifier, "cpu", neighbours=0)
    names = model.task.output_names
    with torch.no_grad():
        for head in model.model.heads.values():
            head.weight.zero_()
        model.model.heads["malignant"].bias.copy_(torch.tensor([0.1, 0.0]))  # P(malignant) = 1 / (1 + e^0.1)
        model.model.heads["class"].bias.copy_(torch.tensor([5.0 if name == "bcc" else 0.0 for name in names]))
    result = model.classify(Image.open(lesion(tmp_path / "lesion.png")).convert("RGB"))
    summary = describe(result, model)
    two_stage = next(line for line in summary.split("\n\n") if line.startswith("**Two-stage:**"))
    assert result.predicted == "bcc" and "Prediction: bcc" in summary
    assert "P(malignant) 0.475" in two_stage and "bcc has 0.987" in two_stage and "= 0.469" in two_stage
    assert not any(name in two_stage.replace("**", " ").split() for name in ("benign", "bkl", "df", "nv", "vasc"))
    s = result.two_stage
    assert abs(s["p_group"] * s["p_class_in_group"] - result.probabilities["bcc"]) < 1e-6


def test_a_seed_the_sampler_cannot_take_is_refused_in_words(tmp_path):
    """Issue #39: an overflowing seed printed a raw Python message (int(inf); torch's "Overflow when unpacking
    long long" for seeds past 2^63 / 1,000,003)."""
    run = generate_handler(str(tmp_path / "no-gan"), tmp_path, "cpu")
    for seed in (math.inf, -math.inf, math.nan, 1e308, 10 ** 400, 2 ** 62, MAX_SEED + 1, -1, 0.5, None, "7x", True):
        status, gallery, archive = run("mel", 1, 1.0, seed)
        assert status.startswith("**Could not generate:** the seed must be a whole number from 0 to"), seed
        assert gallery == [] and archive is None
    status, *_ = run("mel", 1, 1.0, MAX_SEED)  # the largest seed passes the check, and meets the missing GAN
    assert "the seed must" not in status and "no-gan" in status
    for seed in (2 ** 62, -1):  # the same bound for `gan-aug synthesize`
        with pytest.raises(UserError, match=f"--seed must be in 0..{MAX_SEED:,}"):
            build_config(SynthConfig, None, {"checkpoints": ("g",), "out": str(tmp_path / "s"), "seed": seed})


@pytest.mark.slow
def test_serve_binds_localhost_and_never_shares_whatever_the_environment(classifier, monkeypatch):
    """GRADIO_SHARE=True, or a Kaggle (Colab, SageMaker) kernel, made Gradio open a public gradio.live link to a
    medical model when launch() was not told share=False; GRADIO_SERVER_NAME would bind another address."""
    import gradio.networking

    tunnels = []
    monkeypatch.setattr(gradio.networking, "setup_tunnel", lambda *a, **k: tunnels.append(k) or "https://x.gradio.live")
    for key, value in {"GRADIO_SHARE": "True", "KAGGLE_KERNEL_RUN_TYPE": "Interactive",
                       "GRADIO_SERVER_NAME": "0.0.0.0"}.items():
        monkeypatch.setenv(key, value)
    config = build_config(ServeConfig, None, {"checkpoint": str(classifier), "port": free_port(), "threads": 1})
    with running(config) as (app, url, _):
        assert url.startswith("http://127.0.0.1:") and app.server_name == "127.0.0.1"
        assert app.share is False and app.share_url is None and tunnels == []


@pytest.mark.slow
def test_a_killed_server_leaves_no_folder_behind(classifier, tmp_path, monkeypatch):
    """A SIGKILL runs no clean-up: the next start deletes the folder of every server that is gone, and only
    those (a live server holds a lock on its own)."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    port = free_port()
    with open(tmp_path / "serve.log", "w") as log:
        child = subprocess.Popen([sys.executable, "-m", "gan_aug", "serve", "--checkpoint", str(classifier),
                                  "--port", str(port), "--threads", "1", "--neighbours", "0"],
                                 env={**os.environ, "TMPDIR": str(temp)}, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while "serving on" not in (tmp_path / "serve.log").read_text():
            assert child.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.5)
        (left,) = temp.glob("gan-aug-serve-*")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert left.is_dir()  # the kill left it
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    config = build_config(ServeConfig, None, {"checkpoint": str(classifier), "port": free_port(), "threads": 1,
                                              "neighbours": 0})
    with running(config) as (_, _, workdir):
        assert not left.exists() and workdir.parent == temp
        assert workdirs.sweep_stale() == [] and workdir.is_dir()  # a live server's folder stays
    # Nothing of ours, and no file at all (Gradio itself makes an empty gradio/vibe_edit_history as it starts).
    assert list(temp.glob("*gan-aug-serve-*")) == [] and [p for p in temp.rglob("*") if not p.is_dir()] == []


@pytest.mark.slow
def test_concurrent_identical_uploads_all_succeed(classifier, tmp_path):
    """Issue #39: about 1 in 50 concurrent identical uploads failed. Gradio wrote each output array to a file
    named by its content hash, so identical requests rewrote the same file while a client was reading it (an
    empty download); each request now gets files of its own."""
    config = build_config(ServeConfig, None, {"checkpoint": str(classifier), "port": free_port(), "threads": 1})
    upload = lesion(tmp_path / "lesion.jpg")
    with running(config) as (_, url, _):
        def one(i):
            client = gradio_client.Client(url, verbose=False, download_files=str(tmp_path / f"client{i}"))
            try:
                summary, bars, seen, overlay, nearest = client.predict(
                    gradio_client.handle_file(str(upload)), "", "unknown", "unknown", api_name="/classify")
                for path in [seen, overlay, *(n["image"] for n in nearest)]:
                    Image.open(path).load()
                return "ok" if "Prediction:" in summary and len(nearest) == config.neighbours else summary
            except Exception as err:  # noqa: BLE001 - every failure is counted and shown
                return f"{type(err).__name__}: {err}"

        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            results = list(pool.map(one, range(24)))
    assert [r for r in results if r != "ok"] == []
