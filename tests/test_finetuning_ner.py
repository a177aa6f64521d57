"""Token classification: run_ner.py reads CoNLL and JSON-lines files (one-line errors naming the file and line for
bad input), keeps IOB2/BIOES tags and reads IOB1 as IOB2, puts each word's tag on its first piece (or on every
piece), scores entities with seqeval, and trains, evaluates and predicts end to end."""
import calendar
import json

import pytest

from finetuning.run_ner import main
from finetuning.token_data import as_scheme, read_token_file, tag_scheme
from finetuning.token_encoding import entity_scores
from tests.test_finetuning_fixtures import write_tiny_model

LETTERS = "abcdefghijklmnopqrstuvwxyz0123456789"
PIECES = list(LETTERS) + [f"##{c}" for c in LETTERS] + ["##s"]  # any lowercase word splits into pieces


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("tiny_bert_pieces"), extra_tokens=PIECES)


def _conll(path, sentences, columns=2):
    """Sentences of (token, tag) pairs as CoNLL lines; 4 columns as CoNLL-2003 (token, POS, chunk, tag)."""
    blocks = ["\n".join("\t".join([token, *["X"] * (columns - 2), tag]) for token, tag in sentence)
              for sentence in sentences]
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    return path


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_conll_with_four_columns_and_docstart_and_json_lines_are_read(tmp_path):
    conll = tmp_path / "train.txt"
    conll.write_text("-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B-MISC\n\n"
                     "Peter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n", encoding="utf-8")
    sentences = read_token_file(conll)
    assert sentences.tokens == [["EU", "rejects", "German"], ["Peter", "Blackburn"]]
    assert sentences.tags == [["B-ORG", "O", "B-MISC"], ["B-PER", "I-PER"]]
    assert (sentences.ids, sentences.lines, sentences.where(1, 1)) == (["0", "1"], [3, 7], f"{conll}:8")
    assert read_token_file(conll, labeled=False).tags is None

    rows = [{"id": "a7", "tokens": ["Paris", "is", "big"], "ner_tags": ["B-LOC", "O", "O"]},
            {"id": "a8", "tokens": ["Ada", "Lovelace"], "ner_tags": ["B-PER", "I-PER"]}]
    sentences = read_token_file(_jsonl(tmp_path / "train.jsonl", rows))  # no "tags" column: ner_tags
    assert sentences.tokens == [row["tokens"] for row in rows] and sentences.tags == [row["ner_tags"] for row in rows]
    assert sentences.ids == ["a7", "a8"]
    renamed = [{"words": row["tokens"], "labels": row["ner_tags"]} for row in rows]
    sentences = read_token_file(_jsonl(tmp_path / "renamed.json", renamed), text_column="words", label_column="labels")
    assert sentences.tags == [row["ner_tags"] for row in rows] and sentences.ids == ["0", "1"]


def test_iob1_is_read_as_iob2_and_bioes_is_kept_and_scored_strictly(tmp_path):
    iob1 = read_token_file(_conll(tmp_path / "iob1.conll", [
        [("Ada", "I-PER"), ("Lovelace", "I-PER"), ("Charles", "B-PER"), ("Babbage", "I-PER"), ("met", "O")],
        [("in", "O"), ("London", "I-LOC")]]))
    assert tag_scheme([iob1]) == ("IOB2", "IOB1")
    assert as_scheme(iob1, "IOB2").tags == [["B-PER", "I-PER", "B-PER", "I-PER", "O"], ["O", "B-LOC"]]
    iob2 = read_token_file(_conll(tmp_path / "iob2.conll", [[("Ada", "B-PER"), ("Lovelace", "I-PER")]]))
    assert tag_scheme([iob2]) == ("IOB2", "IOB2") and as_scheme(iob2, "IOB2").tags == iob2.tags

    bioes = read_token_file(_conll(tmp_path / "bioes.conll", [
        [("Ada", "B-PER"), ("Lovelace", "E-PER"), ("in", "O"), ("London", "S-LOC")]]))
    assert tag_scheme([bioes, iob2]) == ("BIOES", "BIOES") and as_scheme(bioes, "BIOES").tags == bioes.tags
    # Strict BIOES: B-PER I-PER never ends (no E-PER), so it is no entity; S-LOC is right.
    scores = entity_scores(bioes.tags, [["B-PER", "I-PER", "O", "S-LOC"]], "BIOES")
    assert (scores["precision"], scores["recall"], scores["LOC_f1"], scores["PER_recall"]) == (1.0, 0.5, 1.0, 0.0)


def test_entity_scores_of_a_hand_made_case_are_seqevals():
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2

    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O", "B-PER", "O"]]
    predicted = [["B-PER", "I-PER", "O", "B-ORG"], ["I-ORG", "O", "B-PER", "B-LOC"]]
    # Gold entities: PER 0:0-1, LOC 0:3, ORG 1:0, PER 1:2 (4). Predicted: PER 0:0-1 (right), ORG 0:3 (wrong type),
    # I-ORG 1:0 (no B-: no entity in strict IOB2), PER 1:2 (right), LOC 1:3 (spurious): 4 entities, 2 right.
    scores = entity_scores(gold, predicted, "IOB2", types=("MISC",))
    assert scores["precision"] == pytest.approx(2 / 4) and scores["recall"] == pytest.approx(2 / 4)
    assert scores["f1"] == pytest.approx(0.5)
    assert scores["accuracy"] == pytest.approx(5 / 8)  # words 0:0-2 and 1:1-2 right
    assert (scores["PER_precision"], scores["PER_recall"], scores["PER_number"]) == (1.0, 1.0, 2)
    assert (scores["LOC_precision"], scores["LOC_recall"], scores["LOC_number"]) == (0.0, 0.0, 1)
    assert (scores["ORG_precision"], scores["ORG_recall"], scores["ORG_number"]) == (0.0, 0.0, 1)
    assert (scores["MISC_f1"], scores["MISC_number"]) == (0.0, 0)  # a training type absent here
    report = classification_report(gold, predicted, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    assert scores["f1"] == pytest.approx(report["micro avg"]["f1-score"])
    assert scores["PER_f1"] == pytest.approx(report["PER"]["f1-score"])
    assert entity_scores([["O", "O"]], [["O", "O"]], "IOB2") == {"accuracy": 1.0, "precision": 0.0, "recall": 0.0,
                                                                  "f1": 0.0}


def test_a_words_tag_is_on_its_first_piece_or_on_every_piece_and_cut_words_are_predicted_o(tmp_path, model):
    import numpy as np

    from finetuning.job_run import load_tokenizer
    from finetuning.token_encoding import encode_sentences, gold_tags, word_predictions

    tokenizer = load_tokenizer(str(model))
    sentences = read_token_file(_conll(tmp_path / "s.conll", [[("cats", "O"), ("in", "O"), ("Rome", "B-LOC"),
                                                               ("Italy", "B-LOC"), ("ran", "O")]]))
    labels = ("B-LOC", "I-LOC", "O")  # ids 0, 1, 2
    pieces = tokenizer.convert_ids_to_tokens(tokenizer(sentences.tokens[0], is_split_into_words=True)["input_ids"])
    assert pieces[:6] == ["[CLS]", "cat", "##s", "i", "##n", "r"]
    first = encode_sentences(tokenizer, sentences, labels, max_seq_length=10)
    # [CLS] cat ##s i ##n r ##o ##m ##e [SEP]: "Italy" and "ran" are cut off
    assert first.token_labels.tolist() == [-100, 2, -100, 2, -100, 0, -100, -100, -100, -100]
    assert first.word_index.tolist() == [-1, 0, -1, 1, -1, 2, -1, -1, -1, -1]
    every = encode_sentences(tokenizer, sentences, labels, max_seq_length=10, label_all_tokens=True)
    assert every.token_labels.tolist() == [-100, 2, 2, 2, 2, 0, 1, 1, 1, -100]  # B-LOC's later pieces: I-LOC
    assert gold_tags(first, labels) == [["O", "O", "B-LOC", "B-LOC", "O"]]  # cut-off words too
    logits = np.full((10, 3), -1.0)
    logits[[1, 3, 5], [0, 0, 0]] = 1.0  # every first piece says B-LOC
    assert word_predictions(first, [logits], labels) == [["B-LOC", "B-LOC", "B-LOC", "O", "O"]]


def _bad_inputs(tmp_path):
    """(name, argv file flags, the file and line the message must name, a phrase of it) of each bad input."""
    good = _conll(tmp_path / "good.conll", [[("Ada", "B-PER"), ("met", "O")], [("Rome", "B-LOC")]])
    cases = {
        "missing file": (tmp_path / "nowhere.conll", "", "data file not found"),
        "empty file": (tmp_path / "empty.conll", ":1", "no sentence"),
        "token without a tag": (tmp_path / "untagged.conll", ":4", "'met' has no tag"),
        "tag count differs": (tmp_path / "counts.jsonl", ":2", "2 tokens but 1 tags"),
        "missing column": (tmp_path / "column.jsonl", ":1", "no 'tags' or 'ner_tags' column"),
        "invalid JSON": (tmp_path / "broken.jsonl", ":2", "invalid JSON"),
        "not UTF-8": (tmp_path / "latin1.conll", ":2", "not UTF-8"),
        "unknown tag scheme": (tmp_path / "scheme.conll", ":3", "tag 'PER' fits no tag scheme"),
        "dev tag not in training": (tmp_path / "dev.conll", ":3", "tag 'B-ORG' does not occur in the training data"
                                                                  " (tags: B-LOC, B-PER, O)"),
    }
    (tmp_path / "empty.conll").write_text("\n\n", encoding="utf-8")
    (tmp_path / "untagged.conll").write_text("Ada\tB-PER\n\nAda\tB-PER\nmet\n", encoding="utf-8")
    _jsonl(tmp_path / "counts.jsonl", [{"tokens": ["a"], "tags": ["O"]}, {"tokens": ["a", "b"], "tags": ["O"]}])
    _jsonl(tmp_path / "column.jsonl", [{"tokens": ["a"], "labels": ["O"]}])
    (tmp_path / "broken.jsonl").write_text('{"tokens": ["a"], "tags": ["O"]}\n{"tokens": ["a"\n', encoding="utf-8")
    (tmp_path / "latin1.conll").write_bytes("Ada\tB-PER\nRen\u00e9\tI-PER\n".encode("latin-1"))
    _conll(tmp_path / "scheme.conll", [[("Ada", "B-PER")], [("Ada", "PER")]])
    _conll(tmp_path / "dev.conll", [[("Ada", "B-PER")], [("ACME", "B-ORG")]])
    return good, cases


@pytest.mark.parametrize("case", ["missing file", "empty file", "token without a tag", "tag count differs",
                                  "missing column", "invalid JSON", "not UTF-8", "unknown tag scheme",
                                  "dev tag not in training"])
def test_bad_input_is_one_line_naming_the_file_and_line(tmp_path, model, capsys, case):
    good, cases = _bad_inputs(tmp_path)
    path, line, phrase = cases[case]
    train, dev = (good, path) if case == "dev tag not in training" else (path, good)
    assert main(["--model_name_or_path", str(model), "--train_file", str(train), "--validation_file", str(dev),
                 "--output_dir", str(tmp_path / "out"), "--do_train", "--do_eval"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"{path}{line}" in errors[0] and phrase in errors[0], errors


def _calendar_sentences(years):
    """Sentences about real months, tagged exactly: the month with its year is a DATE, a day count a NUM."""
    sentences = []
    for year in years:
        for month in range(1, 13):
            name, days = calendar.month_name[month], calendar.monthrange(year, month)[1]
            weekday = calendar.day_name[calendar.weekday(year, month, 1)]
            if month % 2:
                sentences.append([(name, "B-DATE"), (str(year), "I-DATE"), ("had", "O"), (str(days), "B-NUM"),
                                  ("days", "O"), (".", "O")])
            else:
                sentences.append([("The", "O"), ("first", "O"), ("day", "O"), ("of", "O"), (name, "B-DATE"),
                                  (str(year), "I-DATE"), ("was", "O"), ("a", "O"), (weekday, "O"), (".", "O")])
    return sentences


def test_run_ner_trains_evaluates_and_predicts_with_the_search_flags(tmp_path, model, capsys):
    from transformers import AutoModelForTokenClassification

    train = _conll(tmp_path / "train.conll", _calendar_sentences([1987, 1988, 1989]), columns=4)
    dev = _jsonl(tmp_path / "dev.jsonl", [{"id": f"d{i}", "words": [w for w, _ in s], "labels": [t for _, t in s]}
                                          for i, s in enumerate(_calendar_sentences([2001])[:8])])
    test = _conll(tmp_path / "test.conll", _calendar_sentences([2024])[:5])
    out = tmp_path / "out"
    search_flags = ["--max_seq_length", "48", "--weight_decay", "0.01", "--warmup_ratio", "0.1",
                    "--lr_scheduler_type", "linear", "--model_name_or_path", str(model), "--train_file", str(train),
                    "--validation_file", str(dev), "--test_file", str(test), "--text_column_name", "words",
                    "--label_column_name", "labels", "--label_all_tokens", "--return_entity_level_metrics",
                    "--output_dir", str(out), "--do_train", "--do_eval", "--do_predict",
                    "--per_device_train_batch_size", "8", "--learning_rate", "3e-3", "--num_train_epochs", "3",
                    "--seed", "1", "--logging_steps", "0.1", "--progress_file", str(tmp_path / "progress.json"),
                    "--save_strategy", "steps", "--save_steps", "9", "--overwrite_output_dir", "--save_model",
                    "--use_cpu"]
    assert main(search_flags) == 0
    assert "tags (IOB2): B-DATE, B-NUM, I-DATE, O" in capsys.readouterr().out
    results = json.loads((out / "eval_results.json").read_text())
    entity_keys = {f"{entity}_{metric}" for entity in ("DATE", "NUM") for metric in ("precision", "recall", "f1",
                                                                                     "number")}
    plain = {"precision", "recall", "f1", "accuracy"} | entity_keys
    timing = {"eval_loss", "eval_samples", "eval_runtime", "epoch", "eval_samples_per_second",
              "eval_steps_per_second"}
    assert plain | {f"eval_{key}" for key in plain} | timing == set(results)
    assert all(0 <= results[key] <= 1 for key in plain - entity_keys | {"DATE_f1", "NUM_f1"})
    assert (results["DATE_number"], results["NUM_number"], results["eval_samples"]) == (8, 4, 8)
    assert results["f1"] == results["eval_f1"] and results["accuracy"] > 0.5
    lines = (out / "predictions_test.tsv").read_text().splitlines()
    assert lines[0] == "index\tprediction" and [line.split("\t")[0] for line in lines[1:]] == ["0", "1", "2", "3", "4"]
    words = [len(s) for s in _calendar_sentences([2024])[:5]]
    assert [len(line.split("\t")[1].split(" ")) for line in lines[1:]] == words
    assert {tag for line in lines[1:] for tag in line.split("\t")[1].split(" ")} <= {"B-DATE", "I-DATE", "B-NUM", "O"}
    assert (out / "checkpoint-9").is_dir()
    saved = AutoModelForTokenClassification.from_pretrained(out / "model")
    assert saved.config.id2label == {0: "B-DATE", 1: "B-NUM", 2: "I-DATE", 3: "O"}

    capsys.readouterr()
    rerun = search_flags[:search_flags.index("--overwrite_output_dir")]  # the same job again, interrupted after 9
    assert main(rerun) == 0
    assert f"resuming from {out / 'checkpoint-9'} at step 9/15" in capsys.readouterr().out

    # The saved model evaluated alone: its own tags, and --do_predict without --test_file predicts nothing.
    again = tmp_path / "again"
    assert main(["--model_name_or_path", str(out / "model"), "--validation_file", str(dev), "--text_column_name",
                 "words", "--label_column_name", "labels", "--output_dir", str(again), "--do_eval",
                 "--do_predict"]) == 0
    assert "nothing to predict" in capsys.readouterr().err
    assert json.loads((again / "eval_results.json").read_text())["f1"] == pytest.approx(results["f1"])
    assert not list(again.glob("predictions_*"))


def test_dataset_name_reads_a_dataset_folder_with_classlabel_tags(tmp_path, model):
    from datasets import ClassLabel, Dataset, Features, List, Value

    names = ["O", "B-DATE", "I-DATE", "B-NUM"]
    features = Features({"id": Value("string"), "tokens": List(Value("string")),
                         "ner_tags": List(ClassLabel(names=names))})
    folder = tmp_path / "calendar_ner"
    for split, years in (("train", [1990]), ("validation", [1991])):
        sentences = _calendar_sentences(years)
        Dataset.from_dict({"id": [f"{split}{i}" for i in range(len(sentences))],
                           "tokens": [[word for word, _ in s] for s in sentences],
                           "ner_tags": [[names.index(tag) for _, tag in s] for s in sentences]},
                          features=features).to_parquet(folder / f"{split}.parquet")
    out = tmp_path / "out"
    assert main(["--model_name_or_path", str(model), "--dataset_name", str(folder), "--task_name", "ner",
                 "--output_dir", str(out), "--do_train", "--do_eval", "--max_steps", "2",
                 "--per_device_train_batch_size", "8", "--max_seq_length", "48"]) == 0
    results = json.loads((out / "eval_results.json").read_text())
    assert results["eval_samples"] == 12 and 0 <= results["f1"] <= 1


def test_a_byte_level_bpe_tokenizer_reads_each_word_with_its_prefix_space(tmp_path):
    from tokenizers import ByteLevelBPETokenizer
    from transformers import AutoTokenizer, RobertaConfig, RobertaModel, RobertaTokenizer

    sentences = _calendar_sentences([1995])
    trained = ByteLevelBPETokenizer()
    trained.train_from_iterator([" ".join(word for word, _ in s) for s in sentences], vocab_size=300,
                                special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    model = json.loads(trained.to_str())["model"]
    tokenizer = RobertaTokenizer(vocab=model["vocab"], merges=[tuple(merge) for merge in model["merges"]])
    folder = tmp_path / "tiny_roberta"
    tokenizer.save_pretrained(folder)
    RobertaModel(RobertaConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=64, max_position_embeddings=80)).save_pretrained(folder)
    train = _conll(tmp_path / "train.conll", sentences)
    out = tmp_path / "out"
    assert main(["--model_name_or_path", str(folder), "--train_file", str(train), "--output_dir", str(out),
                 "--do_train", "--max_steps", "1", "--save_model", "--max_seq_length", "64"]) == 0
    saved = AutoTokenizer.from_pretrained(out / "model")
    assert saved.convert_ids_to_tokens(saved(["March", "1995"], is_split_into_words=True)["input_ids"])[1][0] == "Ġ"
