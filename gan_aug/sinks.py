"""Training statistics: math reports scalars to a collector; only the loop hands averages to sinks.

Sinks: a JSON-lines file and TensorBoard (the only place gan-aug imports it). A non-finite value (a
diverging GAN) is never averaged in silently: the collector counts it under NonFinite/<name>, so it
shows in stats.jsonl and TensorBoard, and the loop warns on the console.
"""

import json
import math
from collections import defaultdict
from pathlib import Path

from gan_aug.fileio import write_text


class StatsCollector:
    """Accumulates named scalars between flushes and returns their means."""

    def __init__(self):
        self._sums = defaultdict(float)
        self._counts = defaultdict(int)
        self._nonfinite = defaultdict(int)

    def report(self, name, value):
        value = float(value.detach() if hasattr(value, "detach") else value)
        if math.isfinite(value):
            self._sums[name] += value
            self._counts[name] += 1
        else:
            self._nonfinite[name] += 1

    def flush(self, combine=None):
        """Means since the last flush, plus NonFinite/<name>: how many reports of <name> were NaN or inf.
        combine({name: [sum, count, non-finite count]}) returns that table summed over every process of a
        distributed run (every process flushes at the same step), so the means are the whole run's, not one
        process's slice of the batch."""
        table = {k: [self._sums[k], self._counts[k], self._nonfinite[k]]
                 for k in sorted(set(self._sums) | set(self._nonfinite))}
        if combine is not None:
            table = combine(table)
        means = {k: total / count for k, (total, count, _) in table.items() if count}
        means.update({f"{NONFINITE}/{k}": int(bad) for k, (_, _, bad) in table.items() if bad})
        self._sums.clear()
        self._counts.clear()
        self._nonfinite.clear()
        return means


NONFINITE = "NonFinite"


def nonfinite_warning(values):
    """A console line naming the statistics that went NaN/inf in `values` (a flush), or None."""
    bad = {k.split("/", 1)[1]: n for k, n in values.items() if k.startswith(NONFINITE + "/")}
    if not bad:
        return None
    listed = ", ".join(f"{name} ({n}x)" for name, n in bad.items())
    return f"warning: non-finite values in {listed}: training may be diverging (lower the learning rates?)"


class JsonlSink:
    """One JSON object per flush: {"step": ..., ["kimg": ...,] name: mean, ...}."""

    def __init__(self, path, resumed_at=None):
        """`resumed_at`: the step of the checkpoint a resumed run continues from. The rows written after it
        (and a line a kill cut short) are dropped, as the run writes them again: one row per step."""
        self.path = Path(path)
        if resumed_at is not None and self.path.is_file():
            kept = [line for line in self.path.read_text().splitlines(keepends=True) if _step(line) <= resumed_at]
            write_text(self.path, "".join(kept))

    def scalars(self, values, step, kimg=None):
        where = {"step": step} if kimg is None else {"step": step, "kimg": round(kimg, 4)}
        with open(self.path, "a") as handle:
            handle.write(json.dumps({**where, **values}) + "\n")

    def image(self, tag, image_hwc, step):
        pass

    def close(self):
        pass


def _step(line):
    """The step of one stats line; infinite for a line that is not a whole row."""
    try:
        return json.loads(line)["step"] if line.endswith("\n") else math.inf
    except (ValueError, KeyError, TypeError):
        return math.inf


class TensorBoardSink:
    def __init__(self, logdir, resumed_at=None):
        """`resumed_at`: as JsonlSink's; TensorBoard then hides what the log holds after that step."""
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(logdir), purge_step=None if resumed_at is None else resumed_at + 1)

    def scalars(self, values, step, kimg=None):
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)

    def image(self, tag, image_hwc, step):
        self.writer.add_image(tag, image_hwc, step, dataformats="HWC")

    def images(self, tag, images_nhwc, step):
        self.writer.add_images(tag, images_nhwc, step, dataformats="NHWC")

    def embedding(self, features, metadata, header, thumbnails_nhwc, tag):
        """Projector points with sprite thumbnails; thumbnails are uint8 (N, H, W, 3)."""
        import torch

        self.writer.add_embedding(torch.as_tensor(features).float(), metadata=metadata, metadata_header=header,
                                  label_img=torch.as_tensor(thumbnails_nhwc).permute(0, 3, 1, 2).float() / 255,
                                  tag=tag)

    def hparams(self, hparam_dict, metric_dict, run_name):
        self.writer.add_hparams(hparam_dict, metric_dict, run_name=run_name)

    def close(self):
        self.writer.close()


class Sinks:
    """Fan-out to several sinks."""

    def __init__(self, *sinks):
        self.sinks = sinks

    def scalars(self, values, step, kimg=None):
        for sink in self.sinks:
            sink.scalars(values, step, kimg)

    def image(self, tag, image_hwc, step):
        for sink in self.sinks:
            sink.image(tag, image_hwc, step)

    def close(self):
        for sink in self.sinks:
            sink.close()
