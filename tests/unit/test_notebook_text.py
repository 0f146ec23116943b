"""The text of every notebook (solutions/ and the generated notebooks/), read as a learner reads it.

Fast: nothing is executed. The rules, each with a test of the rule itself on a small bad example:

* **Lessons stand on their own.** A learner has the notebooks, not the lecture decks they follow. No cell
  (markdown, or a code comment) may appeal to a lecture, a slide, a deck or the DLI course — *except on a
  line that starts with "Source:" or "Sources:"* (after any list, quote or heading markers), the one place
  where a lesson cites the deck or paper it follows, as a reference. "slider" is a widget, not a slide.
* **Doing, not only transcribing.** Every lesson has at least two "predict, then run" prompts
  (``my_guess_<name> = None`` before the cell that shows the answer, which prints the guess beside it) and
  one open "*Try this:*" experiment.
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


# --- cross-references ----------------------------------------------------------------------------------
# "section N", "Section N", "sections N and M", "sections N–M" and "§N" point at a heading "## N." of the
# same notebook; "lesson NN", "lessons NN–MM", "lessons NN and MM" at an existing lesson folder
# (solutions/NN_*/). A "§N" or "section N" within 40 characters after a citation ("et al", a year such as
# 2020, "paper") is a section of that paper, not of the notebook, and is not checked.

SECTION_REF = re.compile(r"(?:\b[Ss]ections?\s+|§\s*)(\d+)(?:\s*([–-]|and|to)\s*(\d+))?")
LESSON_REF = re.compile(r"\b[Ll]essons?\s+(\d\d)(?:\s*([–-]|and|to)\s*(\d\d))?")
CITATION = re.compile(r"et al|\b(?:19|20)\d\d\b|paper", re.IGNORECASE)
HEADING = re.compile(r"^##\s+(\d+)\.", re.MULTILINE)
LESSONS = {p.name[:2] for p in (REPO / "solutions").iterdir() if p.is_dir() and p.name[:2].isdigit()}


def _numbers(first: str, sep: str | None, last: str | None) -> list[int]:
    """"3" → [3]; "3 and 5" → [3, 5]; "3–5" or "3 to 5" → [3, 4, 5]."""
    if last is None:
        return [int(first)]
    return [int(first), int(last)] if sep == "and" else list(range(int(first), int(last) + 1))


def broken_references(markdown: list[str], lessons: set[str] = LESSONS) -> list[str]:
    """The section and lesson references in these markdown cells that point at nothing."""
    text = "\n".join(markdown)
    headings = {int(n) for n in HEADING.findall(text)}
    bad = []
    for m in SECTION_REF.finditer(text):
        if CITATION.search(text[max(0, m.start() - 40):m.start()]):
            continue                                      # a section of a cited paper
        bad += [f"{m.group(0)!r}: no heading '## {n}.'" for n in _numbers(*m.groups()) if n not in headings]
    for m in LESSON_REF.finditer(text):
        bad += [f"{m.group(0)!r}: no lesson {n:02d}" for n in _numbers(*m.groups()) if f"{n:02d}" not in lessons]
    return bad


def test_the_cross_reference_rule_itself():
    md = ["## 1. One\n\ntext", "## 2. Two\n\nIn section 2, as in lesson 01 and lessons 01–02, §1; see §2."]
    assert broken_references(md, lessons={"01", "02"}) == []
    assert broken_references(md + ["In section 7 we train"], lessons={"01", "02"}) == ["'section 7': no heading '## 7.'"]
    assert broken_references(md + ["Section 3 says"], lessons={"01", "02"}) == ["'Section 3': no heading '## 3.'"]
    assert broken_references(md + ["sections 1–3"], lessons={"01", "02"}) == ["'sections 1–3': no heading '## 3.'"]
    assert broken_references(md + ["the time input (lessons 03–04)"], lessons={"01", "02", "05"}) == \
        ["'lessons 03–04': no lesson 03", "'lessons 03–04': no lesson 04"]
    assert broken_references(md + ["as in §5"], lessons={"01", "02"}) == ["'§5': no heading '## 5.'"]
    assert broken_references(md + ["lessons 01 and 03"], lessons={"01", "02"}) == ["'lessons 01 and 03': no lesson 03"]
    # a paper's section is not the notebook's
    assert broken_references(md + ["(Ho et al. 2020, §3.3)", "Ho et al. (§4)", "Nichol & Dhariwal (2021, §3.2)"]) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NOTEBOOK_IDS)
def test_cross_references_point_at_something(path):
    """Every "section N" names a heading "## N." of the notebook, every "lesson NN" an existing lesson."""
    markdown = [c.source for c in _cells(path) if c.cell_type == "markdown"]
    bad = broken_references(markdown)
    assert not bad, "references to nothing:\n" + "\n".join(bad)


# --- markdown tables -----------------------------------------------------------------------------------
# Each table (a line starting with "|" followed by a delimiter row "|---|---|") is rendered through
# nbconvert's own markdown renderer (what `jupyter nbconvert --to html` uses) and must come out as one
# <table> whose every row has the header's number of cells. An unescaped "|" inside a cell — even inside
# `code` or $math$ — adds a column: nbconvert then prints the whole table as raw text and JupyterLab
# shifts the row's columns. Write \| or, in math, \mid.

DELIMITER_ROW = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")


def markdown_tables(text: str) -> list[str]:
    """The table blocks of a markdown text: header, delimiter row and the "|" lines that follow."""
    lines, tables, i = text.splitlines(), [], 0
    while i < len(lines) - 1:
        if lines[i].lstrip().startswith("|") and DELIMITER_ROW.match(lines[i + 1]):
            j = i + 2
            while j < len(lines) and lines[j].lstrip().startswith("|"):
                j += 1
            tables.append("\n".join(lines[i:j]))
            i = j
        else:
            i += 1
    return tables


def table_problems(table: str) -> list[str]:
    """What is wrong with one markdown table once rendered (an empty list when nothing is)."""
    from html.parser import HTMLParser

    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    class Rows(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tables, self.rows = 0, []

        def handle_starttag(self, tag, attrs):
            if tag == "table":
                self.tables += 1
            elif tag == "tr":
                self.rows.append(0)
            elif tag in ("td", "th") and self.rows:
                self.rows[-1] += 1

    parser = Rows()
    parser.feed(markdown2html_mistune(table + "\n"))
    header = table.splitlines()[0]
    if parser.tables != 1:
        return [f"does not render as a table (a row's cell count differs from the header's?): {header!r}"]
    return [f"row {k} has {n} cells, the header {parser.rows[0]}: {table.splitlines()[k + 1 if k else 0]!r}"
            for k, n in enumerate(parser.rows) if n != parser.rows[0]]


def test_the_table_rule_itself():
    good = "| t | q |\n|---|---|\n| 1 | $q(x_t \\mid x_0)$ |\n| 2 | q(x_t \\| x_0) |"
    assert markdown_tables("intro\n\n" + good + "\n\nafter") == [good]
    assert table_problems(good) == []
    for cell in ("q(x_t | x_0)", "`q(x_t | x_0)`", "$q(x_t | x_0)$"):
        bad = f"| # | lesson |\n|---|---|\n| 01 | recap |\n| 02 | {cell} |"
        assert table_problems(bad), cell
    assert table_problems("| a | b |\n|---|---|\n| x |")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NOTEBOOK_IDS)
def test_markdown_tables_render_with_every_row_complete(path):
    bad = [f"cell {i}: {p}" for i, cell in enumerate(_cells(path)) if cell.cell_type == "markdown"
           for table in markdown_tables(cell.source) for p in table_problems(table)]
    assert not bad, "broken markdown tables:\n" + "\n".join(bad)


# --- doing, not only transcribing ----------------------------------------------------------------------
# Every lesson (solutions/NN_*/) asks at least twice for a guess before a cell shows the answer: a code cell
# assigns `my_guess_<something> = None`, and a LATER code cell uses that name again (it prints the guess
# beside the measured value, so the learner compares the two). And it proposes at least one open
# experiment: a markdown cell with "Try this".

LESSON_NOTEBOOKS = sorted(REPO.glob("solutions/0*/*.ipynb"))
GUESS = re.compile(r"^\s*(my_guess_\w+)\s*=", re.MULTILINE)
TRY_THIS = re.compile(r"\bTry this\b")


def doing_problems(cells: list[tuple[str, str]]) -> list[str]:
    """What a lesson lacks of the rule above; ``cells`` are (cell_type, source) pairs in order."""
    first = {}
    for i, (kind, src) in enumerate(cells):
        if kind == "code":
            for name in GUESS.findall(src):
                first.setdefault(name, i)
    shown = {name for name, i in first.items()
             if any(kind == "code" and re.search(rf"\b{name}\b", src) for kind, src in cells[i + 1:])}
    bad = []
    if len(shown) < 2:
        unused = sorted(set(first) - shown)
        bad.append(f"{len(shown)} 'predict, then run' prompt(s) whose guess a later cell shows, need 2"
                   + (f" (never used again: {', '.join(unused)})" if unused else ""))
    if not any(kind == "markdown" and TRY_THIS.search(src) for kind, src in cells):
        bad.append("no open '*Try this:*' experiment")
    return bad


def test_the_doing_rule_itself():
    guess = lambda n: ("code", f"my_guess_{n} = None   # your guess, e.g. 0.5")               # noqa: E731
    answer = lambda n: ("code", f"print(f'measured 0.4; your guess: {{my_guess_{n}}}')")       # noqa: E731
    try_this = ("markdown", "*Try this:* change `lr` and re-run.")
    assert doing_problems([guess("a"), answer("a"), guess("b"), answer("b"), try_this]) == []
    assert doing_problems([guess("a"), guess("b"), answer("a"), answer("b"), try_this]) == []
    # a guess nobody looks at again is not a prediction that gets checked
    assert doing_problems([guess("a"), answer("a"), guess("b"), ("code", "x = 1"), try_this]) == \
        ["1 'predict, then run' prompt(s) whose guess a later cell shows, need 2 (never used again: my_guess_b)"]
    # the same prompt twice counts once; a use in markdown or before the prompt does not count
    assert doing_problems([guess("a"), answer("a"), guess("a"), answer("a"), try_this])
    assert doing_problems([guess("a"), answer("a"), ("markdown", "`my_guess_b`"), guess("b"),
                           ("markdown", "your guess: my_guess_b"), try_this])
    assert doing_problems([answer("b"), guess("a"), answer("a"), guess("b"), try_this])
    # my_guess_a is not my_guess_ab
    assert doing_problems([guess("a"), guess("ab"), answer("ab"), try_this])
    assert doing_problems([guess("a"), answer("a"), guess("b"), answer("b")]) == ["no open '*Try this:*' experiment"]


@pytest.mark.parametrize("path", LESSON_NOTEBOOKS, ids=[str(p.relative_to(REPO)) for p in LESSON_NOTEBOOKS])
def test_every_lesson_asks_for_predictions_and_an_experiment(path):
    bad = doing_problems([(c.cell_type, c.source) for c in _cells(path)])
    assert not bad, "the lesson only tells, it does not ask:\n" + "\n".join(bad)
