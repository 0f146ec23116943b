"""The text of every notebook (solutions/ and the generated notebooks/), read as a learner reads it.

Fast: nothing is executed. The rules, each with a test of the rule itself on a small bad example:

* **Lessons stand on their own.** A learner has the notebooks, not the lecture decks they follow. No cell
  (markdown, or a code comment) may appeal to a lecture, a slide, a deck or the DLI course — *except on a
  line that starts with "Source:" or "Sources:"* (after any list, quote or heading markers), the one place
  where a lesson cites the deck or paper it follows, as a reference. "slider" is a widget, not a slide.
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted([*REPO.glob("solutions/**/*.ipynb"), *REPO.glob("notebooks/**/*.ipynb")])
NOTEBOOK_IDS = [str(p.relative_to(REPO)) for p in NOTEBOOKS]


def _cells(path: Path):
    return nbformat.read(path, as_version=4).cells


# --- lessons stand on their own ------------------------------------------------------------------------

APPEAL = re.compile(r"\b(lectures?|slides?|decks?|DLI)\b", re.IGNORECASE)
SOURCE_LINE = re.compile(r"^[\s>*_#\-]*Sources?:")


def appeals_to_lecture(text: str) -> list[str]:
    """The lines of ``text`` that mention a lecture, a slide, a deck or the DLI course outside a
    "Source:"/"Sources:" line."""
    return [line for line in text.splitlines() if APPEAL.search(line) and not SOURCE_LINE.match(line)]


def test_the_lecture_rule_itself():
    assert appeals_to_lecture("## 1. The lecture's toy: ten small steps") == ["## 1. The lecture's toy: ten small steps"]
    assert appeals_to_lecture("x = 1  # as on the slide")
    assert appeals_to_lecture("Read it as a recipe, as on the Slides:")
    assert appeals_to_lecture("Part 4 of the lecture asks")
    assert appeals_to_lecture("the DLI course upgrades")
    assert appeals_to_lecture("see the deck")
    assert not appeals_to_lecture('Source: lecture deck "Generative AI with Diffusion Models", part 2')
    assert not appeals_to_lecture('* Sources: the DDPM paper; lecture deck "DDPM paper reading"')
    assert not appeals_to_lecture("Move the slider and switch the schedule")
    # "Source" must open the line: a citation in the middle of a sentence is still an appeal
    assert appeals_to_lecture('as shown (Source: the lecture deck)')


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NOTEBOOK_IDS)
def test_no_appeal_to_lecture_material(path):
    """Every fact a lesson needs is written in the lesson: no "as on the slide", "the lecture's toy"."""
    bad = [f"cell {i} ({cell.cell_type}): {line.strip()}" for i, cell in enumerate(_cells(path))
           for line in appeals_to_lecture(cell.source)]
    assert not bad, "appeals to material the learner does not have (write the content out, or cite it " \
                    "once on a 'Source:' line):\n" + "\n".join(bad)
