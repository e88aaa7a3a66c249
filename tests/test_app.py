"""gan-aug serve: the app driven through Gradio's Python client (classify, generate, every bad upload), and a
real headless Chromium that loads the page, uploads an image and sees the probabilities and the overlay (its
screenshot goes to samples/serve.png). Uploads stay in the app's temporary folder, which goes at stop."""

import csv
import io
import shutil
import socket
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gan_aug.app.config import ServeConfig
from gan_aug.app.ui import running
from gan_aug.config import build_config
from gan_aug.data.config import PrepareConfig
from gan_aug.data.prepare import prepare
from gan_aug.data.toy import STYLES, render

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
            SCREENSHOT.parent.mkdir(exist_ok=True)
            driver.save_screenshot(str(SCREENSHOT))
        finally:
            driver.quit()
    assert SCREENSHOT.stat().st_size > 10_000
