"""Build a token-classification corpus from real Wikipedia text whose tags are exact by construction: names
recovered from capital letters that the model never sees.

The tags are a fixed function of the original, cased sentence; the token column is written lowercased. So a tag
cannot be read off the token: an uncased encoder must tell from the word and its context whether "turkey", "may",
"bush", "apple" or "new" was a name here. That is what pretraining gives and what random weights have to learn from
the training sentences alone. The tags themselves need no judgement and have no errors.

Rules, in order:

- **Documents** are separated by blank lines, one paragraph per line (the WikiExtractor layout). A paragraph is
  skipped when it holds wiki markup (``<``, ``>``, ``{{``, ``}}``, ``[[``, ``]]``, ``|``) or has fewer than 12
  whitespace-separated words (section headings such as "Etymology and terminology.").
- **Sentences**: a paragraph splits after ``.``, ``!`` or ``?`` followed by whitespace and an uppercase letter, a
  digit, or an opening quote or bracket, unless the word before the full stop is a single letter (an initial: "J.
  R. R. Tolkien") or one of ``ABBREVIATIONS``.
- **Tokens**: a run of letters and digits, which may go on across one ``'``, ``’``, ``.`` or ``,`` followed by more
  letters or digits ("O'Brien", "U.S", "3.5", "1,000"); every other non-space character is a token of its own.
- **Kept sentences** have 8 to 60 tokens and start with a word of ``OPENERS`` (common words that are not names:
  "The", "In", "He", ...), because a sentence's first word is capitalized whatever it is. That first word is
  tagged O.
- **NAME**: every later token whose first character is an uppercase letter; a maximal run of such adjacent tokens
  is one entity (B-NAME, then I-NAME). "University of Oxford" is two entities (the lowercase "of" ends the run),
  "World War II" one, "I" and "U.S" one each.
- **NUM**: a token made of digits, with ``.`` or ``,`` between digit groups ("1998", "3.5", "1,000"); adjacent ones
  are one entity. It needs no context (a control: both starts should score near 1 on it).
- Everything else is O. The tags are IOB2.

Documents go to the splits by their position in the corpus (files in name order): every 10th to dev, the one after
it to test, the rest to train; each document gives at most ``--per_document`` sentences (its first kept ones), so
no document's sentences are in two splits. Output: ``train.conll``, ``dev.conll``, ``test.conll`` (``token<TAB>tag``
lines, a blank line after each sentence) and ``stats.json`` (sentences, tokens, entities by type, documents).

    python benchmarks/make_ner_corpus.py --corpus ../shared/data/corpus/wikipedia-en-2015 --out_dir /tmp/ner
"""
import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

MARKUP = ("<", ">", "{{", "}}", "[[", "]]", "|")
MIN_PARAGRAPH_WORDS = 12
ABBREVIATIONS = frozenset(
    "mr mrs ms dr st jr sr prof gen col lt sgt capt rev gov sen rep inc ltd co corp bros no nos vol vols fig pp"
    " vs etc approx ca c e.g i.e u.s u.k mt ft jan feb mar apr jun jul aug sep sept oct nov dec".split())
OPENERS = frozenset(
    "the a an in on at by for from to with after before during since until as when while although though however"
    " it he she they we this that these those there his her its their one some many most both each all other such"
    " several two three following later today also because if".split())
SPLITS = ("train", "dev", "test")

_SENTENCE_END = re.compile(r"[.!?]\s+(?=[A-Z0-9\"“(\[])")
_LAST_WORD = re.compile(r"([^\W_]+(?:\.[^\W_]+)*)$")
_TOKEN = re.compile(r"[^\W_]+(?:['’.,][^\W_]+)*|\S")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def documents(corpus: Path):
    """Each document of the corpus (files in name order) as its list of paragraph lines."""
    files = sorted(path for path in corpus.iterdir() if path.is_file() and path.suffix == ".txt")
    if not files:
        sys.exit(f"{corpus}: no .txt files")
    for path in files:
        paragraphs = []
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                paragraphs.append(line.strip())
            elif paragraphs:
                yield paragraphs
                paragraphs = []
        if paragraphs:
            yield paragraphs


def sentences(paragraph: str) -> list:
    """The paragraph cut at sentence ends (``_SENTENCE_END``), except after an initial or an abbreviation."""
    found, start = [], 0
    for end in _SENTENCE_END.finditer(paragraph):
        before = _LAST_WORD.search(paragraph[start:end.start()])
        word = before.group(1).lower() if before else ""
        if len(word) == 1 and word.isalpha() or word in ABBREVIATIONS:
            continue
        found.append(paragraph[start:end.start() + 1])
        start = end.end()
    found.append(paragraph[start:])
    return found


def is_name_token(token: str) -> bool:
    return token[0].isupper()


def is_number_token(token: str) -> bool:
    return _NUMBER.fullmatch(token) is not None


def tag_sentence(tokens: list) -> list:
    """IOB2 tags of a kept sentence: its first token O, then NAME and NUM runs."""
    tags, previous = ["O"], None
    for token in tokens[1:]:
        kind = "NAME" if is_name_token(token) else "NUM" if is_number_token(token) else None
        tags.append("O" if kind is None else f"{'I' if kind == previous else 'B'}-{kind}")
        previous = kind
    return tags


def tagged_sentences(paragraphs: list, min_tokens: int, max_tokens: int):
    """(lowercased tokens, tags) of each kept sentence of a document, in order."""
    for paragraph in paragraphs:
        if any(mark in paragraph for mark in MARKUP) or len(paragraph.split()) < MIN_PARAGRAPH_WORDS:
            continue
        for sentence in sentences(paragraph):
            tokens = _TOKEN.findall(sentence)
            if not min_tokens <= len(tokens) <= max_tokens or tokens[0].lower() not in OPENERS:
                continue
            yield [token.lower() for token in tokens], tag_sentence(tokens)


def split_of(document_number: int) -> str:
    return {0: "dev", 1: "test"}.get(document_number % 10, "train")


def build(corpus: Path, wanted: dict, per_document: int, min_tokens: int, max_tokens: int) -> dict:
    """``{split: [(tokens, tags), ...]}`` with ``wanted[split]`` sentences each (fewer if the corpus runs out)."""
    chosen = {split: [] for split in SPLITS}
    for number, paragraphs in enumerate(documents(corpus)):
        split = split_of(number)
        room = wanted[split] - len(chosen[split])
        if room > 0:
            found = tagged_sentences(paragraphs, min_tokens, max_tokens)
            chosen[split] += [pair for _, pair in zip(range(min(room, per_document)), found)]
        if all(len(chosen[split]) >= wanted[split] for split in SPLITS):
            break
    return chosen


def write_conll(path: Path, tagged: list) -> None:
    with path.open("w", encoding="utf-8") as f:
        for tokens, tags in tagged:
            f.writelines(f"{token}\t{tag}\n" for token, tag in zip(tokens, tags))
            f.write("\n")


def split_stats(tagged: list) -> dict:
    entities = Counter(tag[2:] for _, tags in tagged for tag in tags if tag.startswith("B-"))
    tokens = sum(len(tokens) for tokens, _ in tagged)
    return {"sentences": len(tagged), "tokens": tokens, "entities": dict(sorted(entities.items()))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--corpus", required=True, help="folder of .txt files: one paragraph per line, documents"
                        " separated by blank lines (e.g. ../shared/data/corpus/wikipedia-en-2015)")
    parser.add_argument("--out_dir", required=True, help="where train.conll, dev.conll, test.conll go")
    parser.add_argument("--train_sentences", type=int, default=3000)
    parser.add_argument("--dev_sentences", type=int, default=500)
    parser.add_argument("--test_sentences", type=int, default=500)
    parser.add_argument("--per_document", type=int, default=4, help="at most this many sentences per document")
    parser.add_argument("--min_tokens", type=int, default=8)
    parser.add_argument("--max_tokens", type=int, default=60)
    args = parser.parse_args(argv)
    wanted = {"train": args.train_sentences, "dev": args.dev_sentences, "test": args.test_sentences}
    chosen = build(Path(args.corpus), wanted, args.per_document, args.min_tokens, args.max_tokens)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stats = {}
    for split, tagged in chosen.items():
        write_conll(out / f"{split}.conll", tagged)
        stats[split] = split_stats(tagged)
        print(f"{split}: {stats[split]['sentences']} sentences, {stats[split]['tokens']} tokens, entities"
              f" {stats[split]['entities']} -> {out / f'{split}.conll'}")
    (out / "stats.json").write_text(json.dumps(stats, indent=1) + "\n")
    short = [split for split in SPLITS if stats[split]["sentences"] < wanted[split]]
    if short:
        print(f"warning: the corpus ran out before {', '.join(short)} had the sentences asked for", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
