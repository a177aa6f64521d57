"""Token-classification files (entity recognition, chunking), read as the Hugging Face ``run_ner.py`` example reads
them, with one-line errors that name the file and the line. The file name tells the format:

- **JSON lines** (``.json``, ``.jsonl``): a token list (``--text_column_name``, default ``tokens``), a tag list
  (``--label_column_name``, default ``tags``, else ``<task>_tags``, e.g. ``ner_tags``) and, as the sentence's id,
  ``id``/``idx``/``index`` when there is one. Integer tags fit no tag scheme: such files need their tag names.
- **CoNLL** (any other name): the token in the first column and its tag in the last (split at tabs when the line has
  one, else at whitespace: CoNLL-2003's ``EU NNP B-NP B-ORG`` reads as ``EU``/``B-ORG``), a blank line between
  sentences, ``-DOCSTART-`` skipped; a sentence's id is its number. A hub dataset with such columns works too
  (``read_token_dataset``; a ``ClassLabel`` tag column reads as its names).

**Tag schemes** (``tag_scheme``, over every labeled file of the task): a tag is ``O`` or ``PREFIX-TYPE``. B/I only
is IOB1 or IOB2, read as IOB2 (``to_iob2``); with E or S it is BIOES, with L or U BILOU, each kept as it is. The
scores use seqeval's strict mode for the scheme, where an ``I-X`` with no ``B-X`` before it is no entity (the
conlleval script would start one there).
"""
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

from finetuning.glue_data import INDEX_COLUMNS, open_dataset
from pipeline.errors import DataError

JSON_SUFFIXES = (".json", ".jsonl")
DOCSTART = "-DOCSTART-"
OUTSIDE = "O"
DEFAULT_TEXT_COLUMN = "tokens"
DEFAULT_LABEL_COLUMN = "tags"
_TAG = re.compile(r"^([BIESLU])-(.+)$")
IOB2, BIOES, BILOU = "IOB2", "BIOES", "BILOU"


@dataclass
class TokenSentences:
    """The sentences of one file, in file order."""
    path: str
    tokens: list  # list[list[str]]
    tags: Optional[list]  # list[list[str]] aligned with tokens; None for unlabeled (test) data
    ids: list  # one string per sentence: the JSON ``id``, else the sentence number
    lines: list  # the 1-based line where each sentence starts
    one_token_per_line: bool  # CoNLL: token k of a sentence is on line lines[i] + k

    def __len__(self) -> int:
        return len(self.tokens)

    def where(self, sentence: int, token: int = 0) -> str:
        """``path:line`` of a token, for messages."""
        return f"{self.path}:{self.lines[sentence] + (token if self.one_token_per_line else 0)}"

    def head(self, n: Optional[int]) -> "TokenSentences":
        if not n or n >= len(self):
            return self
        return replace(self, tokens=self.tokens[:n], tags=self.tags[:n] if self.tags is not None else None,
                       ids=self.ids[:n], lines=self.lines[:n])


def _text(path: Path) -> str:
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    data = path.read_bytes()
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 text (byte {data[e.start]:#04x}); save the file as UTF-8")


def _read_conll(path: Path, text: str, labeled: bool) -> TokenSentences:
    tokens, tags, lines = [], [], []
    in_sentence = False
    for number, line in enumerate(text.splitlines(), start=1):
        columns = [c.strip() for c in (line.split("\t") if "\t" in line else line.split()) if c.strip()]
        if not columns or columns[0] == DOCSTART:  # a blank line (or -DOCSTART-) ends the sentence
            in_sentence = False
            continue
        if labeled and len(columns) < 2:
            raise DataError(f"{path}:{number}: token {columns[0]!r} has no tag (expected token<TAB>tag, or"
                            f" whitespace-separated columns with the tag last)")
        if not in_sentence:
            tokens.append([])
            tags.append([])
            lines.append(number)
            in_sentence = True
        tokens[-1].append(columns[0])
        tags[-1].append(columns[-1])
    return TokenSentences(str(path), tokens, tags if labeled else None, [str(i) for i in range(len(tokens))], lines,
                          one_token_per_line=True)


def _label_column(names, label_column: Optional[str], task: str) -> str:
    """--label_column_name, else ``tags``, else ``<task>_tags`` when ``names`` has it; "" when it has neither."""
    return label_column or next((name for name in (DEFAULT_LABEL_COLUMN, f"{task}_tags") if name in names), "")


def _string_list(value, what: str, where: str, names=None) -> list:
    if not isinstance(value, list) or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
        raise DataError(f"{where}: {what} must be a list of strings")
    return [names[v] if names and isinstance(v, int) else str(v) for v in value]


def _json_rows(path: Path, text: str):
    """(line number, object) of every non-blank line."""
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as e:
            raise DataError(f"{path}:{number}: invalid JSON ({getattr(e, 'msg', e)}); expected JSON lines, one"
                            f" object per line")
        yield number, row


def sentences_of_rows(path: str, rows, labeled: bool, text_column: Optional[str], label_column: Optional[str],
                      task: str = "ner", tag_names=None) -> TokenSentences:
    """The sentences of ``(line or row number, row dict)`` pairs (JSON lines, or a dataset's rows with
    ``tag_names`` the names of integer tags)."""
    tokens, tags, ids, lines = [], [], [], []
    text_column = text_column or DEFAULT_TEXT_COLUMN
    for number, row in rows:
        where = f"{path}:{number}"
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected a JSON object with {text_column!r} and tag lists")
        if text_column not in row:
            raise DataError(f"{where}: no {text_column!r} column (columns: {', '.join(row)}); set"
                            f" --text_column_name")
        words = _string_list(row[text_column], f"{text_column!r}", where)
        if labeled:
            column = _label_column(row, label_column, task)
            if not column or column not in row:
                wanted = repr(column) if column else f"{DEFAULT_LABEL_COLUMN!r} or {f'{task}_tags'!r}"
                raise DataError(f"{where}: no {wanted} column (columns: {', '.join(row)}); set --label_column_name")
            word_tags = _string_list(row[column], f"{column!r}", where, tag_names)
            if len(word_tags) != len(words):
                raise DataError(f"{where}: {len(words)} tokens but {len(word_tags)} tags")
            tags.append(word_tags)
        tokens.append(words)
        id_column = next((name for name in INDEX_COLUMNS if name in row), None)
        ids.append(str(row[id_column]) if id_column else str(len(ids)))
        lines.append(number)
    return TokenSentences(str(path), tokens, tags if labeled else None, ids, lines, one_token_per_line=False)


def read_token_file(path, labeled: bool = True, text_column: Optional[str] = None,
                    label_column: Optional[str] = None, task: str = "ner") -> TokenSentences:
    """The sentences of a CoNLL or JSON-lines file (see the module docstring); ``task`` names the fallback tag
    column ``<task>_tags`` of JSON lines. Tags are as in the file: ``tag_scheme`` and ``to_iob2`` come next."""
    path = Path(path)
    text = _text(path)
    if path.name.lower().endswith(JSON_SUFFIXES):
        sentences = sentences_of_rows(str(path), _json_rows(path, text), labeled, text_column, label_column, task)
    else:
        sentences = _read_conll(path, text, labeled)
    if not sentences.tokens:
        raise DataError(f"{path}:1: no sentence in the file (is it empty?)")
    return sentences


def read_token_dataset(name: str, config: Optional[str], split: str, labeled: bool = True,
                       text_column: Optional[str] = None, label_column: Optional[str] = None, task: str = "ner",
                       **hub_options) -> TokenSentences:
    """The sentences of split ``split`` of a hub dataset (or a local dataset folder) with a token list column and
    a tag list column, the tags strings or a ``ClassLabel`` sequence (read as its names), as ``conll2003``'s
    ``tokens``/``ner_tags``. Messages name a sentence as ``NAME [SPLIT]:ROW`` (rows from 1)."""
    where = f"{name}{f' ({config})' if config else ''} [{split}]"
    data = open_dataset(f"could not load {where}", name, config, split=split, **hub_options)
    column = _label_column(data.column_names, label_column, task)
    tag_names = getattr(getattr(data.features.get(column), "feature", None), "names", None)
    sentences = sentences_of_rows(where, enumerate(data, start=1), labeled, text_column, label_column, task, tag_names)
    if not sentences.tokens:
        raise DataError(f"{where}: no sentence in the split")
    return sentences


def _prefixes(files: list) -> dict:
    """``{prefix: (file, sentence, token)}`` of the first tag with each prefix; an unknown tag is an error."""
    found = {}
    for sentences in files:
        for i, word_tags in enumerate(sentences.tags):
            for k, tag in enumerate(word_tags):
                if tag == OUTSIDE:
                    continue
                match = _TAG.match(tag)
                if match is None:
                    hint = " (integer tags need their names: write the tag strings)" if tag.isdigit() else ""
                    raise DataError(f"{sentences.where(i, k)}: tag {tag!r} fits no tag scheme: expected O or B-, I-,"
                                    f" E-, S- (BIOES) or L-, U- (BILOU) followed by a type, e.g. B-PER{hint}")
                found.setdefault(match.group(1), (sentences, i, k))
    return found


def tag_scheme(files: list) -> tuple:
    """(the scheme the task is trained and scored in: IOB2, BIOES or BILOU; the scheme the files are in: the same,
    or IOB1 when some entity starts with ``I-``) for the labeled ``files`` taken together."""
    prefixes = _prefixes(files)
    bioes, bilou = prefixes.keys() & {"E", "S"}, prefixes.keys() & {"L", "U"}
    if bioes and bilou:
        sentences, i, k = prefixes[min(bilou)]
        raise DataError(f"{sentences.where(i, k)}: tag {sentences.tags[i][k]!r} is BILOU but other tags are BIOES"
                        f" ({', '.join(f'{p}-' for p in sorted(bioes))}): use one tag scheme")
    if bioes:
        return BIOES, BIOES
    if bilou:
        return BILOU, BILOU
    starts_inside = any(to_iob2(word_tags) != word_tags for sentences in files for word_tags in sentences.tags)
    return IOB2, "IOB1" if starts_inside else IOB2


def to_iob2(word_tags: list) -> list:
    """IOB1 (or IO) tags as IOB2: an ``I-X`` that does not continue an ``X`` entity starts one, as ``B-X``."""
    converted, previous = [], OUTSIDE
    for tag in word_tags:
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            tag = f"B-{tag[2:]}"
        converted.append(tag)
        previous = tag
    return converted


def as_scheme(sentences: TokenSentences, scheme: str) -> TokenSentences:
    """The labeled ``sentences`` with their tags in ``scheme`` (only IOB1 -> IOB2 changes anything)."""
    if scheme != IOB2 or sentences.tags is None:
        return sentences
    return replace(sentences, tags=[to_iob2(word_tags) for word_tags in sentences.tags])


def check_known_tags(sentences: TokenSentences, labels) -> None:
    """Every tag of dev data must be one the model can predict (a training tag)."""
    known = set(labels)
    for i, word_tags in enumerate(sentences.tags):
        for k, tag in enumerate(word_tags):
            if tag not in known:
                raise DataError(f"{sentences.where(i, k)}: tag {tag!r} does not occur in the training data (tags:"
                                f" {', '.join(labels)})")
