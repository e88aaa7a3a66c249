"""Near duplicates: the same lesion under another name. Planted re-imaging copies (planting), perceptual hashes
(hashing) and a pixel embedding (embedding) find candidates; an aligned cross-correlation confirms them (confirm,
search); confirmed pairs become clusters and merged groups (clusters). `gan-aug audit` reports them and
`gan-aug prepare --group-near-duplicates` keeps each cluster inside one split.

The detector's defaults live here as plain numbers (no torch import) so that `--help` stays fast. They were
calibrated on copies planted in HAM10000 (tools/bench_audit.py, BENCHMARKS.md): candidates per image from each
embedding, the margin a confirmed pair's score stands above the median of its image's candidates, the least
score (NCC of the aligned detail), the gap by which an image's best candidate must lead its next, and the margin
that confirms a pair without that lead (an image with several copies)."""

NEIGHBOURS, MARGIN, MIN_SCORE, GAP, STRONG_MARGIN = 24, 0.24, 0.35, 0.09, 0.45
