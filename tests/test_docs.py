"""The docs stay a user's guide that is true and can be followed: README short and listing every command with an
example, no machine's scratch paths in docs or configs, and every relative link (file and anchor) resolving."""

import re
from pathlib import Path

import pytest

from gan_aug.cli import cli

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted([ROOT / "README.md", ROOT / "BENCHMARKS.md", *(ROOT / "docs").rglob("*.md"),
               *(ROOT / "samples").glob("*.md"), *(ROOT / "configs").glob("*.md")])
CONFIGS = sorted((ROOT / "configs").rglob("*.yaml"))
SCRATCH = re.compile(r"(?<![\w.$])/(work|tmp)/")  # /work/w64/..., /tmp/w/...; ../shared/data/... is relative
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(path):
    """GitHub's anchors of a markdown file's headings: lower case, punctuation but - and _ dropped, spaces -> -."""
    return {re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            for m in re.finditer(r"^#+ (.+)$", path.read_text(), re.MULTILINE)}


def test_readme_is_a_guide_of_at_most_400_lines_with_every_command_in_its_table():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 400
    rows = {m.group(1) for m in re.finditer(r"^\| `([a-z-]+)` \|.*\| `gan-aug \1 .*` \|$", text, re.MULTILINE)}
    assert set(cli.commands) <= rows, sorted(set(cli.commands) - rows)


@pytest.mark.parametrize("path", DOCS + CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_machine_scratch_paths(path):
    hits = [line for line in path.read_text().splitlines() if SCRATCH.search(line)]
    assert not hits, hits[:3]


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path):
    broken = []
    for target in LINK.findall(path.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        file, _, anchor = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in anchors(linked)):
            broken.append(target)
    assert not broken
