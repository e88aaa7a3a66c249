"""`gan-aug serve`: the Gradio page (Classify; Generate with --gan) on 127.0.0.1, and the server around it.

Every upload and every file the app makes lands in one temporary folder, created at start and deleted at stop
(or, after a kill, at the next start: see workdir.py), so nothing of a session persists. A bad upload is answered
on the page and the server keeps serving. The server listens on 127.0.0.1 and never opens a public link.
"""

import contextlib
import os
import shutil
import signal
import uuid
from pathlib import Path

import pandas as pd
from PIL import Image

from gan_aug.app import workdir as workdirs
from gan_aug.app.config import HOST
from gan_aug.app.gallery import generate, read_seed
from gan_aug.app.lesion import UNKNOWN, LesionModel, long_name, read_age
from gan_aug.app.uploads import read_upload
from gan_aug.errors import UserError
from gan_aug.runtime import resolve_device, use_threads
from gan_aug.synth.config import MAX_SEED
from gan_aug.synth.sample import open_source

DISCLAIMER = ("**A research tool, not a diagnostic device.** These models were trained to study data augmentation "
              "on public dermoscopy sets; they are not validated for clinical use. Do not use them to diagnose, "
              "treat or triage anyone. Uploads stay in a temporary folder on this machine and are deleted when the "
              "server stops.")
MAX_UPLOAD = "200mb"  # the byte limit in front of read_upload's pixel limit
FONTS = ["ui-sans-serif", "system-ui", "sans-serif"]  # no web fonts: the page loads offline


def describe(result, model):
    """The prediction in words: the top class, the malignancy risk, the two-stage steps."""
    p = result.probabilities[result.predicted]
    lines = [f"**Prediction: {result.predicted}** ({long_name(result.predicted)}), probability {p:.3f}"]
    if result.malignant_risk is not None:
        lines.append(f"**Malignant vs benign:** {result.malignant_risk:.3f} malignant, "
                     f"{1 - result.malignant_risk:.3f} benign")
    if result.two_stage:  # the prediction's own two factors: one answer, not a second opinion
        s = result.two_stage
        lines.append(f"**Two-stage:** the screen gives P({s['group']}) {s['p_group']:.3f}; within the {s['group']} "
                     f"classes {s['class']} has {s['p_class_in_group']:.3f}; together {s['p_group']:.3f} x "
                     f"{s['p_class_in_group']:.3f} = {p:.3f}, the highest of all classes")
    if model.notice:
        lines.append(model.notice)
    return "\n\n".join(lines)


def save_pngs(workdir, images):
    """`images` ((H, W, 3) uint8 each) as PNGs in a new folder of `workdir`; their paths. Handed to Gradio as
    arrays, it would write each to a path named after its content hash: two identical requests would write the
    same file while a browser reads it, and one in ~50 concurrent identical uploads got an empty image. A file
    of its own per request is written once and never rewritten."""
    folder = Path(workdir) / f"classify-{uuid.uuid4().hex}"
    folder.mkdir()
    paths = []
    for i, image in enumerate(images):
        paths.append(str(folder / f"{i}.png"))
        Image.fromarray(image).save(paths[-1], format="PNG")
    return paths


def classify_handler(model, max_megapixels, workdir):
    def classify(upload, age, sex, site):
        """An upload -> (summary, probability bars, input, Grad-CAM overlay, nearest training images)."""
        try:
            years = read_age(age)
        except UserError as err:
            return f"**Could not use this age:** {err}", None, None, None, []
        try:
            result = model.classify(read_upload(upload, max_megapixels), years, sex, site)
        except UserError as err:
            return f"**Could not use this upload:** {err}", None, None, None, []
        bars = pd.DataFrame({"class": list(result.probabilities), "probability": list(result.probabilities.values())})
        seen, overlay, *nearest = save_pngs(workdir, [result.image, result.overlay,
                                                      *(image for image, _ in result.neighbours)])
        return (describe(result, model), bars, seen, overlay,
                [(path, caption) for path, (_, caption) in zip(nearest, result.neighbours)])
    return classify


def generate_handler(gan, workdir, device):
    def run(class_name, count, truncation, seed):
        """(summary, gallery, zip file) of `count` synthetic images of one class (the slider's range, which
        Gradio enforces for API clients too, keeps count within --max-images)."""
        try:
            images, archive = generate(gan, class_name, count, truncation, seed, workdir, device)
        except UserError as err:
            return f"**Could not generate:** {err}", [], None
        return (f"{len(images)} synthetic **{class_name}** images (seed {read_seed(seed)}, truncation "
                f"{truncation:g}); the zip holds them with manifest.csv and synthetic.json",
                [str(path) for path in images], str(archive))
    return run


def build_app(config, workdir):
    """The page for `config` (a ServeConfig); `workdir` is the session's temporary folder."""
    import gradio as gr  # here, not at the top: the handlers above need none of its 5 s import

    device = resolve_device(config.device)
    model = LesionModel(config.checkpoint, device, config.neighbours)
    gan_classes = list(open_source(config.gan, device).class_names) if config.gan else []
    metadata = model.vocab is not None
    with gr.Blocks(title="gan-aug: lesion classifier (research tool)", analytics_enabled=False) as app:
        gr.Markdown("# gan-aug: skin-lesion classifier" + (" and GAN" if config.gan else ""))
        gr.Markdown(DISCLAIMER, elem_id="disclaimer")
        with gr.Tab("Classify"):
            with gr.Row():
                with gr.Column():
                    upload = gr.File(label="Lesion image (JPEG or PNG, any size)", type="filepath", elem_id="upload")
                    # Text, not gr.Number: Gradio's number field has no empty state (its page sends 0 for an
                    # empty one), and a metadata model must see "unknown", not a newborn.
                    age = gr.Textbox(label="Age in years (optional: empty means unknown)", value="",
                                     placeholder="unknown", visible=metadata, elem_id="age")
                    sex = gr.Dropdown([UNKNOWN, "female", "male"], value=UNKNOWN, label="Sex", visible=metadata)
                    site = gr.Dropdown(model.sites, value=UNKNOWN, label="Anatomical site", visible=metadata)
                    button = gr.Button("Classify", variant="primary", elem_id="classify")
                with gr.Column():
                    summary = gr.Markdown(elem_id="summary")
                    bars = gr.BarPlot(x="class", y="probability", y_lim=[0, 1], sort="-y", label="Class probabilities",
                                      elem_id="probabilities")
            with gr.Row():
                seen = gr.Image(label="What the model sees", format="png", interactive=False, elem_id="input")
                overlay = gr.Image(label="Grad-CAM of the predicted class", format="png", interactive=False,
                                   elem_id="overlay")
            nearest = gr.Gallery(label="Nearest training images (the model's feature space)", format="png", columns=6,
                                 height=220, elem_id="neighbours")
            # One request at a time whatever GRADIO_DEFAULT_CONCURRENCY_LIMIT says: Grad-CAM hooks the shared model.
            button.click(classify_handler(model, config.max_megapixels, workdir), [upload, age, sex, site],
                         [summary, bars, seen, overlay, nearest], api_name="classify", concurrency_limit=1)
        if config.gan:
            with gr.Tab("Generate"):
                with gr.Row():
                    with gr.Column():
                        name = gr.Dropdown(gan_classes, value=gan_classes[0], label="Class")
                        count = gr.Slider(1, config.max_images, value=min(16, config.max_images), step=1, label="Count")
                        truncation = gr.Slider(0.1, 1.0, value=1.0, step=0.05, label="Truncation (1 = none)")
                        # No precision: Gradio's own rounding fails on inf or nan with a raw message; generate()
                        # checks the seed and says what it takes.
                        seed = gr.Number(value=0, label=f"Seed (0 to {MAX_SEED:,})")
                        go = gr.Button("Generate", variant="primary", elem_id="generate")
                    with gr.Column():
                        status = gr.Markdown(elem_id="generated")
                        archive = gr.File(label="Download (zip with manifest)")
                gallery = gr.Gallery(label="Synthetic images", format="png", columns=8, elem_id="gallery")
                go.click(generate_handler(config.gan, workdir, str(device)), [name, count, truncation, seed],
                         [status, gallery, archive], api_name="generate", concurrency_limit=1)
    return app


# Gradio's launch() reads these when an argument is left out; every one is given, so no environment widens the
# app: share=None means "share" under GRADIO_SHARE=True or in Colab, Kaggle or SageMaker (a public gradio.live link
# to a medical model); GRADIO_SERVER_NAME (and, under GRADIO_SSR_MODE, GRADIO_NODE_SERVER_NAME) would bind another
# address; GRADIO_MCP_SERVER adds an MCP endpoint; GRADIO_ALLOWED_PATHS serves more folders (a non-empty list
# wins over it: the app's own folder, served anyway).
def launch_options(config, workdir):
    import gradio as gr

    return dict(share=False, server_name=HOST, server_port=config.port, ssr_mode=False, node_server_name=HOST,
                mcp_server=False, allowed_paths=[str(workdir)], inbrowser=False, prevent_thread_lock=True,
                quiet=True, show_error=True, max_file_size=MAX_UPLOAD,
                theme=gr.themes.Default(font=FONTS, font_mono=FONTS))


@contextlib.contextmanager
def running(config):
    """Start the app in the background on HOST:config.port; yields (app, url, its temporary folder); at exit, stop
    it and delete that folder (uploads, outputs and zips with it), as well as any a killed server left."""
    use_threads(config.threads)
    workdirs.sweep_stale()
    workdir, lock = workdirs.claim()
    saved = {key: os.environ.get(key) for key in ("GRADIO_TEMP_DIR", "GRADIO_ANALYTICS_ENABLED")}
    os.environ.update(GRADIO_TEMP_DIR=str(workdir), GRADIO_ANALYTICS_ENABLED="False")  # read as the app starts
    app = None
    try:
        app = build_app(config, workdir)
        try:
            app.launch(**launch_options(config, workdir))
        except OSError as err:  # the port is taken
            raise UserError(f"cannot serve on {HOST}:{config.port}: {str(err).splitlines()[0]}") from None
        except ValueError as err:  # a notebook whose kernel cannot reach localhost: Gradio wants a public link
            if "shareable link" not in str(err):
                raise
            raise UserError(f"{HOST}:{config.port} is not reachable here, and gan-aug serve never opens a public "
                            "link: run it on a machine whose browser can reach 127.0.0.1") from None
        yield app, f"http://{HOST}:{config.port}/", workdir
    finally:
        if app is not None:
            app.close(verbose=False)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(workdir, ignore_errors=True)
        os.close(lock)


def interrupt(_signum, _frame):
    raise KeyboardInterrupt


def serve(config):
    """Serve until Ctrl-C or SIGTERM (both end in `running`'s clean-up, so the temporary folder goes too; a shell
    starts background jobs with SIGINT ignored, hence both handlers)."""
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    with running(config) as (app, url, _):
        print(f"serving on {url} (127.0.0.1 only); Ctrl-C stops it and deletes its temporary folder", flush=True)
        app.block_thread()  # returns on KeyboardInterrupt
