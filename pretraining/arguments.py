"""Command-line flags of ``pretraining/run_pretraining.py``, and the config and paths they describe.

The settings' flags come from the settings table (``pipeline/defaults.py``, the flags named for the "pretrain"
script), under the names of 24h-BERT / ExtremeBERT's ``run_pretraining.py``. The pipeline runs the script with
``--config`` (the run's resolved config) and nothing else; a user may give flags alone, or a config plus flags that
override it. Flags of the original script that have no meaning here are accepted, and each one given prints a
one-line note naming what to use instead.
"""
import argparse
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from pipeline import layout
from pipeline.errors import ConfigError
from pipeline.init_checkpoint import StartingCheckpoint, apply_init_from
from pipeline.log_setup import add_level_flags, setup_script_logging, warn_notes
from pipeline.script_flags import (ScriptParser, add_not_applicable, add_setting_flags, config_from_flags,
                                   not_applicable_notes)
from pipeline.validation import recipe_problems

log = logging.getLogger(__name__)

SCRIPT = "pretrain"  # the script's name in the settings table
# Flags that are not settings: where to read and write, and what launchers pass.
IO_FLAGS = ("--config", "--dataset_path", "--output_dir", "--tokenizer_name", "--logging_dir", "--local_rank",
            "--push_to_hub", "--hub_model_id")
TENSORBOARD_SUBDIR = "tensorboard"  # the event files' folder in --output_dir when the script runs on its own


@dataclass(frozen=True)
class PretrainPaths:
    """Where a pretraining run reads and writes."""

    samples_dir: Path  # train_*.hdf5 / test_*.hdf5
    output_dir: Path  # final_model/, checkpoints/, metrics.jsonl, manifest.json
    tokenizer: str  # the tokenizer the samples were made with (folder or hub name)
    tensorboard_dir: Path = None  # TensorBoard event files (None: output_dir/tensorboard)
    hub_repo: str = ""  # --push_to_hub: the Hub repository final_model/ is uploaded to at the end ("" = none)

    def __post_init__(self):
        if self.tensorboard_dir is None:
            object.__setattr__(self, "tensorboard_dir", self.output_dir / TENSORBOARD_SUBDIR)


def _add_original_flags(p) -> None:
    add_not_applicable(p, "the sequence length is read from the data files", "--max_seq_length")
    add_not_applicable(p, "the vocabulary size is len(tokenizer)", "--vocab_size")
    add_not_applicable(p, "one background loader thread per process", "--num_workers")
    add_not_applicable(p, "every rank reads a disjoint part of every file (the only loader)", "--data_loader_type")
    add_not_applicable(p, "BERT with the MLM objective is the only model", "--model_type")
    add_not_applicable(p, "loading is always asynchronous", "--async_worker", "--no_async_worker", takes_value=False)
    add_not_applicable(p, "MLM only, there is no next-sentence prediction", "--no_nsp", "--add_nsp", takes_value=False)
    add_not_applicable(p, "LayerNorm is torch.nn.LayerNorm", "--layer_norm_type")
    add_not_applicable(p, "the MLM head is always applied at the masked positions only", "--sparse_mask_prediction",
                       "--no_sparse_mask_prediction", "--fused_linear_layer", "--no_fused_linear_layer",
                       "--layernorm_embedding", takes_value=False)
    add_not_applicable(p, "two token types and N(0, 0.02) initialisation, as in BERT", "--type_vocab_size",
                       "--initializer_range")
    add_not_applicable(p, "the architecture comes from the model flags or --model_name_or_path", "--config_name")
    add_not_applicable(p, "hub downloads go to the Hugging Face cache (HF_HOME)", "--cache_dir")
    add_not_applicable(p, "it is read only by the original run_glue.py", "--pretrain_run_args")
    add_not_applicable(p, "training is bounded by --max_steps and --total_training_time", "--num_epochs",
                       "--max_steps_per_epoch", "--finetune_time_markers")
    add_not_applicable(p, "DeepSpeed is always used", "--deepspeed", takes_value=False)
    add_not_applicable(p, "the DeepSpeed config is built from these flags", "--deepspeed_config", "--steps_per_print",
                       "--gradient_predivide_factor")
    add_not_applicable(p, "the DeepSpeed config is built from these flags", "--wall_clock_breakdown",
                       "--prescale_gradients", takes_value=False)
    add_not_applicable(p, "DeepSpeed's transformer kernel is not used", "--deepspeed_transformer_kernel",
                       "--stochastic_mode", "--attention_dropout_checkpoint", "--normalize_invertible",
                       "--gelu_checkpoint", takes_value=False)
    add_not_applicable(p, "AdamW is the only optimizer (these are LAMB's)", "--bias_correction", takes_value=False)
    add_not_applicable(p, "AdamW is the only optimizer (these are LAMB's)", "--max_coeff", "--min_coeff")
    add_not_applicable(p, "fp16 stops after --min_loss_scale_steps overflowing steps", "--scale_cnt_limit")
    add_not_applicable(p, "DeepSpeed's own fp16 is used", "--fp16_backend", "--fp16_opt")
    add_not_applicable(p, "early stopping is on whenever --early_stop_eval_loss > 0", "--use_early_stopping",
                       takes_value=False)
    add_not_applicable(p, "validation runs every --validation_every_steps", "--validation_epochs",
                       "--validation_epochs_begin", "--validation_epochs_end", "--validation_begin_proportion",
                       "--validation_end_proportion")
    add_not_applicable(p, "checkpoints are written every --checkpoint_every_steps; rerunning the same command"
                          " resumes from OUTPUT_DIR/checkpoints", "--num_epochs_between_checkpoints",
                       "--load_training_checkpoint", "--load_checkpoint_id")
    add_not_applicable(p, "throughput is logged every --print_steps", "--log_throughput_every")
    add_not_applicable(p, "the output folder is --output_dir", "--current_run_id")
    add_not_applicable(p, "final_model/ is always written at the end", "--finetune_checkpoint_at_end",
                       "--no_finetune_checkpoint_at_end", takes_value=False)


def build_parser() -> argparse.ArgumentParser:
    p = ScriptParser(
        description="Pretrain a BERT with the masked-language-model objective on HDF5 samples (DeepSpeed). Run with"
                    " `deepspeed [--num_gpus N] pretraining/run_pretraining.py ...` or plain `python ...` (one"
                    " process, CPU or one GPU). Rerunning the same command resumes from the newest checkpoint.")
    g = p.add_argument_group("data and output")
    g.add_argument("--config", default="", help="a YAML config (e.g. the config.yaml of a pipeline run): its settings"
                                                " and paths, overridden by any flag given")
    g.add_argument("--dataset_path", default="", help="folder of train_*.hdf5 / test_*.hdf5 sample files")
    g.add_argument("--output_dir", default="", help="receives final_model/, checkpoints/, metrics.jsonl,"
                                                    " training_curves.png and manifest.json")
    g.add_argument("--tokenizer_name", default="", help="the tokenizer the samples were made with: a folder (the"
                                                        " dataset stage writes one next to the samples) or hub name")
    g.add_argument("--logging_dir", default="", help="folder of the TensorBoard event files (SYSTEM.TENSORBOARD;"
                                                     " default OUTPUT_DIR/tensorboard, in a pipeline run"
                                                     " <run>/tensorboard/pretrain)")
    g.add_argument("--local_rank", type=int, default=-1, help="set by the DeepSpeed launcher")
    g.add_argument("--push_to_hub", action="store_true", help="upload final_model/ (with its card) to the Hugging Face"
                   " Hub at the end; the token comes from HF_TOKEN or `hf auth login`, and is checked before training")
    g.add_argument("--hub_model_id", default="", help="the repository of --push_to_hub, \"user/name\" or \"name\""
                                                      " (default: PUBLISH.HUB_REPO, else the name of --output_dir)")
    add_setting_flags(p, SCRIPT)
    add_level_flags(p)
    _add_original_flags(p)
    return p


def _paths(args, cfg) -> PretrainPaths:
    from_config = bool(args.config and cfg.DATASET.ID and cfg.PRETRAIN.ID)
    samples = args.dataset_path or (str(layout.samples_dir(cfg)) if from_config else "")
    output = args.output_dir or (str(layout.pretrain_dir(cfg)) if from_config else "")
    tokenizer = args.tokenizer_name or (str(layout.dataset_tokenizer_dir(cfg)) if from_config else "")
    events = args.logging_dir or (str(layout.tensorboard_dir_of(cfg, output)) if from_config and not args.output_dir
                                  else "")
    if not tokenizer and cfg.PRETRAIN.INIT_FROM:  # samples made with the starting checkpoint's own tokenizer
        tokenizer = StartingCheckpoint.locate(cfg.PRETRAIN.INIT_FROM).tokenizer_source
    missing = [flag for flag, value in (("--dataset_path", samples), ("--output_dir", output),
                                        ("--tokenizer_name", tokenizer)) if not value]
    if missing:
        raise ConfigError(f"give {', '.join(missing)} (or --config with the resolved config.yaml of a pipeline run)")
    return PretrainPaths(Path(samples), Path(output), tokenizer, Path(events) if events else None,
                         _hub_repo(args, cfg, Path(output)))


def _hub_repo(args, cfg, output: Path) -> str:
    """--push_to_hub's repository, checked with the token now, before any training (ConfigError)."""
    from pipeline.hub_publish import looks_like_token, publish_problems

    if looks_like_token(args.hub_model_id):
        raise ConfigError("--hub_model_id holds what looks like a Hugging Face token: give it through HF_TOKEN or"
                          " `hf auth login`")
    if not args.push_to_hub:
        return ""
    repo = args.hub_model_id or cfg.PUBLISH.HUB_REPO or output.resolve().name
    problems = publish_problems(repo, "--hub_model_id")
    if problems:
        raise ConfigError(problems)
    return repo


def parse_arguments(argv=None) -> tuple:
    """(config, paths) for ``argv``; raises ConfigError listing every problem. Notes on flags that do not apply
    go to stderr (once, from the first rank)."""
    args = build_parser().parse_args(argv)
    setup_script_logging(args)
    if os.environ.get("RANK", "0") == "0":
        warn_notes(log, not_applicable_notes(args))
    cfg = config_from_flags(args, SCRIPT, args.config)
    # The architecture follows --model_name_or_path; the tokenizer is --tokenizer_name (the samples'), which the
    # trainer checks against the checkpoint's vocabulary.
    problems = apply_init_from(cfg, tokenizer_key=None) + recipe_problems(cfg)
    if problems:
        raise ConfigError(problems)
    return cfg, _paths(args, cfg)
