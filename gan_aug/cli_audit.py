"""`gan-aug audit` (issue #41), added to the `gan-aug` group in gan_aug/cli.py."""

from pathlib import Path

import click

from gan_aug.audit.config import AuditConfig
from gan_aug.cli_config import build_or_print, options_from


@click.command()
@click.argument("data", required=False)
@options_from(AuditConfig)
def audit(data, config_path, sets, dry_run, **flags):
    """Find the same lesion under another name: near duplicates within and across a prepared set's splits,
    between its train split and external sets, and between synthetic sets and its train split.

    \b
    Examples:
      gan-aug audit ham64.npz --out audit_ham64
      gan-aug audit ham64.npz --external isic2018dev=isic-csv:data/isic2018_test_dev --out audit_ham64
      gan-aug audit ham64.npz --synthetic syn64 --features lesion:runs/clf/best.pt --out audit_syn64
    """
    config = build_or_print(AuditConfig, config_path, {**flags, "data": data}, sets, dry_run)
    if config is None:
        return
    from gan_aug.audit.run import AUDIT_FILE, GRID_FILE, SUMMARY_FILE, audit as run_audit

    summary = run_audit(config)
    crossing = sum(len(c["splits"]) > 1 for c in summary["clusters"])
    click.echo(f"{summary['pairs']} near-duplicate pair(s); {len(summary['clusters'])} cluster(s) in "
               f"{Path(config.data).name}, {crossing} across splits; {summary['seconds']['total']:.0f} s")
    out = Path(config.out)
    click.echo(f"wrote {out / AUDIT_FILE}, {out / SUMMARY_FILE}" + (f", {out / GRID_FILE}" if summary["pairs"]
                                                                      else ""))


COMMANDS = (audit,)
