"""The theory pages as a reader meets them.

- Every display equation names the code that computes it, as a link to a .py file next to it.
- The Chinese pages say what the English ones say: same headings (by level), same display equations.
  A chapter that gains a section or an equation in one language and not the other fails here, naming
  the pair and what drifted. Inline math is not counted: a translation may reasonably write "8 倍"
  where the English writes "$8$x".
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import load_bench

ROOT = Path(__file__).resolve().parents[1]


def translated_pairs() -> list[tuple[Path, Path]]:
    pairs = [(en, ROOT / "docs" / "zh" / en.name) for en in sorted((ROOT / "docs").glob("*.md"))]
    pairs += [(zh.with_name("README.md"), zh) for zh in sorted(ROOT.glob("stage*/README.zh-CN.md"))]
    return pairs


def outline(path: Path) -> dict[str, object]:
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # a '#' comment in a code block is not a heading
    levels = [len(m.group(1)) for m in re.finditer(r"^(#{1,6}) ", text, flags=re.M)]
    return {"heading levels": levels, "display equations": text.count("$$") // 2}


@pytest.mark.parametrize("english, chinese", translated_pairs(), ids=lambda p: str(p.relative_to(ROOT)))
def test_chinese_page_keeps_the_english_outline(english, chinese):
    assert chinese.exists(), f"{english.relative_to(ROOT)} has no Chinese page at {chinese.relative_to(ROOT)}"
    assert outline(chinese) == outline(english), (
        f"{chinese.relative_to(ROOT)} drifted from {english.relative_to(ROOT)}")


CODE_LINK = re.compile(r"\]\((?:\.\./)+[\w/]+\.py\)")


@pytest.mark.parametrize("page", sorted((ROOT / "docs").glob("**/*.md")), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_equation_links_the_code_that_computes_it(page):
    text = page.read_text(encoding="utf-8")
    for match in re.finditer(r"\$\$.*?\$\$", text, flags=re.S):
        near = text[max(0, match.start() - 400):match.end() + 400]
        line = text[:match.start()].count("\n") + 1
        assert CODE_LINK.search(near), f"{page.relative_to(ROOT)}:{line}: link the function that computes this equation"
        for target in CODE_LINK.findall(near):
            path = (page.parent / target[2:-1]).resolve()
            assert path.is_file(), f"{page.relative_to(ROOT)}:{line}: {target[2:-1]} does not exist"


WORKED = load_bench("worked_examples")


@pytest.mark.parametrize("name", sorted(WORKED.EXAMPLES))
def test_worked_examples_are_what_the_code_computes(name):
    """Each worked example's table is rendered by the function the stage trains with, in both languages:
    an edit by hand, or a change in the code the example runs, fails here until
    `python bench/worked_examples.py --write` is run again."""
    render = WORKED.EXAMPLES[name][0]
    for lang, page in WORKED.pages(name):
        found = WORKED.block_pattern(name).search(page.read_text(encoding="utf-8"))
        assert found, f"{page} has no <!-- worked {name} --> block"
        assert found.group(2) == render(lang) + "\n", f"{page}: run python bench/worked_examples.py --write"


FIGURES = load_bench("figures")


def test_every_figure_a_page_shows_is_drawn_by_the_script_and_small():
    """A figure in docs/ is drawn by bench/figures.py from a recorded run or the code, never pasted:
    each one a page shows is one the script draws, shown in both languages, and small."""
    shown: dict[str, set[str]] = {}
    for en, zh in translated_pairs():
        for page, lang in ((en, "en"), (zh, "zh")):
            text = page.read_text(encoding="utf-8")
            for name in re.findall(r"\]\((?:\.\./)*(?:docs/)?figures/([\w.-]+\.png)\)", text):
                shown.setdefault(name, set()).add(lang)
    assert set(shown) == set(FIGURES.FIGURES_DRAWN), "a page shows a figure bench/figures.py does not draw, or back"
    for name, langs in shown.items():
        assert langs == {"en", "zh"}, f"{name} is shown in {langs} only"
        path = ROOT / "docs" / "figures" / name
        assert path.exists() and path.stat().st_size < 150_000, f"{path}: run python bench/figures.py"
    for source in [*FIGURES.SAVED_RUNS, FIGURES.GRADIENT_REACH]:
        assert (FIGURES.RESULTS / source).exists(), f"bench/results/{source}: python bench/figures.py --save_runs"
