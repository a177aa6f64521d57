"""Finetune one model on one GLUE task (or a task of one's own) with one set of hyperparameters.

The flags are those of the Hugging Face ``run_glue.py`` example, in the transformers 5 and the transformers 4
spelling, e.g. the ExtremeBERT paper's command::

    python finetuning/run_glue.py --model_name_or_path MODEL --task_name MRPC --max_seq_length 128 \\
        --output_dir OUT --overwrite_output_dir --do_train --do_eval --evaluation_strategy steps \\
        --per_device_train_batch_size 32 --gradient_accumulation_steps 1 --per_device_eval_batch_size 32 \\
        --learning_rate 5e-5 --weight_decay 0.01 --eval_steps 50 --max_grad_norm 1.0 --num_train_epochs 5 \\
        --lr_scheduler_type polynomial --warmup_steps 50 [--data_dir GLUE_DIR]

Training runs in ExtremeBERT's own loop (several times faster than the HF Trainer on these small jobs), not in the
HF Trainer. GLUE data comes from --data_dir (the official layout) or the Hub; one's own task from --train_file /
--validation_file / --test_file (CSV or JSON) or --dataset_name. Writes ``eval_results.json`` (the dev metrics
under the task table's names, e.g. ``f1``, and as the HF example names them, e.g. ``eval_f1``),
``train_results.json``, ``all_results.json``, ``trainer_state.json`` (the log history: loss lines and dev
evaluations), ``predictions_<SUBMISSION>.tsv`` with --do_predict (MNLI jobs also ``predictions_AX.tsv``; one's
own task ``predictions_test.tsv``), checkpoints ``checkpoint-<STEP>/`` (resumed from by a rerun without
--overwrite_output_dir) and, with --save_model, the finetuned model under ``OUTPUT_DIR/model``. Under
``torchrun`` (several GPUs) it trains with DistributedDataParallel and rank 0 writes the outputs.
"""
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: the repository's packages

from finetuning.arguments import finalize, parse_args  # noqa: E402
from finetuning.job_run import run  # noqa: E402
from pipeline.errors import ConfigError, ExtremeBertError  # noqa: E402
from pipeline.log_setup import warn_notes  # noqa: E402

log = logging.getLogger(__name__)

EPILOG = """Defaults that differ from the HF example: --pad_to_max_length is off (each batch is padded to its own
longest row: same results, faster), --per_device_eval_batch_size is 128, --precision auto uses bf16 (else fp16)
autocast on a GPU. --ignore_mismatched_sizes is always on. Every other flag of the installed transformers'
TrainingArguments (--push_to_hub, --deepspeed, --torch_compile, ...) is accepted and reported, one line each, as
having no effect here; an unknown flag is an error (exit 2)."""


def main(argv=None) -> int:
    """Exit 0 on success, 2 on a flag problem (one line, before any work), 1 on a data or model problem."""
    model_args, data_args, args, notes = parse_args(argv, description=__doc__, epilog=EPILOG)
    try:
        import torch

        notes += finalize(model_args, data_args, args, torch.cuda.is_available())
        warn_notes(log, notes)
        run(model_args, data_args, args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    except ExtremeBertError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
