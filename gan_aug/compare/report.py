"""The compare report: results.csv (arm x seed x split), report.md with the headline, PNG plots, hparams."""

import csv
from pathlib import Path

import numpy as np

from classifier.intervals import MIN_SUBGROUP_N
from classifier.metrics import save_confusion_png
from gan_aug.compare.arms import draws_synthetic, is_generative, split_distill, synthetic_set_name
from gan_aug.compare.summary import predicted_shares
from gan_aug.fileio import atomic_write, write_text
from gan_aug.sinks import TensorBoardSink

RARE_CLASSES_SHOWN = 3


def rare_classes(facts, count=RARE_CLASSES_SHOWN):
    """The `count` classes with the fewest train images (HAM10000: df, vasc, akiec), rarest first."""
    order = sorted(range(len(facts.class_names)), key=lambda c: (facts.train_counts[c], facts.class_names[c]))
    return [facts.class_names[c] for c in order[:count]]


def write_report(config, facts, records, summary, splits, into=None, heading=None):
    """results.csv, the plots, TensorBoard hparams and report.md of `splits` (the first one is the main
    evaluation: recall plot, confusions, rare classes, subgroups) into `into` (default config.out)."""
    out = Path(into or config.out)
    write_results_csv(out / "results.csv", config, records, ["val"] + list(splits))
    plots = {"bma": "bma_ci.png", "recall": "recall_per_class.png"}
    plot_bma(summary, splits, out / plots["bma"])
    plot_recall(summary["splits"][splits[0]], out / plots["recall"], splits[0])
    confusions = plot_confusions(config, records, out, splits[0])
    write_hparams(config, records, out / "tb")
    write_text(out / "report.md", report_markdown(config, facts, summary, splits, plots, confusions,
                                                  subgroup_table(config, records, splits[0]), heading))


def subgroup_table(config, records, split):
    """Markdown lines: each arm's BMA within each subgroup (sex, age band, site; evaluate's metrics.json), mean
    over seeds; none when the set has no metadata. A reviewer's question: does a gain hold in every group?"""
    subgroups = lambda arm, seed: records[(arm, seed)]["splits"][split].get("subgroups") or {}
    first = subgroups(config.arms[0], config.seeds[0])
    if not first:
        return []
    lines = [f"## Subgroups ({split} BMA, mean over seeds; in brackets the mean of each seed's 95% interval; "
             f"a subgroup under {MIN_SUBGROUP_N} images is too small to score)", "",
             "| subgroup | n | " + " | ".join(config.run_arms()) + " |",
             "|" + " --- |" * (2 + len(config.run_arms()))]
    for attribute, rows in first.items():
        for value, row in rows.items():
            if row.get("too_small"):
                lines.append(f"| {attribute}={value} | {row['n']} | " + " | ".join(
                    ["too small"] * len(config.run_arms())) + " |")
                continue
            cells = []
            for a in config.run_arms():
                rows_of_seeds = [subgroups(a, s).get(attribute, {}).get(value, {}) for s in config.seeds]
                bmas = [np.nan if r.get("bma") is None else r["bma"] for r in rows_of_seeds]
                cis = [r.get("bma_ci") for r in rows_of_seeds]
                # the interval of one seed's model is the set's sampling error; seeds add their own spread
                ci = (f" [{np.mean([c[0] for c in cis]):.3f}, {np.mean([c[1] for c in cis]):.3f}]"
                      if all(cis) else "")
                cells.append(f"{np.mean(bmas):.3f}{ci}")
            lines.append(f"| {attribute}={value} | {row['n']} | " + " | ".join(cells) + " |")
    return lines + [""]


def write_results_csv(path, config, records, splits):
    class_names = records[(config.arms[0], config.seeds[0])]["splits"][splits[-1]]["class_names"]
    columns = ["arm", "seed", "split", "bma", "accuracy", "macro_f1", "auc_macro", "best_epoch"] + \
        [f"recall_{c}" for c in class_names] + [f"predicted_share_{c}" for c in class_names] + \
        [f"true_share_{c}" for c in class_names]
    with atomic_write(path, "w") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        for (arm, seed), record in records.items():
            for split in splits:
                m = record["splits"][split]
                predicted, true = predicted_shares(m)
                row = {"arm": arm, "seed": seed, "split": split, "best_epoch": record["best_epoch"],
                       **{k: f"{m[k]:.6f}" for k in ("bma", "accuracy", "macro_f1", "auc_macro")},
                       **{f"recall_{c}": f"{r['recall']:.6f}" for c, r in m["per_class"].items()},
                       **{f"predicted_share_{c}": f"{v:.6f}" for c, v in predicted.items()},
                       **{f"true_share_{c}": f"{v:.6f}" for c, v in true.items()}}
                writer.writerow(row)


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_bma(summary, splits, path):
    plt = _plt()
    fig, axes = plt.subplots(1, len(splits), figsize=(5 * len(splits), 3.8), squeeze=False)
    for ax, split in zip(axes[0], splits):
        rows = summary["splits"][split]
        arms = list(rows)
        means = np.array([rows[a]["bma_mean"] for a in arms])
        lows = means - np.array([rows[a]["bma_ci"][0] for a in arms])
        highs = np.array([rows[a]["bma_ci"][1] for a in arms]) - means
        colours = ["tab:orange" if is_generative(a) else "tab:grey" if draws_synthetic(a) else "tab:blue"
                   for a in arms]
        ax.bar(range(len(arms)), means, yerr=[lows, highs], color=colours, capsize=3)
        ax.set_xticks(range(len(arms)), arms, rotation=40, ha="right")
        ax.set_ylabel("BMA, mean over seeds (95% CI)")
        ax.set_title(split)
        ax.set_ylim(max(0, means.min() - 0.1), min(1, means.max() + 0.08))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_recall(rows, path, split):
    plt = _plt()
    arms = list(rows)
    classes = list(rows[arms[0]]["recall"])
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(classes)), 3.8))
    width = 0.8 / len(arms)
    for i, arm in enumerate(arms):
        ax.bar(np.arange(len(classes)) + i * width, [rows[arm]["recall"][c] for c in classes], width, label=arm)
    ax.set_xticks(np.arange(len(classes)) + 0.4 - width / 2, classes)
    ax.set_ylabel(f"{split} recall (mean over seeds)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_confusions(config, records, out, split):
    files = {}
    for arm in config.run_arms():
        first = records[(arm, config.seeds[0])]["splits"][split]
        total = sum(np.array(records[(arm, s)]["splits"][split]["confusion_matrix"]) for s in config.seeds)
        name = f"confusion_{arm.replace(':', '_')}.png"
        save_confusion_png({"confusion_matrix": total.tolist(), "class_names": first["class_names"], "bma": 0},
                           out / name, title=f"{arm}: {split}, summed over {len(config.seeds)} seeds")
        files[arm] = name
    return files


def write_hparams(config, records, logdir):
    sink = TensorBoardSink(logdir)
    for (arm, seed), record in records.items():
        metrics = {f"hparam/{split}_bma": m["bma"] for split, m in record["splits"].items()}
        sink.hparams({"arm": arm, "seed": seed}, metrics, run_name=f"{arm}_seed{seed}")
    sink.close()


def _pct(x):
    return f"{100 * x:.2f}"


def synthetic_line(config):
    """Which synthetic set each generative arm used, and the teachers of +kd arms ('' when neither)."""
    used = sorted({synthetic_set_name(a) for a in config.arms if draws_synthetic(a)})
    paths = config.synthetic_paths()
    line = "; ".join(f"Synthetic set{' ' + name if name else ''}: `{paths[name]}`" for name in used) + ("." if used else "")
    if config.teachers and any(split_distill(a)[1] for a in config.arms):
        line += (f" +kd arms train on the mean class probabilities of {len(config.teachers)} teacher classifier(s) "
                 f"instead of hard labels: {', '.join(f'`{t}`' for t in config.teachers)}.")
    return line


def gain_line(split, arm, other, g, mark):
    verdict = "CI excludes 0" if g["ci_low"] > 0 or g["ci_high"] < 0 else "CI includes 0"
    return (f"- {split}: **{arm}** vs {other}: {'+' if g['mean'] >= 0 else ''}{_pct(g['mean'])} "
            f"BMA points, 95% CI [{_pct(g['ci_low'])}, {_pct(g['ci_high'])}] ({verdict}{mark}); "
            f"stricter CI [{_pct(g['strict_ci_low'])}, {_pct(g['strict_ci_high'])}]")


def posthoc_lines(summary, splits):
    """The post-hoc section: each arm's BMA raw and after each correction, and the gains after them. A gain that
    vanishes once both arms are corrected came from a shift of the class prior, not from recognising more."""
    first = next(iter(summary["splits"][splits[0]].values()))
    names = list(first.get("posthoc", {}))
    if not names:
        return []
    lines = ["## Post-hoc class corrections", "",
             "bias: log-probabilities + tau * -log(train prior), tau (and with posthoc_per_class, shrunk per-class "
             "shifts) fitted on val per run; label-shift: the split's class prior estimated from its unlabelled "
             "predictions (EM on val-calibrated probabilities) and the probabilities re-weighted to it, which "
             "aims at accuracy under that prior: BMA weighs every class alike, so label-shift lowers it when the "
             "split is dominated by a few classes. Val BMA after the bias fit is optimistic (fitted there): read it "
             "beside test.", ""]
    for split in splits:
        rows = summary["splits"][split]
        lines += [f"| {split}: BMA | raw | " + " | ".join(names) + " |", "|" + " --- |" * (2 + len(names))]
        lines += [f"| {arm} | {row['bma_mean']:.4f} | " + " | ".join(f"{row['posthoc'][n]['bma_mean']:.4f}"
                                                                   for n in names) + " |" for arm, row in rows.items()]
        lines.append("")
        for arm, row in rows.items():
            for n in names:
                corrected = row["posthoc"][n]
                if "gain" in corrected:
                    lines.append(gain_line(split, arm, summary["baseline"], corrected["gain"], f", both after {n}"))
                if "gain_twin" in corrected:
                    lines.append(gain_line(split, arm, f"its twin {summary['twins'][arm]}", corrected["gain_twin"],
                                           f", both after {n}"))
                if "gain_reference" in corrected:
                    lines.append(gain_line(split, arm, summary["reference"], corrected["gain_reference"],
                                           f", both after {n}"))
        lines.append("")
    bias_rows = {a: r["posthoc"]["bias"] for a, r in summary["splits"][splits[0]].items() if "bias" in r["posthoc"]}
    if bias_rows:
        lines += ["Val BMA before -> after the bias fit (mean over seeds): " + "; ".join(
            f"{a} {r['val_bma_raw']:.4f} -> {r['val_bma']:.4f}" for a, r in bias_rows.items()) + ".", ""]
    return lines


def report_markdown(config, facts, summary, splits, plots, confusions, subgroups=(), heading=None):
    """report.md's text; `heading` (lines) replaces the title line (rescore names its bundle there)."""
    baseline = summary["baseline"]
    half_life = config.ema_half_life
    averaged = f" of a weight average (half-life {half_life:g} epoch{'' if half_life == 1 else 's'})" if half_life else ""
    kept = "the last epoch kept" if config.keep == "last" else "best epoch chosen on val BMA"
    lines = list(heading or [f"# gan-aug compare: {Path(config.data).name}"]) + ["",
             f"Prepared set `{config.data}` (fingerprint `{facts.fingerprint[:16]}`), {facts.image_size} px"
             + (f", colour constancy {facts.color_constancy} (external sets alike)"
                if facts.color_constancy != "none" else "") + ", "
             f"classes {', '.join(facts.class_names)}. Arms x seeds: {len(config.run_arms())} x {len(config.seeds)} "
             f"(seeds {', '.join(map(str, config.seeds))}); classifier `{config.model}`, task `{config.task}`, "
             f"{config.epochs} epochs, batch {config.batch_size}, lr {config.lr}; {kept}{averaged}.",
             synthetic_line(config), ""]
    if summary.get("unfinished_seeds"):
        lines += [f"**Partial report**: seeds {', '.join(map(str, summary['unfinished_seeds']))} are not finished by "
                  "every arm yet (other shards may be running them); re-run compare to add them.", ""]
    lines += ["## Headline", ""]
    if baseline:
        lines.append(f"Baseline: **{baseline}**, the non-generative arm with the best mean val BMA "
                     "(chosen on val, never on test). Gains are in BMA points, mean over seeds, with a paired "
                     "bootstrap 95% CI (pair by seed, resample evaluation images within seeds, "
                     f"{config.bootstrap} resamples); the stricter CI also resamples the seeds and draws one "
                     "image resample for all of them.")
        selected = summary["selected"]
        if selected:
            lines += ["", f"The claim is **{selected}**, the generative arm with the best mean val BMA; "
                      "with several generative arms, the other lines are exploratory (one of many can clear "
                      "a 95% CI by chance)."]
        if summary.get("confounded"):
            lines += ["", f"**Confounded**: {', '.join(summary['confounded'])} and {baseline} differ in more than the "
                      "synthetic images (distillation, loss, mixing or schedule), so that gain measures more than "
                      "the generator; the gain over each arm's twin (the same recipe without synthetic draws) "
                      "measures the synthetic images alone."]
        lines.append("")
        for split in splits:
            for arm, row in summary["splits"][split].items():
                if "gain" in row:
                    mark = ", selected on val" if arm == selected else ""
                    mark += ", confounded" if arm in summary.get("confounded", ()) else ""
                    lines.append(gain_line(split, arm, baseline, row["gain"], mark))
                if "gain_twin" in row:
                    lines.append(gain_line(split, arm, f"its twin {summary['twins'][arm]}", row["gain_twin"], ""))
        lines.append("")
    if summary.get("reference"):
        lines += [f"Every arm against the reference arm **{summary['reference']}** (same bootstrap):"]
        lines += [gain_line(split, arm, summary["reference"], row["gain_reference"], "")
                  for split in splits for arm, row in summary["splits"][split].items() if "gain_reference" in row]
        lines.append("")
    lines += posthoc_lines(summary, splits)
    lines += ["## val (selection only)", "", "| arm | BMA mean ± std |", "| --- | --- |"]
    lines += [f"| {arm} | {v['mean']:.4f} ± {v['std']:.4f} |" for arm, v in summary["val_bma"].items()]
    lines.append("")
    for split in splits:
        rows = summary["splits"][split]
        lines += [f"## {split}", "", "| arm | BMA mean ± std | 95% CI | accuracy | macro-F1 | AUC | " +
                  " | ".join(f"recall {c}" for c in next(iter(rows.values()))["recall"]) + " |",
                  "|" + " --- |" * (6 + len(next(iter(rows.values()))["recall"]))]
        for arm, row in rows.items():
            lines.append(f"| {arm} | {row['bma_mean']:.4f} ± {row['bma_std']:.4f} | "
                         f"[{row['bma_ci'][0]:.4f}, {row['bma_ci'][1]:.4f}] | {row['accuracy']:.4f} | "
                         f"{row['macro_f1']:.4f} | {row['auc_macro']:.4f} | " +
                         " | ".join(f"{v:.3f}" for v in row["recall"].values()) + " |")
        lines.append("")
    rare = rare_classes(facts) if len(facts.class_names) > RARE_CLASSES_SHOWN else []
    if rare and baseline:
        lines += [f"## Rare classes ({splits[0]} recall, mean over seeds)", "",
                  "| arm | " + " | ".join(rare) + " |", "|" + " --- |" * (1 + len(rare))]
        for arm, row in summary["splits"][splits[0]].items():
            lines.append(f"| {arm} | " + " | ".join(f"{row['recall'][c]:.3f}" for c in rare if c in row["recall"])
                         + " |")
        lines.append("")
    lines += share_table(summary, splits)
    lines += list(subgroups)
    lines += ["## Plots", "", f"![BMA per arm]({plots['bma']})", "", f"![recall per class]({plots['recall']})", ""]
    lines += [f"![confusion {arm}]({name})" for arm, name in confusions.items()]
    lines += ["", "Per-run rows: `results.csv` (arm x seed x split). Browse: `tensorboard --logdir "
              f"{Path(config.out) / 'tb'}` (hparams).", ""]
    return "\n".join(lines)


def share_table(summary, splits):
    """Markdown lines: each arm's predicted-class shares (mean over seeds) per split, beside the true shares.
    A gain that comes with a shift of these is what a class-prior correction could also give."""
    lines = ["## Predicted-class shares (% of the split's images, mean over seeds)", ""]
    for split in splits:
        rows = summary["splits"][split]
        first = next(iter(rows.values()))
        classes = list(first["true_share"])
        lines += [f"| {split} | " + " | ".join(classes) + " |", "|" + " --- |" * (1 + len(classes)),
                  "| true | " + " | ".join(_pct(first["true_share"][c]) for c in classes) + " |"]
        lines += [f"| {arm} | " + " | ".join(_pct(row["predicted_share"][c]) for c in classes) + " |"
                  for arm, row in rows.items()]
        lines.append("")
    return lines
