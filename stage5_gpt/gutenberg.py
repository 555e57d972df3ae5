"""The storybook corpus: 506 Project Gutenberg books by twelve authors of children's literature,
made into plain text for pretraining (the `gutenberg_children` entry of the data registry).

    strip_gutenberg   the text between the Project Gutenberg header and licence footer: after the
                      "*** START OF ..." line (or, in older files, the end of "THE SMALL PRINT!"),
                      before "*** END OF ..." / "End of the Project Gutenberg ..."; a book with no
                      marker keeps its whole text. Credits ("Produced by ...") at the top go too.
    unwrap            CRLF -> LF; the lines of a paragraph joined with spaces (the books are wrapped at
                      ~70 columns); verse and tables (mostly short lines) keep their line breaks;
                      paragraphs separated by one blank line, and a chapter break (3+ blank lines in
                      the source) by two.
    split_of          train / val / test by *work*: every edition of a work lands on the same side
                      (three Alice books, two Little Princesses, ...), so validation text was never
                      read in training. A work goes to val or test when the sha256 of its key, mod 100,
                      is below 3 or 6 (about 3% of the works each), and to train otherwise.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
from dataclasses import dataclass

from shared.data_registry import data_file

START = re.compile(r"^\*\*\* ?START OF (THIS|THE) PROJECT GUTENBERG.*$|^\*END\*? ?THE SMALL PRINT.*$", re.M | re.I)
END = re.compile(r"^(\*\*\* ?END OF (THIS|THE) PROJECT GUTENBERG|End of (the |this )?Project Gutenberg).*$",
                 re.M | re.I)
CREDITS = re.compile(r"(produced by|prepared by|project gutenberg|gutenberg\.org|e-?text|transcriber)", re.I)

# Works whose editions or retellings have different titles: every title containing one of the words
# on the right belongs to the work on the left.
FAMILIES = {
    "alice": ("alice's adventures", "alice in wonderland", "nursery \"alice\"", "looking-glass"),
    "peter pan": ("peter pan", "peter and wendy"),
    "a little princess": ("little princess", "sara crewe"),
    "yellow and crimson fairy books": ("yellow fairy book", "crimson fairy book", "magic ring"),
    "prince prigio": ("prince prigio", "his own fairy book", "my own fairy book"),
}


def strip_gutenberg(text: str) -> str:
    """The book without Project Gutenberg's header, licence footer and production credits."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    starts = list(START.finditer(text))
    if starts:
        text = text[starts[-1].end():]
    end = END.search(text)
    if end:
        text = text[:end.start()]
    paragraphs = re.split(r"\n\s*\n", text.strip("\n"))
    while paragraphs and CREDITS.search(paragraphs[0]) and len(paragraphs[0]) < 600:
        paragraphs.pop(0)  # "Produced by ... Distributed Proofreading Team": not the book
    while paragraphs and CREDITS.search(paragraphs[-1]) and len(paragraphs[-1]) < 600:
        paragraphs.pop()
    start = text.find(paragraphs[0]) if paragraphs else len(text)
    end_at = text.rfind(paragraphs[-1]) + len(paragraphs[-1]) if paragraphs else len(text)
    return text[start:end_at]


def unwrap(text: str) -> str:
    """Hard-wrapped lines joined into paragraphs; verse keeps its lines; chapter breaks kept."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    out = []
    for section in re.split(r"\n[ \t]*\n[ \t]*\n[ \t]*\n\s*", text.strip()):  # 3+ blank lines: a chapter break
        paragraphs = []
        for block in re.split(r"\n[ \t]*\n\s*", section.strip()):
            lines = [" ".join(line.split()) for line in block.split("\n") if line.strip()]  # one space per gap
            if not lines:
                continue
            verse = len(lines) >= 2 and sum(len(line) < 45 for line in lines) >= 0.7 * len(lines)
            paragraphs.append("\n".join(lines) if verse else " ".join(lines))
        if paragraphs:
            out.append("\n\n".join(paragraphs))
    return "\n\n\n".join(out) + "\n"


def work_key(title: str) -> str:
    """The work a title belongs to: lower case, subtitle and edition notes dropped, families merged."""
    lower = title.lower()
    for family, words in FAMILIES.items():
        if any(w in lower for w in words):
            return family
    key = re.split(r"[;:(\[/]| illustrated| retold| a dramatization| being | with an? |translated|volume \d", lower)[0]
    key = re.sub(r"[^a-z0-9 ]", "", key).strip()
    return " ".join(re.sub(r"^(the|a|an) ", "", key).split())


def split_of(key: str) -> str:
    bucket = int(hashlib.sha256(key.encode("utf-8")).hexdigest(), 16) % 100
    return "val" if bucket < 3 else "test" if bucket < 6 else "train"


@dataclass
class Book:
    title: str
    author: str
    work: str
    split: str
    text: str  # cleaned


def manifest() -> list[dict]:
    return json.loads(data_file("gutenberg_children", "manifest").read_text(encoding="utf-8"))["books"]


def assign_works(titles: list[str]) -> dict[str, tuple[str, str]]:
    """title -> (work, split). Titles whose keys are one another's prefixes ("Rinkitink in Oz" and
    "Rinkitink in Oz / Wherein ...", glued in the source) are one work: the shortest key names it."""
    keys = {title: work_key(title) for title in titles}
    assigned = {}
    for title, key in keys.items():
        work = min((k for k in keys.values() if key.startswith(k) and len(k) >= 8), key=len, default=key)
        assigned[title] = (work, split_of(work))
    return assigned


def load_books() -> list[Book]:
    """Every book of the corpus, cleaned, with its work and split (the archive is read once, ~10 s)."""
    books_info = {b["file"]: b for b in manifest()}
    works = assign_works([b["title"] for b in books_info.values()])
    books = []
    with tarfile.open(data_file("gutenberg_children", "archive"), "r:xz") as archive:
        for member in archive:
            if not member.isfile() or member.name not in books_info:
                continue
            info = books_info[member.name]
            raw = archive.extractfile(member).read().decode("utf-8", errors="replace")
            work, split = works[info["title"]]
            books.append(Book(info["title"], info["author"], work, split, unwrap(strip_gutenberg(raw))))
    return sorted(books, key=lambda b: (b.split, b.author, b.title))


def load_splits() -> dict[str, list[str]]:
    """train / val / test: the cleaned text of each book of the split (a model reads them one after
    another, an end-of-text token between two books)."""
    books = load_books()
    return {split: [b.text for b in books if b.split == split] for split in ("train", "val", "test")}
