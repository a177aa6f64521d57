"""Command-line flags of ``pretraining/run_pretraining.py``.

The names follow 24h-BERT / ExtremeBERT's ``run_pretraining.py`` so their launch scripts run unchanged; flags of
theirs that have no meaning here are accepted and marked "not applicable" in ``--help`` (for example the
epoch-based validation/checkpoint schedule: this trainer counts in optimizer steps and hours).
"""
import argparse

from pipeline.errors import ConfigError

PRECISIONS = ("auto", "fp16", "bf16", "fp32")
SCHEDULE_BASES = ("step", "time")
CURVES = ("esd", "linear", "cosine", "constant")
PRESET_NAMES = ("bert-tiny", "bert-mini", "bert-small", "bert-medium", "bert-base", "bert-large")


def _not_applicable(group, reason: str, *flags, takes_value: bool = True) -> None:
    for flag in flags:
        if takes_value:
            group.add_argument(flag, default=None, metavar="X", help=f"not applicable: {reason}")
        else:
            group.add_argument(flag, action="store_true", help=f"not applicable: {reason}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Pretrain a BERT with the masked-language-model objective on HDF5 samples (DeepSpeed). Run with"
                    " `deepspeed [--num_gpus N] pretraining/run_pretraining.py ...` or plain `python ...` (one"
                    " process, CPU or one GPU). Rerunning the same command resumes from the newest checkpoint.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)

    g = p.add_argument_group("data and output")
    g.add_argument("--dataset_path", required=True, help="folder of train_*.hdf5 / test_*.hdf5 sample files")
    g.add_argument("--output_dir", required=True, help="receives final_model/, checkpoints/, metrics.jsonl,"
                                                       " training_curves.png and manifest.json")
    g.add_argument("--tokenizer_name", required=True, help="Hugging Face tokenizer folder (or hub name) the samples"
                                                           " were made with; it is saved with the final model")
    g.add_argument("--masked_lm_prob", type=float, default=0.15,
                   help="dynamic masking: fraction of tokens predicted, for files that do not record it")
    g.add_argument("--max_predictions_per_seq", type=int, default=20,
                   help="dynamic masking: cap on predicted tokens per sample, for files that do not record it")
    g.add_argument("--data_loader_type", default="dist", choices=["dist"],
                   help="every rank reads a disjoint part of every file (the only loader)")
    _not_applicable(g, "the sequence length is read from the data files", "--max_seq_length")
    _not_applicable(g, "the vocabulary size is len(tokenizer)", "--vocab_size")
    _not_applicable(g, "one background loader thread per process", "--num_workers")
    _not_applicable(g, "loading is always asynchronous", "--async_worker", takes_value=False)
    _not_applicable(g, "MLM only, there is no next-sentence prediction", "--no_nsp", takes_value=False)

    g = p.add_argument_group("model")
    g.add_argument("--model_type", default="bert-mlm", choices=["bert-mlm"], help="BERT with the MLM objective")
    g.add_argument("--preset", "--model_preset", dest="preset", default="bert-base", choices=PRESET_NAMES,
                   help="model size; the explicit size flags below override its values")
    g.add_argument("--hidden_size", type=int, default=0, help="0 = the preset's")
    g.add_argument("--num_hidden_layers", type=int, default=0, help="0 = the preset's")
    g.add_argument("--num_attention_heads", type=int, default=0, help="0 = the preset's")
    g.add_argument("--intermediate_size", type=int, default=0, help="0 = the preset's")
    g.add_argument("--hidden_act", default="gelu", choices=["gelu", "relu", "gelu_new"])
    g.add_argument("--hidden_dropout_prob", type=float, default=0.1)
    g.add_argument("--attention_probs_dropout_prob", type=float, default=0.1)
    g.add_argument("--encoder_ln_mode", default="pre-ln", choices=["pre-ln", "post-ln"])
    g.add_argument("--max_position_embeddings", type=int, default=512)
    g.add_argument("--compile", action="store_true", help="wrap the model in torch.compile")
    _not_applicable(g, "LayerNorm is torch.nn.LayerNorm", "--layer_norm_type")
    _not_applicable(g, "the MLM head is always applied at the masked positions only", "--sparse_mask_prediction",
                    "--fused_linear_layer", "--layernorm_embedding", takes_value=False)

    g = p.add_argument_group("optimization")
    g.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    g.add_argument("--train_batch_size", type=int, default=4096,
                   help="global batch in samples = micro batch x processes x gradient accumulation")
    g.add_argument("--train_micro_batch_size_per_gpu", type=int, default=32,
                   help="samples per forward pass per process")
    g.add_argument("--optimizer_type", default="adamw", choices=["adamw"])
    g.add_argument("--weight_decay", type=float, default=0.01, help="not applied to biases and LayerNorm weights")
    g.add_argument("--adam_beta1", type=float, default=0.9)
    g.add_argument("--adam_beta2", type=float, default=0.98)
    g.add_argument("--adam_eps", type=float, default=1e-6)
    g.add_argument("--gradient_clipping", type=float, default=0.0, help="max gradient norm; 0 = off")
    g.add_argument("--zero_stage", type=int, default=0, choices=[0, 1, 2, 3], help="DeepSpeed ZeRO stage")

    g = p.add_argument_group("schedule and budget")
    g.add_argument("--lr_schedule", default="step", choices=SCHEDULE_BASES,
                   help="horizon of the schedule: --max_steps (step) or --total_training_time (time)")
    g.add_argument("--curve", default="esd", choices=CURVES, help="decay after the linear warmup")
    g.add_argument("--warmup_proportion", type=float, default=0.06, help="fraction of the horizon in linear warmup")
    g.add_argument("--esd_ratio", type=float, default=2 ** -0.5, help="ESD r: interval i ends at 1 - r^i")
    g.add_argument("--esd_start_interval", type=int, default=6, help="ESD l: the rate stays at its peak until 1 - r^l")
    g.add_argument("--max_steps", type=int, default=23000, help="optimizer steps: the step horizon and an exact stop")
    g.add_argument("--total_training_time", type=float, default=24.0,
                   help="hours: the time horizon and a stop (validation and saving included)")
    g.add_argument("--early_exit_time_marker", type=float, default=0.0,
                   help="hours: stop earlier than --total_training_time without changing the schedule (0 = off)")
    _not_applicable(g, "training is bounded by --max_steps and --total_training_time", "--num_epochs",
                    "--max_steps_per_epoch", "--finetune_time_markers")

    g = p.add_argument_group("precision and engine")
    g.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="auto = bf16 where the GPU supports it, else fp16 on GPU; on CPU bf16 where the CPU has bf16"
                        " instructions (AVX512-BF16/AMX), else fp32")
    g.add_argument("--fp16", action="store_true", help="same as --precision fp16 (dynamic loss scaling; GPU only)")
    g.add_argument("--bf16", action="store_true", help="same as --precision bf16")
    g.add_argument("--fp32", action="store_true", help="same as --precision fp32")
    g.add_argument("--deepspeed", action="store_true", help="accepted for compatibility: DeepSpeed is always used")
    g.add_argument("--local_rank", type=int, default=-1, help="set by the DeepSpeed launcher")
    g.add_argument("--min_loss_scale_steps", type=int, default=20,
                   help="fp16: stop when this many steps in a row overflow at the minimum loss scale")
    _not_applicable(g, "the DeepSpeed config is built from these flags", "--deepspeed_config")
    _not_applicable(g, "DeepSpeed's own fp16 is used", "--fp16_backend", "--fp16_opt")

    g = p.add_argument_group("validation and early stopping")
    g.add_argument("--do_validation", action=argparse.BooleanOptionalAction, default=True,
                   help="validation loss on the test_* files every --validation_every_steps and at the end")
    g.add_argument("--validation_every_steps", type=int, default=500, help="0 = only at the end")
    g.add_argument("--validation_max_samples", type=int, default=8192, help="held-out samples per validation; 0 = all")
    g.add_argument("--validation_micro_batch", type=int, default=0, help="0 = --train_micro_batch_size_per_gpu")
    g.add_argument("--use_early_stopping", action="store_true",
                   help="after --early_stop_time minutes, stop when the validation loss is above"
                        " --early_stop_eval_loss (NaN losses and a stuck fp16 loss scale always stop the run)")
    g.add_argument("--early_stop_time", type=float, default=0.0, help="minutes")
    g.add_argument("--early_stop_eval_loss", type=float, default=0.0)
    _not_applicable(g, "validation runs every --validation_every_steps", "--validation_epochs",
                    "--validation_epochs_begin", "--validation_epochs_end", "--validation_begin_proportion",
                    "--validation_end_proportion")

    g = p.add_argument_group("checkpoints")
    g.add_argument("--checkpoint_every_steps", type=int, default=1000,
                   help="steps between DeepSpeed checkpoints (also written at the end and on SIGTERM)")
    g.add_argument("--num_checkpoints_to_keep", type=int, default=2, help="newest checkpoints kept")
    _not_applicable(g, "checkpoints are every --checkpoint_every_steps; rerunning the same command resumes"
                       " from OUTPUT_DIR/checkpoints", "--num_epochs_between_checkpoints", "--load_training_checkpoint",
                    "--load_checkpoint_id")

    g = p.add_argument_group("logging")
    g.add_argument("--print_steps", "--log_every_steps", dest="print_steps", type=int, default=10,
                   help="steps between console/metrics.jsonl lines")
    g.add_argument("--job_name", default="pretraining", help="run name in logs and wandb")
    g.add_argument("--project_name", default="extremebert", help="wandb project")
    g.add_argument("--wandb", action="store_true", help="log to Weights & Biases (rank 0)")
    g.add_argument("--wandb_mode", default="", choices=["", "online", "offline", "disabled"],
                   help="\"\" = $WANDB_MODE or online")
    g.add_argument("--wandb_entity", default="")
    g.add_argument("--seed", type=int, default=42, help="initialisation, data order, masking and dropout")
    g.add_argument("--manifest_settings_file", default="",
                   help="JSON file whose content becomes the manifest's settings (the pipeline passes its own)")
    _not_applicable(g, "throughput is logged every --print_steps", "--log_throughput_every")
    _not_applicable(g, "the output folder is --output_dir", "--current_run_id")
    return p


def resolve_precision(args) -> str:
    """The requested precision from --precision and the --fp16/--bf16/--fp32 shortcuts (at most one)."""
    shortcuts = [name for name in ("fp16", "bf16", "fp32") if getattr(args, name)]
    if len(shortcuts) > 1:
        raise ConfigError(f"give at most one of --fp16/--bf16/--fp32 (got {', '.join('--' + s for s in shortcuts)})")
    if shortcuts and args.precision not in ("auto", shortcuts[0]):
        raise ConfigError(f"--precision {args.precision} contradicts --{shortcuts[0]}")
    return shortcuts[0] if shortcuts else args.precision


def check_arguments(args, world_size: int) -> None:
    """Range and divisibility checks that need no data; raises ConfigError listing every problem."""
    problems = []
    per_step = args.train_micro_batch_size_per_gpu * world_size
    if args.train_micro_batch_size_per_gpu < 1 or args.train_batch_size < 1:
        problems.append("--train_batch_size and --train_micro_batch_size_per_gpu must be >= 1")
    elif args.train_batch_size % per_step:
        problems.append(f"--train_batch_size {args.train_batch_size} is not divisible by"
                        f" --train_micro_batch_size_per_gpu x processes = {args.train_micro_batch_size_per_gpu} x"
                        f" {world_size}; choose a multiple of {per_step}")
    if args.max_steps < 1:
        problems.append("--max_steps must be >= 1")
    if args.total_training_time <= 0:
        problems.append("--total_training_time must be > 0 hours")
    if not 0 <= args.warmup_proportion < 1:
        problems.append("--warmup_proportion must be in [0, 1)")
    if not 0 < args.esd_ratio < 1:
        problems.append("--esd_ratio must be in (0, 1)")
    if args.esd_start_interval < 0:
        problems.append("--esd_start_interval must be >= 0")
    if not 0 < args.masked_lm_prob < 1:
        problems.append("--masked_lm_prob must be in (0, 1)")
    if args.max_predictions_per_seq < 1:
        problems.append("--max_predictions_per_seq must be >= 1")
    if args.checkpoint_every_steps < 1 or args.num_checkpoints_to_keep < 1 or args.print_steps < 1:
        problems.append("--checkpoint_every_steps, --num_checkpoints_to_keep and --print_steps must be >= 1")
    if args.lr <= 0:
        problems.append("--lr must be > 0")
    if problems:
        raise ConfigError(problems)


def parse_arguments(argv=None):
    args = build_parser().parse_args(argv)
    args.precision = resolve_precision(args)
    return args
