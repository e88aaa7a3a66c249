"""The config of `gan-aug audit`: which sets to search for the same lesion under another name, and how."""

import dataclasses
import typing

from gan_aug.config import StageConfig, check_non_negative, setting
from gan_aug.data.near_duplicates import GAP, MARGIN, MIN_SCORE, NEIGHBOURS, STRONG_MARGIN
from gan_aug.errors import UserError


@dataclasses.dataclass
class AuditConfig(StageConfig):
    """`gan-aug audit`: near-duplicate pairs within and across a prepared set's splits, between its train split
    and external sets, and between synthetic sets and its train split."""

    data: str = setting(flag=False, help="The prepared set (.npz) to audit.")
    out: str = setting(help="Output folder: audit.json, summary.md, pairs.png.")
    external: typing.Tuple[str, ...] = setting((), help="An external set NAME=SOURCE:ROOT (any reader: isic-csv, "
                                                        "imagefolder, ham10000, ...) searched in the train split; "
                                                        "repeatable.")
    synthetic: typing.Tuple[str, ...] = setting((), help="A synthetic set (folder or .npz, or NAME=PATH) searched "
                                                         "in the train split; repeatable.")
    features: typing.Optional[str] = setting(None, help="lesion:CLASSIFIER_CKPT: also search the classifier's "
                                                        "features for candidates [none: the pixel embedding and "
                                                        "hashes only].")
    neighbours: int = setting(NEIGHBOURS, help="Candidates per image from each embedding.")
    min_score: float = setting(MIN_SCORE, help="Confirmed when the score (NCC of the aligned detail) is at least "
                                               "this ...")
    margin: float = setting(MARGIN, help="... and exceeds the median of the image's candidates' scores by this "
                                         "much ...")
    gap: float = setting(GAP, help="... and leads the image's next best candidate by this much ...")
    strong_margin: float = setting(STRONG_MARGIN, help="... or, without that lead (an image with several copies), "
                                                       "exceeds the median by this much.")
    grid: int = setting(32, help="Closest confirmed pairs shown in pairs.png.")
    seed: int = setting(0, help="Seed of the copies planted to fit the embedding's metric.")
    threads: int = setting(1, help="CPU threads of torch; 1 is the fastest where other work shares the cores "
                                   "(0: torch's default).")
    force: bool = setting(False, help="Replace an existing --out folder.")

    def validate(self):
        if not self.data:
            raise UserError("give the prepared set to audit: gan-aug audit DATA.npz --out DIR")
        if self.neighbours < 1:
            raise UserError(f"--neighbours must be at least 1, got {self.neighbours}")
        if not -1 <= self.min_score <= 1 or not all(0 <= v <= 2 for v in (self.margin, self.gap, self.strong_margin)):
            raise UserError("--min-score must be in [-1, 1] and --margin, --gap and --strong-margin in [0, 2] "
                            "(scores are NCCs)")
        check_non_negative(self, "grid", "threads")
        if self.features is not None and not self.features.startswith("lesion:"):
            raise UserError(f"--features must be lesion:CLASSIFIER_CKPT, got {self.features}")
        from gan_aug.compare.config import parse_external

        names = [parse_external(entry)[0] for entry in self.external] + [synthetic_name(s) for s in self.synthetic]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise UserError(f"two sets named {repeated[0]}: give each --external and --synthetic its own NAME=")


def synthetic_name(entry):
    """'NAME=PATH' -> NAME; a bare path -> its folder or file name."""
    name, sep, path = entry.partition("=")
    if sep and name and path:
        return name
    from pathlib import Path

    return Path(entry.rstrip("/")).stem or entry


def synthetic_path(entry):
    name, sep, path = entry.partition("=")
    return path if sep and name and path else entry
