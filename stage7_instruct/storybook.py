"""A storybook instruction set a small model can learn, with requirements a program can check.

Built deterministically from the storybook corpus's train-split books only (stage 5's split by work;
never a val or test book). Each book's prose is cut into passages of 40-120 words (whole paragraphs,
verse left out), every passage becomes one example, and a hash of (book, passage number) picks its kind:

    words      Write a short story passage that uses the words "garden", "basket" and "mother".
    dialogue   Write a short story passage with dialogue [that uses the word "king"].
    continue   Continue the story: <the passage's first sentence>     (the response: the rest)
    length     Write a story passage of fewer than 60 words [...]  /  of at least 80 words [...]

The requested words are content words the passage uses that appear in at least half the train books
(~2,000 words: "garden", "basket", "afraid"), so a small model has met them often.
The response is the passage itself, which meets its own requirements by construction (checked). The
examples are split train / val / test by book (hash of the work, 90 / 5 / 5), so the test prompts come
from books the finetuning never read.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field

from shared.data_registry import cache_dir
from shared.runs import atomic_write

VERSION = 2
MIN_WORDS, MAX_WORDS = 40, 120
PASSAGES_PER_BOOK = 80
COMMON = 0.5  # a requested word appears in at least half the train books: a small model's vocabulary
SHORT, LONG = 60, 80  # words: "fewer than SHORT" / "at least LONG"
STOPWORDS = set("""a about above after again against all also am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further had has have having he
her here hers herself him himself his how i if in into is it its itself just me more most my myself no nor not now of
off on once only or other our ours out over own said same she should so some such than that the their theirs them
then there these they this those through to too under until up upon very was we were what when where which while who
whom why will with would you your yours shall thee thou thy little great good went came come go one two see made
like know well much never ever every still back away again must might may even""".split())
WORD = re.compile(r"[A-Za-z]+(?:'[a-z]+)?")
QUOTE = re.compile(r"[\"“”]")


@dataclass(frozen=True)
class Requirement:
    kind: str  # word | dialogue | max_words | min_words | continues
    value: str = ""

    def describe(self) -> str:
        return {"word": f'uses "{self.value}"', "dialogue": "has dialogue", "max_words": f"< {self.value} words",
                "min_words": f">= {self.value} words", "continues": "does not repeat the opening"}[self.kind]


@dataclass(frozen=True)
class StoryExample:
    instruction: str
    response: str
    requirements: tuple[Requirement, ...] = field(default_factory=tuple)
    kind: str = ""
    book: str = ""


def words_of(text: str) -> list[str]:
    return WORD.findall(text)


def meets(requirement: Requirement, text: str) -> bool:
    """Does `text` meet the requirement? Words are matched whole and case-blind ("Garden" uses "garden")."""
    if requirement.kind == "word":
        return requirement.value.lower() in {w.lower() for w in words_of(text)}
    if requirement.kind == "dialogue":
        return len(QUOTE.findall(text)) >= 2  # an opening and a closing quotation mark
    if requirement.kind == "max_words":
        return 0 < len(words_of(text)) < int(requirement.value)
    if requirement.kind == "min_words":
        return len(words_of(text)) >= int(requirement.value)
    if requirement.kind == "continues":
        opening = " ".join(words_of(requirement.value)).lower()
        return len(words_of(text)) >= 10 and opening not in " ".join(words_of(text)).lower()
    raise ValueError(f"unknown requirement kind {requirement.kind!r}")


def requirement_results(requirements: tuple[Requirement, ...], text: str) -> list[bool]:
    return [meets(r, text) for r in requirements]


def _hash(*parts: object) -> int:
    return int(hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).hexdigest(), 16)


def passages(text: str) -> list[str]:
    """Runs of whole prose paragraphs of MIN_WORDS to MAX_WORDS words, in book order."""
    found, current, count = [], [], 0
    for paragraph in text.split("\n\n"):
        paragraph = paragraph.strip()
        n = len(paragraph.split())
        if not paragraph or "\n" in paragraph or n > MAX_WORDS or paragraph.isupper():  # verse, headings
            current, count = [], 0
            continue
        if count + n > MAX_WORDS:
            current, count = [], 0
        current.append(paragraph)
        count += n
        if count >= MIN_WORDS:
            found.append("\n\n".join(current))
            current, count = [], 0
    return found


def _quote_list(words: list[str]) -> str:
    quoted = [f'"{w}"' for w in words]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _content_words(passage: str, seed: int, k: int, common: set[str]) -> list[str]:
    candidates = sorted({w.lower() for w in words_of(passage) if len(w) >= 4 and w.lower() not in STOPWORDS
                         and "'" not in w and not w[0].isupper() and w.lower() in common})
    candidates.sort(key=lambda w: _hash(seed, w))
    return sorted(candidates[:k], key=lambda w: passage.lower().find(w))  # in the order the passage has them


SENTENCE_END = re.compile(r"[.!?][\"”’]?\s+")


def make_example(passage: str, book: str, index: int, common: set[str]) -> StoryExample | None:
    """One example from one passage, its kind picked by a hash; None when the passage cannot serve."""
    seed = _hash(book, index)
    kind = ("words", "dialogue", "continue", "length")[seed % 4]
    n_words = len(words_of(passage))
    if kind == "dialogue" and len(QUOTE.findall(passage)) < 2:
        kind = "words"
    if kind == "continue":
        end = SENTENCE_END.search(passage)
        if end is None:
            return None
        opening, rest = passage[:end.end()].strip(), passage[end.end():]
        if len(words_of(rest)) < 20 or len(opening) > 300:
            return None
        return StoryExample(f"Continue the story: {opening}", rest, (Requirement("continues", opening),), kind, book)
    if kind == "words":
        chosen = _content_words(passage, seed, 3, common)
        if len(chosen) < 3:
            return None
        reqs = tuple(Requirement("word", w) for w in chosen)
        return StoryExample(f"Write a short story passage that uses the words {_quote_list(chosen)}.", passage,
                            reqs, kind, book)
    chosen = _content_words(passage, seed, 1, common)
    uses = f' that uses the word "{chosen[0]}"' if chosen and seed % 3 else ""
    word_req = (Requirement("word", chosen[0]),) if uses else ()
    if kind == "dialogue":
        return StoryExample(f"Write a short story passage with dialogue{uses}.", passage,
                            (Requirement("dialogue"),) + word_req, kind, book)
    if n_words < SHORT:
        return StoryExample(f"Write a story passage of fewer than {SHORT} words{uses}.", passage,
                            (Requirement("max_words", str(SHORT)),) + word_req, kind, book)
    if n_words >= LONG:
        return StoryExample(f"Write a story passage of at least {LONG} words{uses}.", passage,
                            (Requirement("min_words", str(LONG)),) + word_req, kind, book)
    return None


def split_of_book(work: str) -> str:
    bucket = _hash("storybook-instruct", work) % 100
    return "val" if bucket < 5 else "test" if bucket < 10 else "train"


def build(books) -> dict[str, list[StoryExample]]:
    """The set from stage 5's books (gutenberg.Book): train-split books only, split again by book."""
    sets: dict[str, list[StoryExample]] = {"train": [], "val": [], "test": []}
    books = [b for b in books if b.split == "train"]  # stage 5's val and test books stay unread
    in_books = Counter(w for b in books for w in {w.lower() for w in words_of(b.text)})
    common = {w for w, n in in_books.items() if n >= COMMON * len(books)}
    for book in books:
        found = passages(book.text)
        step = max(1, len(found) // PASSAGES_PER_BOOK)
        for index, passage in enumerate(found[::step][:PASSAGES_PER_BOOK]):
            example = make_example(passage, book.work, index, common)
            if example is not None and all(requirement_results(example.requirements, example.response)):
                sets[split_of_book(book.work)].append(example)
    return sets


def _from_json(item: dict) -> StoryExample:
    reqs = tuple(Requirement(**r) for r in item["requirements"])
    return StoryExample(item["instruction"], item["response"], reqs, item["kind"], item["book"])


def load_storybook_set() -> dict[str, list[StoryExample]]:
    """The set, built once (~15 s: the corpus archive is read) and cached as JSON beside stage 5's data."""
    path = cache_dir() / "prepared" / f"storybook_instruct-v{VERSION}.json"
    if path.exists():
        data = json.loads(path.read_text(encoding="utf-8"))
        return {split: [_from_json(item) for item in items] for split, items in data.items()}
    from stage5_gpt.gutenberg import load_books

    sets = build(load_books())
    with atomic_write(path) as fh:
        fh.write(json.dumps({s: [asdict(e) for e in items] for s, items in sets.items()}))
    return sets
