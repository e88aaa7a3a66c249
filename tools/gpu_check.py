"""The measurements of tools/gpu_check.sh, on one GPU: GAN, diffusion and classifier throughput, a 1-GPU torchrun
DDP smoke run, the wall time of the full HAM10000 64 px pipeline, and a 64 px diffusion model against a 64 px
StyleGAN-lite trained for the same minutes side by side, scored per class in the pipeline judge's features.
Writes OUT/results.json and OUT/results.md. `--smoke` runs every step tiny on the CPU, to check the script itself.

    python tools/gpu_check.py --out gpu_check_out [--ham ../shared/data/ham10000] [--smoke]
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from gan_aug.data.prepared import fingerprint  # noqa: E402 -- after the path, for a checkout not installed

from classifier.config import ClassifierConfig  # noqa: E402
from classifier.train import ClassifierTrainer  # noqa: E402
from gan_aug.config import build_config  # noqa: E402
from gan_aug.diffusion.config import DiffusionConfig  # noqa: E402
from gan_aug.diffusion.train import DiffusionTrainer  # noqa: E402
from gan_aug.gan.config import GanConfig  # noqa: E402
from gan_aug.gan.train import GanTrainer  # noqa: E402
from gan_aug.sinks import StatsCollector  # noqa: E402

# (name, arch, size, batch, channels, target img/s): targets from the issue (4x StyleGAN2 on an A100).
GANS = [("dcgan64", "dcgan", 64, 2048, 64, 20000), ("stylegan_lite128", "stylegan_lite", 128, 256, 64, 600),
        ("stylegan_lite256", "stylegan_lite", 256, 128, 32, 300)]
PIPELINE_TARGET_S = 15 * 60
DIFFUSION_TARGET = 3000  # img/s of the 9M-parameter 64 px UNet (configs/presets/diffusion64.yaml), bf16, compiled


def random_set(path, size, n, classes=7, seed=0):
    """A prepared set of random pixels: throughput does not depend on what the images show."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    split = np.where(np.arange(n) % 10 == 0, "val", "train")
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    np.savez(path, images=images, labels=labels, class_names=np.array([f"c{i}" for i in range(classes)]),
             split=split, group=np.arange(n).astype(str), image_id=np.arange(n).astype(str),
             source=np.array("random"), fingerprint=np.array(fingerprint(images, labels, split)))
    return path


def timed_steps(step, steps, warmup=5):
    for _ in range(warmup):
        step()
    torch.cuda.synchronize() if torch.cuda.is_available() else None
    start = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize() if torch.cuda.is_available() else None
    return time.perf_counter() - start


def gan_throughput(tmp, arch, size, batch, channels, steps, device, compile_):
    data = random_set(tmp / f"gan{size}.npz", size, max(batch * 4, 64))
    config = build_config(GanConfig, None, {"data": str(data), "out": str(tmp / f"gan_{arch}{size}"), "arch": arch,
                                            "batch_size": batch, "g_channels": channels, "d_channels": channels,
                                            "device": device, "compile": compile_, "r1_gamma": 0.05,
                                            "force": True})
    trainer, stats = GanTrainer(config, progress=False), StatsCollector()
    return steps * batch / timed_steps(lambda: trainer.train_step(stats), steps)


def diffusion_throughput(tmp, size, batch, steps, device, compile_, preset="diffusion64.yaml"):
    data = random_set(tmp / f"diffusion{size}.npz", size, max(batch * 4, 64))
    flags = {"data": str(data), "out": str(tmp / f"diffusion{size}"), "batch_size": batch, "device": device,
             "compile": compile_, "force": True}
    if size < 64:  # the smoke run's 16 px: two levels
        flags.update(channels=(8, 16), layers_per_block=1)
    config = build_config(DiffusionConfig, ROOT / "configs" / "presets" / preset, flags)
    trainer, stats = DiffusionTrainer(config, progress=False), StatsCollector()
    return steps * batch / timed_steps(lambda: trainer.train_step(stats), steps)


def generators_side_by_side(tmp, data, judge, minutes, rates, smoke, log, results, save):
    """A diffusion model and a StyleGAN-lite on the pipeline's prepared set, trained at once for `minutes` each
    (their kimg from the rates measured alone, halved: they share the GPU), then 1,000 images of each class
    sampled from each and scored against the train split in the judge's features (FD, KID, precision, recall per
    class; CAS). Each result is saved as it ends."""
    share = 0.5 * 60 * minutes / 1000
    runs = {"diffusion64": ["train-diffusion", "--config", ROOT / "configs" / "presets" / "diffusion64.yaml",
                            "--kimg", max(0.032, rates["diffusion"] * share)],
            "stylegan_lite64": ["train-gan", "--config", ROOT / "configs" / "presets" / "stylegan_lite64.yaml",
                                "--kimg", max(0.032, rates["stylegan_lite64"] * share)]}
    tiny = {"diffusion64": ["--set", "channels=8,16", "--set", "layers_per_block=1", "--set", "batch_size=16"],
            "stylegan_lite64": ["--set", "batch_size=16", "--set", "g_channels=8", "--set", "d_channels=8"]}
    side = results.setdefault("generators_64px", {})
    jobs = {}
    for name, args in runs.items():
        command = [sys.executable, "-m", "gan_aug", *map(str, args), "--data", str(data), "--out", str(tmp / name),
                   "--set", "ckpt_every=1000", "--set", "snapshot_every=1000", "--force",
                   *(tiny[name] if smoke else [])]
        log.write(f"$ {' '.join(command)}\n")
        jobs[name] = (subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True),
                      time.perf_counter())
    for name, (job, started) in jobs.items():
        output, _ = job.communicate()
        log.write(output[-3000:] + "\n")
        if job.returncode:
            raise RuntimeError(f"{name} failed:\n{output[-2000:]}")
        side[name] = {"train_s": time.perf_counter() - started, "kimg": float(runs[name][-1])}
    save()
    n = 14 if smoke else 7000
    for name in runs:
        sampling = ["--steps", 5 if smoke else 50] if name.startswith("diffusion") else []
        side[name]["synthesize_s"], _ = gan_aug("synthesize", "--checkpoint", tmp / name, "-n", n, "--distribution",
                                                "uniform", *sampling, "--out", tmp / f"syn_{name}", "--force", log=log)
        gan_aug("score", "--data", data, "--synthetic", tmp / f"syn_{name}", "--features", f"lesion:{judge}/best.pt",
                "--out", tmp / f"scores_{name}.json", "--force", *(["--no-cas"] if smoke else []), log=log)
        side[name]["scores"] = json.loads((tmp / f"scores_{name}.json").read_text())
        save()


def generator_line(name, side):
    """One results.md row of generators_side_by_side: what it trained and its overall scores."""
    scores = side.get("scores", {})
    overall, nan = scores.get("per_class", {}).get("all", {}), float("nan")
    return (f"| {name}: {side['kimg']:.0f} kimg in {side['train_s']:.0f} s | "
            f"FD {overall.get('frechet_distance', nan):.2f}, precision {overall.get('precision', nan):.3f}, recall {overall.get('recall', nan):.3f}, CAS BMA "
            f"{scores.get('cas', {}).get('bma', nan):.3f} | |")


def classifier_throughput(tmp, model, size, batch, steps, device):
    data = random_set(tmp / f"clf{size}.npz", size, batch * 4)
    config = build_config(ClassifierConfig, None, {"data": str(data), "out": str(tmp / f"clf_{model}"),
                                                   "model": model, "batch_size": batch, "device": device,
                                                   "balance": "oversample", "force": True})
    trainer = ClassifierTrainer(config, progress=False)
    order = trainer.sampler.epoch(trainer.generator)[:batch]
    trainer.sampler.epoch = lambda generator, with_synthetic=True: order  # one batch per "epoch"
    return steps * batch / timed_steps(trainer.train_one_epoch, steps)


def gan_aug(*args, launcher=None, log=None):
    """Run `gan-aug ARGS` (optionally under torchrun); (seconds, output)."""
    command = (launcher or [sys.executable, "-m", "gan_aug"]) + [str(a) for a in args]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if log:
        log.write(f"$ {' '.join(command)}\n{result.stdout[-3000:]}{result.stderr[-3000:]}\n")
    if result.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return time.perf_counter() - start, result.stdout


def pipeline(tmp, ham, smoke, log, results, save):
    """prepare -> GAN 200 kimg -> synthesize 5000 -> score -> compare 2 arms x 2 seeds, 64 px: each stage's
    seconds go into results["pipeline_64px_s"] and are saved as it ends, so a run cut off at its time limit
    keeps them; results["pipeline_source"] says whether it ran on HAM10000 or, without it, on toy images."""
    size, kimg, n, epochs = (16, 0.064, 100, 1) if smoke else (64, 200, 5000, 20)
    data, gan, syn, judge = tmp / "ham.npz", tmp / "gan", tmp / "syn", tmp / "judge"
    source = ["--source", "ham10000", "--root", ham] if ham and Path(ham).is_dir() and not smoke else \
        ["--source", "toy", "--toy-count", 300 if smoke else 10015]
    results["pipeline_source"], stages = source[1], results["pipeline_64px_s"]

    def stage(name, *args):
        stages[name], _ = gan_aug(*args, log=log)
        print(f"[gpu_check] pipeline {name}: {stages[name]:.0f} s", flush=True)
        save()

    stage("prepare", "prepare", *source, "--size", size, "--out", data, "--force")
    gan_flags = ["--config", ROOT / "configs" / "presets" / "dcgan64.yaml"] if not smoke else ["--set", "batch_size=16"]
    stage("train-gan", "train-gan", "--data", data, "--out", gan, "--kimg", kimg, *gan_flags, "--set", "ckpt_every=50",
          "--force")
    stage("synthesize", "synthesize", "--checkpoint", gan, "-n", n, "--out", syn, "--force")
    stage("judge classifier", "train-classifier", "--data", data, "--out", judge, "--epochs", epochs,
          "--balance", "oversample", "--force")
    stage("score", "score", "--data", data, "--synthetic", syn, "--features", f"lesion:{judge}/best.pt",
          "--out", tmp / "scores.json", "--force", *(["--no-cas"] if smoke else []))
    config = tmp / "compare.yaml"
    config.write_text(f"data: {data}\nsynthetic: {syn}\narms: [oversample, mix:0.3]\nseeds: [0, 1]\n"
                      f"epochs: {epochs}\n")
    stage("compare", "compare", "--config", config, "--out", tmp / "cmp")
    return data, judge


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="gpu_check_out")
    parser.add_argument("--ham", default=os.environ.get("GAN_AUG_HAM10000", str(ROOT.parent / "shared/data/ham10000")))
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU: check the script itself")
    # Off by default: compiling three GANs costs minutes of the 8-minute budget before the first timed step.
    parser.add_argument("--compile", action="store_true", help="torch.compile the GANs being timed")
    parser.add_argument("--minutes", type=float, default=4.0, help="Training minutes of the 64 px diffusion model "
                                                                   "and of the StyleGAN-lite beside it.")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = "cpu" if args.smoke else "cuda"
    results = {"machine": f"{platform.node()}, {torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu'}",
               "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"), "smoke": args.smoke, "gan_img_per_s": {}}
    results["pipeline_target_s"], results["pipeline_64px_s"] = PIPELINE_TARGET_S, {}

    def save():
        (out / "results.json").write_text(json.dumps(results, indent=2))

    def measure(name, step):
        """One measurement; a failure is recorded and the next one still runs (the GPU machine is lent once)."""
        try:
            step()
            print(f"[gpu_check {time.strftime('%H:%M:%S')}] {name}: done", flush=True)
        except Exception as error:  # noqa: BLE001 -- any failure is a finding to report, not a reason to stop
            results.setdefault("errors", {})[name] = f"{type(error).__name__}: {str(error)[-1500:]}"
            print(f"[gpu_check {time.strftime('%H:%M:%S')}] {name}: failed", flush=True)
        save()

    with tempfile.TemporaryDirectory() as tmp, open(out / "commands.log", "w") as log:
        tmp = Path(tmp)
        for name, arch, size, batch, channels, target in GANS:
            if args.smoke:
                size, batch, channels = 16, 8, 4

            def gan_rate():  # measure() calls it at once, so the loop's current values are the ones used
                rate = gan_throughput(tmp, arch, size, batch, channels, 3 if args.smoke else 30, device, args.compile)
                results["gan_img_per_s"][name] = {"img_per_s": rate, "target": target, "batch": batch}
            measure(name, gan_rate)
        rates = {}

        def diffusion_rate():  # the target is for bf16 and compiled: both on whatever --compile says
            size, batch, steps = (16, 8, 3) if args.smoke else (64, 256, 30)
            rates["diffusion"] = diffusion_throughput(tmp, size, batch, steps, device, args.compile or not args.smoke)
            results["diffusion_img_per_s"] = {"img_per_s": rates["diffusion"], "target": DIFFUSION_TARGET,
                                              "batch": batch, "compiled": args.compile or not args.smoke}
        measure("diffusion64", diffusion_rate)

        def stylegan_lite64_rate():
            size, batch, channels = (16, 8, 4) if args.smoke else (64, 128, 64)
            rates["stylegan_lite64"] = gan_throughput(tmp, "stylegan_lite", size, batch, channels,
                                                      3 if args.smoke else 20, device, args.compile)
        measure("stylegan_lite64", stylegan_lite64_rate)
        size, batch = (32, 8) if args.smoke else (224, 256)
        measure("resnet50", lambda: results.update(classifier_resnet50_224_img_per_s=classifier_throughput(
            tmp, "resnet50", size, batch, 2 if args.smoke else 20, device)))

        def ddp_smoke():
            data = random_set(tmp / "ddp.npz", 16, 64)
            gan_aug("train-gan", "--data", data, "--out", tmp / "ddp", "--kimg", 0.064, "--set", "batch_size=16",
                    "--set", f"device={device}", launcher=[sys.executable, "-m", "torch.distributed.run",
                                                           "--standalone", "--nproc_per_node=1", "-m", "gan_aug"],
                    log=log)
            results["ddp_smoke"] = "ok"
        measure("ddp_smoke", ddp_smoke)
        made = {}
        measure("pipeline", lambda: made.update(zip(("data", "judge"), pipeline(tmp, args.ham, args.smoke, log, results,
                                                                              save))))
        if made and len(rates) == 2:
            minutes = 0.05 if args.smoke else args.minutes
            measure("generators_64px", lambda: generators_side_by_side(tmp, made["data"], made["judge"], minutes,
                                                                       rates, args.smoke, log, results, save))
    lines = [f"# gpu_check {results['date']}: {results['machine']}, torch {results['torch']}", "",
             "| measurement | value | target |", "| --- | ---: | ---: |"]
    lines += [f"| {k} img/s (batch {v['batch']}) | {v['img_per_s']:.0f} | >= {v['target']} |"
              for k, v in results["gan_img_per_s"].items()]
    if "diffusion_img_per_s" in results:
        rate = results["diffusion_img_per_s"]
        lines.append(f"| diffusion64 img/s (batch {rate['batch']}, compiled {rate['compiled']}) | "
                     f"{rate['img_per_s']:.0f} | >= {rate['target']} |")
    lines += [generator_line(name, side) for name, side in results.get("generators_64px", {}).items()]
    if "classifier_resnet50_224_img_per_s" in results:
        lines.append(f"| resnet50 224 px classifier img/s | {results['classifier_resnet50_224_img_per_s']:.0f} | |")
    stages = results["pipeline_64px_s"]
    lines += [f"| pipeline: {k} (s) | {v:.0f} | |" for k, v in stages.items()]
    if stages:
        lines.append(f"| pipeline: total (s) | {sum(stages.values()):.0f} | <= {PIPELINE_TARGET_S} |")
    lines += [f"| error in {k} | {v.splitlines()[-1] if v else v} | |" for k, v in results.get("errors", {}).items()]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
