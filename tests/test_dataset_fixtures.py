"""Small corpora and a tiny BERT vocabulary that the dataset tests write for themselves, plus shared fixtures."""
import random
from pathlib import Path

import pytest

WORDS = ("the of and to in is was for on as with by at from his her an were are which this also be has had first "
         "one their its new after who they two have been other time into city school film river music world "
         "state team war year years people first during second three later under most made where many high").split()
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PIECES = ["##s", "##ed", "##ing", "##er", "##ly", ".", ",", "a", "b", "c", "d", "e"]


def write_vocab(folder: Path) -> Path:
    """A bare BERT vocab.txt folder (special tokens first, then a few words and pieces)."""
    folder.mkdir(parents=True, exist_ok=True)
    tokens = SPECIAL + [f"[unused{i}]" for i in range(3)] + sorted(set(WORDS)) + PIECES
    (folder / "vocab.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return folder


def make_article(rng: random.Random, lines: int, words_per_line=(5, 25)) -> list:
    out = []
    for _ in range(lines):
        words = [rng.choice(WORDS) for _ in range(rng.randint(*words_per_line))]
        out.append(" ".join(words).capitalize() + ".")
    return out


def write_corpus(folder: Path, files: int = 3, articles_per_file: int = 20, seed: int = 0, line_range=(1, 12)) -> Path:
    """``files`` .txt files of articles separated by blank lines (text made of the tiny vocabulary's words)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for f in range(files):
        articles = [make_article(rng, rng.randint(*line_range)) for _ in range(articles_per_file)]
        (folder / f"part_{f:02d}.txt").write_text("\n\n".join("\n".join(a) for a in articles) + "\n",
                                                  encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory):
    """(tokenizer folder, info) prepared from a tiny vocab.txt, as the stage would save it."""
    from dataset.tokenizer_setup import TokenizerRequest, prepare_tokenizer

    root = tmp_path_factory.mktemp("tiny_tokenizer")
    vocab = write_vocab(root / "vocab")
    info = prepare_tokenizer(root / "tokenizer", TokenizerRequest(name_or_path=str(vocab)))
    return root / "tokenizer", info
