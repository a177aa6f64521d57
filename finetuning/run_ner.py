"""Finetune one model on one token-classification task (entity recognition, chunking) with one set of
hyperparameters, in the flags of the Hugging Face ``run_ner.py`` example, e.g.::

    python finetuning/run_ner.py --model_name_or_path MODEL --train_file train.conll --validation_file dev.conll \\
        --test_file test.conll --output_dir OUT --do_train --do_eval --do_predict --learning_rate 5e-5 \\
        --num_train_epochs 3 --per_device_train_batch_size 32 --max_seq_length 128 [--label_all_tokens] \\
        [--return_entity_level_metrics] [--text_column_name tokens --label_column_name ner_tags]

Files are CoNLL (a token and its tag per line, a blank line between sentences) or JSON lines with token and tag
lists, or --dataset_name's splits (finetuning/token_data.py says how each is read, and what happens to IOB1 and
BIOES tags). Every flag of ``run_glue.py`` works here as there (same loop, checkpoints, --save_model,
--progress_file, ...), except the GLUE data flags (--task_name is ner/pos/chunk here; --data_dir, --hub_dataset,
--malformed_rows and --tokenized_cache_dir have no effect: the files are read and tokenized by each job).

Writes ``eval_results.json`` (``precision``, ``recall``, ``f1``, ``accuracy``, with --return_entity_level_metrics
``TYPE_precision``/``_recall``/``_f1``/``_number`` per entity type, and the same as ``eval_*``, with
``eval_loss``), ``train_results.json``, ``all_results.json``, ``trainer_state.json`` and, with --do_predict and a
--test_file, ``predictions_test.tsv``: ``index<TAB>prediction``, the prediction being the sentence's tags, one per
word, space-separated.
"""
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: the repository's packages

from finetuning.arguments import NerArguments, finalize_ner, parse_args  # noqa: E402
from finetuning.job_run import run  # noqa: E402
from finetuning.run_glue import EPILOG  # noqa: E402
from pipeline.errors import run_reporting_errors  # noqa: E402
from pipeline.log_setup import warn_notes  # noqa: E402

log = logging.getLogger(__name__)

NER_EPILOG = """--task_name is ner, pos or chunk (default ner): it picks the JSON tag column <task_name>_tags when
there is no tags column. Only the first piece of each word is trained on its tag unless --label_all_tokens; a word
cut off by --max_seq_length is predicted O.
""" + EPILOG


def main(argv=None) -> int:
    """Exit 0 on success, 2 on a flag problem (one line each, before any work), 1 on a data or model problem."""
    model_args, data_args, args, ner_args, notes = parse_args(argv, description=__doc__, epilog=NER_EPILOG,
                                                              extra_types=(NerArguments,), prog="run_ner.py")

    def job() -> None:
        import torch

        warn_notes(log, notes + finalize_ner(model_args, data_args, args, ner_args, torch.cuda.is_available()))
        run(model_args, data_args, args, ner_args)

    return run_reporting_errors(job)


if __name__ == "__main__":
    sys.exit(main())
