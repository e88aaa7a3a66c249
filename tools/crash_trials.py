"""Crash trials (issue #21): SIGKILL gan-aug commands at random moments, run them again, and check that nothing
but the work since the last checkpoint is lost.

    python tools/crash_trials.py --trials 20 [--commands train-gan,train-classifier,synthesize,compare,export,
        import-synthetic,tune] [--seed 0]

Each command runs at tiny sizes on the CPU (one thread, deterministic) in a subprocess (tools/crash_hooks.py).
An uninterrupted run first gives the reference: its final state, its length and how many writes it makes. Then
every trial starts the command afresh and kills it: odd trials inside a random one of its writes (half of a
checkpoint, PNG or .npz written, or just before an atomic rename), even trials at a random time within the
reference run's length. It then checks that every file left behind loads (no torn checkpoint, set, record or
zip is ever read, and an export's receipt describes the zip beside it or is absent), runs the same command again (with --resume for the trainers once their folder exists; no file is
touched by hand) and checks: it finishes; at most one checkpoint interval was lost; no temp or scratch file is
left; no stats row is repeated; the final state equals the reference bit for bit. Prints a table, exits 1 on
any failure. tune's unit is the trial: a kill may cost the trial it interrupts, and its final state is what must
hold of any study however it was killed (crash_commands.Tune), with equal values where the parameters match.
"""

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from crash_commands import COMMANDS, TINY_GAN, Torn

HOOKS = Path(__file__).resolve().with_name("crash_hooks.py")


def run(args, work, log, crash_at=None, count_file=None, kill_after=None, timeout=600):
    """Run `gan-aug ARGS` under the hooks; returns (exit code, seconds). kill_after: SIGKILL it then."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "",
           "CRASH_AT": str(crash_at or 0), "CRASH_COUNT": str(count_file or "")}
    started = time.perf_counter()
    with open(log, "a") as handle:
        proc = subprocess.Popen([sys.executable, str(HOOKS), *map(str, args)], cwd=work, env=env,
                                stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait(timeout=kill_after if kill_after is not None else timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, time.perf_counter() - started


def leftovers(folder):
    """Temp files of atomic writes and scratch folders of synthetic sets anywhere under the trial's folder."""
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*")
                  if p.name.endswith(".tmp") or ".partial-" in p.name or ".replaced-" in p.name)


def make_inputs(work, names):
    """The prepared toy set, and for the commands that need them a tiny GAN, an older synthetic set, an older
    export (of the val split) and another generator's images with the receipt of what it learned from."""
    from gan_aug.config import build_config
    from gan_aug.data.config import PrepareConfig
    from gan_aug.data.prepare import prepare
    from gan_aug.gan.config import GanConfig
    from gan_aug.gan.train import train_gan
    from gan_aug.synth.config import SynthConfig
    from gan_aug.synth.sample import synthesize

    inputs = {"data": work / "toy16.npz", "gan": work / "gan", "old_set": work / "old_set"}
    prepare(PrepareConfig(out=str(inputs["data"]), source="toy", size=16, toy_count=200, workers=1), progress=False)
    if {"synthesize", "compare"} & set(names):
        train_gan(build_config(GanConfig, None, {"data": str(inputs["data"]), "out": str(inputs["gan"]),
                                                 "kimg": 0.032, **TINY_GAN}), progress=False)
    if "synthesize" in names:
        synthesize(build_config(SynthConfig, None, {"checkpoints": (str(inputs["gan"]),), "n": 14, "device": "cpu",
                                                    "out": str(inputs["old_set"]), "distribution": "uniform"}),
                   progress=False)
    if {"export", "import-synthetic"} & set(names):
        inputs.update(exchange_inputs(work, inputs["data"]))
    return inputs


def exchange_inputs(work, data):
    """For export: an older export (the val split) in the place the trials' export replaces. For import-synthetic:
    an export of the train split, a stand-in generator's images (train images flipped, 5 per class) with its
    receipt, and an older import (2 per class) that the trials' import replaces."""
    from PIL import Image

    from gan_aug.config import build_config
    from gan_aug.data.config import ExportConfig, ImportConfig
    from gan_aug.data.exchange import export, import_synthetic
    from gan_aug.data.prepared import load_prepared

    inputs = {"old_export": work / "old_export", "receipt": work / "exported.receipt.json",
              "generated": work / "generated", "old_import": work / "old_import"}
    export(build_config(ExportConfig, None, {"data": str(data), "split": "val",
                                             "out": str(inputs["old_export"] / "train.zip")}))
    export(build_config(ExportConfig, None, {"data": str(data), "format": "imagefolder",
                                             "out": str(work / "exported")}))
    prepared = load_prepared(data)
    train = prepared.indices("train")
    for label, name in enumerate(prepared.class_names):
        mine = train[prepared.labels[train] == label]
        for i in range(5 if len(mine) else 0):
            folder = work / "generated" / name
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(prepared.images[mine[i % len(mine)]][::-1]).save(folder / f"seed{i:04d}.png")
    few = work / "generated_few"
    for folder in sorted(inputs["generated"].iterdir()):
        (few / folder.name).mkdir(parents=True)
        for png in sorted(folder.glob("*.png"))[:2]:
            (few / folder.name / png.name).write_bytes(png.read_bytes())
    import_synthetic(build_config(ImportConfig, None, {"images": str(few), "data": str(data), "generator": "stub-gan",
                                                       "receipt": str(inputs["receipt"]),
                                                       "out": str(inputs["old_import"])}))
    return inputs


def trial(command, folder, reference, rng, by_write):
    """One kill and re-run; returns its row (failure: None when it passed)."""
    folder.mkdir(parents=True)
    out, log = folder / "out", folder / "log.txt"
    command.setup(out)
    if by_write:
        moment = rng.randint(1, reference["writes"])
        code, _ = run(command.args(out), folder, log, crash_at=moment)
        when = f"write {moment}/{reference['writes']}"
    else:
        moment = rng.uniform(0, reference["seconds"])
        code, _ = run(command.args(out), folder, log, kill_after=moment)
        when = f"{moment:.1f}s/{reference['seconds']:.1f}s"
    row = {"when": when, "killed": code == -signal.SIGKILL, "lost": 0, "failure": None}
    try:
        if code not in (0, -signal.SIGKILL):
            raise AssertionError(f"the killed run failed by itself (exit {code}): see {log}")
        try:
            done, kept = command.inspect(out)
        except Torn as err:
            row["torn"] = True
            raise AssertionError(f"torn file read after the kill: {err}") from None
        row["lost"] = done - kept
        if row["lost"] > command.interval:
            raise AssertionError(f"lost {row['lost']} {command.unit}, more than one checkpoint interval")
        again = command.rerun(out, rng)
        code, _ = run(again, folder, log)
        if code != 0:
            raise AssertionError(f"the re-run ({' '.join(map(str, again[:1] + again[-1:]))}) failed: see {log}")
        stray = leftovers(folder)
        if stray:
            raise AssertionError(f"left behind: {', '.join(stray[:3])}")
        if command.steps(out) != reference["steps"]:
            raise AssertionError(f"stats rows {command.steps(out)} differ from the uninterrupted run's")
        if command.final(out) != reference["final"]:
            raise AssertionError("the final state differs from the uninterrupted run's")
    except AssertionError as err:
        row["failure"] = str(err)
    return row


def trials(name, inputs, work, count, rng):
    command = COMMANDS[name](inputs)
    folder = work / name
    ref_out, count_file = folder / "reference" / "out", folder / "reference" / "writes"
    ref_out.parent.mkdir(parents=True)
    command.setup(ref_out)
    code, seconds = run(command.args(ref_out), ref_out.parent, ref_out.parent / "log.txt", count_file=count_file)
    if code != 0:
        raise SystemExit(f"the uninterrupted {name} run failed: see {ref_out.parent / 'log.txt'}")
    reference = {"seconds": seconds, "writes": int(count_file.read_text()), "final": command.final(ref_out),
                 "steps": command.steps(ref_out)}
    inputs["reference"] = reference["final"]
    rows = [trial(command, folder / f"trial{i:02d}", reference, rng, by_write=i % 2 == 1) for i in range(count)]
    for i, row in enumerate(rows):
        if row["failure"]:
            print(f"  {name} trial {i} ({row['when']}): {row['failure']}", flush=True)
    return command, reference, rows


def table(results):
    header = ("command", "trials", "killed", "finished", "torn reads", "max lost", "equal to uninterrupted",
              "failures", "uninterrupted run")
    lines = [header]
    for command, reference, rows in results:
        ok = [r for r in rows if not r["failure"]]
        lines.append((command.name, len(rows), sum(r["killed"] for r in rows), len(ok),
                      sum(bool(r.get("torn")) for r in rows),
                      f"{max(r['lost'] for r in rows)} of {command.interval} {command.unit}", f"{len(ok)}/{len(rows)}",
                      len(rows) - len(ok), f"{reference['seconds']:.1f} s, {reference['writes']} writes"))
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(str(v).ljust(w) for v, w in zip(line, widths)).rstrip() for line in lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, required=True, help="Trials per command.")
    parser.add_argument("--commands", default=",".join(COMMANDS), help="Comma-separated, of: " + ", ".join(COMMANDS))
    parser.add_argument("--seed", type=int, default=0, help="Seed of the kill moments.")
    parser.add_argument("--work", help="Folder for the runs (default: a temp folder, deleted after).")
    options = parser.parse_args()
    names = [n for n in options.commands.split(",") if n]
    unknown = [n for n in names if n not in COMMANDS]
    if unknown or options.trials < 1:
        parser.error(f"unknown command(s) {', '.join(unknown)}" if unknown else "--trials must be >= 1")
    work = Path(options.work or tempfile.mkdtemp(prefix="crash-trials-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(options.seed)
    inputs = make_inputs(work, names)
    results = [trials(name, inputs, work, options.trials, rng) for name in names]
    print(table(results))
    failed = sum(r["failure"] is not None for _, _, rows in results for r in rows)
    if not options.work and not failed:
        shutil.rmtree(work)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
