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
