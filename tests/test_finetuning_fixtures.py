"""Builders shared by the finetuning tests: a tiny BERT with its own vocabulary, and GLUE folders in the official
layout (CoLA without header, MRPC with a BOM, QQP's ``id`` test column, MNLI's ``gold_label``), written per test."""
import random
from pathlib import Path

WORDS = ("the cat dog sat ran on a mat rug big small red blue happy sad man woman saw ate fish bread house tree "
         "is was not very good bad film movie story plot quick slow").split()
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def sentence(rng: random.Random, n_words: int = 0) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n_words or rng.randint(3, 9)))


def write_tiny_model(folder: Path, dropout: float = 0.1, extra_tokens=()) -> Path:
    """A randomly initialised 2-layer BertModel plus a fast tokenizer over ``WORDS`` (and ``extra_tokens``, e.g.
    word pieces ``##s``), saved as a model folder; 128 positions, as the paper's --max_seq_length."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.txt"
    tokens = dict.fromkeys(SPECIAL + ["\"", "'", "."] + WORDS + list(extra_tokens))  # each once: ids stay < size
    vocab.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab=str(vocab), do_lower_case=True)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, hidden_dropout_prob=dropout,
                        attention_probs_dropout_prob=dropout)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _write(path: Path, rows, header=None, bom=False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = (["\t".join(header)] if header else []) + ["\t".join(map(str, row)) for row in rows]
    path.write_text(("\ufeff" if bom else "") + "\n".join(lines) + "\n", encoding="utf-8")


def write_glue(root: Path, tasks=None, n_train: int = 24, n_dev: int = 8, n_test: int = 6, seed: int = 0) -> Path:
    """GLUE folders for ``tasks`` (default: all, plus diagnostic/) in the exact official column layout."""
    rng = random.Random(seed)
    tasks = set(tasks or ("CoLA", "SST-2", "MRPC", "STS-B", "QQP", "MNLI", "QNLI", "RTE", "WNLI"))
    s = lambda: sentence(rng)  # noqa: E731
    for split, n in (("train", n_train), ("dev", n_dev)):
        if "CoLA" in tasks:  # no header: source, label, original label, sentence
            _write(root / "CoLA" / f"{split}.tsv", [("gj04", i % 2, "" if i % 2 else "*", s()) for i in range(n)])
        if "SST-2" in tasks:
            _write(root / "SST-2" / f"{split}.tsv", [(s() + " ", i % 2) for i in range(n)], ("sentence", "label"))
        if "MRPC" in tasks:  # BOM header and stray quotes in the text
            _write(root / "MRPC" / f"{split}.tsv", [(i % 2, 100 + i, 200 + i, f'" {s()} "', s()) for i in range(n)],
                   ("Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"), bom=True)
        if "STS-B" in tasks:
            _write(root / "STS-B" / f"{split}.tsv",
                   [(i, "main-captions", "MSRvid", "2012test", i, "none", "none", s(), s(), f"{(i * 0.7) % 5:.3f}")
                    for i in range(n)],
                   ("index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2",
                    "score"))
        if "QQP" in tasks:
            _write(root / "QQP" / f"{split}.tsv", [(i, 2 * i, 2 * i + 1, s(), s(), i % 2) for i in range(n)],
                   ("id", "qid1", "qid2", "question1", "question2", "is_duplicate"))
        for name in ("QNLI", "RTE"):
            if name in tasks:
                columns = ("question", "sentence") if name == "QNLI" else ("sentence1", "sentence2")
                _write(root / name / f"{split}.tsv",
                       [(i, s(), s(), ("entailment", "not_entailment")[i % 2]) for i in range(n)],
                       ("index", *columns, "label"))
        if "WNLI" in tasks:
            _write(root / "WNLI" / f"{split}.tsv", [(i, s(), s(), i % 2) for i in range(n)],
                   ("index", "sentence1", "sentence2", "label"))
    mnli_header = ("index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
                   "sentence1_parse", "sentence2_parse", "sentence1", "sentence2")
    labels = ("entailment", "neutral", "contradiction")
    if "MNLI" in tasks:
        _write(root / "MNLI" / "train.tsv", [(i, i, f"{i}e", "fiction", "( x )", "( y )", "(ROOT x)", "(ROOT y)", s(),
                                              s(), labels[i % 3], labels[i % 3]) for i in range(n_train)],
               mnli_header + ("label1", "gold_label"))
        for part in ("matched", "mismatched"):
            _write(root / "MNLI" / f"dev_{part}.tsv",
                   [(i, i, f"{i}n", "slate", "( x )", "( y )", "(ROOT x)", "(ROOT y)", s(), s(), *[labels[i % 3]] * 6)
                    for i in range(n_dev)], mnli_header + tuple(f"label{k}" for k in range(1, 6)) + ("gold_label",))
            _write(root / "MNLI" / f"test_{part}.tsv",
                   [(i, i, f"{i}c", "slate", "( x )", "( y )", "(ROOT x)", "(ROOT y)", s(), s()) for i in range(n_test)],
                   mnli_header)
        _write(root / "diagnostic" / "diagnostic.tsv", [(i, s(), s()) for i in range(n_test - 1)],
               ("index", "sentence1", "sentence2"))
    tests = {"CoLA": ("sentence",), "SST-2": ("sentence",), "MRPC": ("#1 ID", "#2 ID", "#1 String", "#2 String"),
             "STS-B": ("genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2"),
             "QNLI": ("question", "sentence"), "RTE": ("sentence1", "sentence2"), "WNLI": ("sentence1", "sentence2")}
    for name, columns in tests.items():
        if name in tasks:
            rows = [(i, *[s() if "sentence" in c or "String" in c or c == "question" else "x" for c in columns])
                    for i in range(n_test)]
            _write(root / name / "test.tsv", rows, ("index", *columns))
    if "QQP" in tasks:
        _write(root / "QQP" / "test.tsv", [(1000 + i, s(), s()) for i in range(n_test)], ("id", "question1", "question2"))
    return root


def finetune_config(tmp_path: Path, model: Path, glue: Path, config_path=None, **overrides):
    """A resolved config that runs only the finetune stage on the tiny model and GLUE folder, with a 1-job grid."""
    from orchestration.stages import load_config

    opts = {"DATASET.ENABLED": False, "PRETRAIN.ENABLED": False, "RESULT_COLLECTION.ENABLED": False,
            "SYSTEM.OUTPUT_ROOT": str(tmp_path / "out"), "FINETUNE.MODEL_NAME_OR_PATH": str(model),
            "FINETUNE.GLUE_DIR": str(glue), "FINETUNE.SEEDS": "[1]", "FINETUNE.MAX_SEQ_LENGTH": 32,
            "FINETUNE.SEARCH.LARGE.LEARNING_RATES": "[1e-3]", "FINETUNE.SEARCH.LARGE.BATCH_SIZES": "[8]",
            "FINETUNE.SEARCH.LARGE.EPOCHS": "[1]", "FINETUNE.SEARCH.SMALL.LEARNING_RATES": "[1e-3]",
            "FINETUNE.SEARCH.SMALL.BATCH_SIZES": "[8]", "FINETUNE.SEARCH.SMALL.EPOCHS": "[1]",
            "SYSTEM.NUM_GPUS": 0, **overrides}
    flat = [item for key, value in opts.items() for item in (key, str(value) if str(value) else "\"\"")]
    return load_config(config_path, flat, base_dir=tmp_path)
