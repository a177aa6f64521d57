"""Every setting of ExtremeBERT, declared once: key, default, one-line meaning, allowed values, script flags and
identity role. The config, its checks, the scripts' flags, the run IDs and the README's reference all come from this
table (docs/architecture.md, "One declaration per setting"); YAML files and ``--opts`` only override its keys.
"""
import copy
from functools import reduce
from pathlib import Path

from yacs.config import CfgNode as CN

from pipeline.log_setup import LEVELS as LOG_LEVELS
from pipeline.setting import FINETUNE_SCRIPT, HORIZON, OPERATIONAL, RESULT_IF_CHANGED, SEARCH, Setting as S

# Model shapes by preset name (the MODEL.PRESET choices); pretraining.modeling builds its config from them.
MODEL_PRESETS = {
    "bert-tiny": dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=512),
    "bert-mini": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024),
    "bert-small": dict(hidden_size=512, num_hidden_layers=4, num_attention_heads=8, intermediate_size=2048),
    "bert-medium": dict(hidden_size=512, num_hidden_layers=8, num_attention_heads=8, intermediate_size=2048),
    "bert-base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    "bert-large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
}
# Learning-rate curves after warmup (the PRETRAIN.SCHEDULER choices); pretraining.schedulers implements each.
LR_CURVES = ("esd", "linear", "cosine", "constant", "exp", "inverse_time", "poly", "step")
PRECISIONS = ("auto", "fp16", "bf16", "fp32")

_PRE, _DATA, _SHARD, _SAMPLES = ("pretrain",), ("shard", "samples"), ("shard",), ("samples",)
_FT = (FINETUNE_SCRIPT,)

SETTINGS = (
    # -- SYSTEM --------------------------------------------------------------------------------------------------
    S("SYSTEM.NUM_GPUS", -1, "GPUs per node for pretraining/finetuning: -1 = all visible, 0 = CPU only", range="[-1, inf)"),
    S("SYSTEM.MAX_MEMORY_IN_GB", 16.0, "hard cap on the peak RAM of a data stage, all worker processes together (float)",
      range="(0, inf)", flags=("--max_memory",), scripts=_DATA, identity=OPERATIONAL),
    S("SYSTEM.NUM_WORKERS", 0, "CPU processes for data work: 0 = number of CPU cores", range="[0, inf)",
      flags=("--n_processes",), scripts=_SAMPLES, identity=OPERATIONAL),
    S("SYSTEM.OUTPUT_ROOT", "runs", "folder that receives everything the pipeline writes (datasets, runs, logs)"),
    S("SYSTEM.SEED", 42, "global random seed (sharding, masking, initialisation, data order)", flags=("--seed",),
      scripts=("shard", "samples", "pretrain")),
    S("SYSTEM.HOSTFILE", "", "DeepSpeed hostfile for multi-node pretraining (\"\" = single node)"),
    S("SYSTEM.MASTER_PORT", 0, "torch.distributed rendezvous port: 0 = pick a free one", range="[0, 65535]"),
    S("SYSTEM.PROCESSES_PER_NODE", 0, "training processes per node: 0 = one per GPU (one process on CPU); N = N ranks"
      " through the DeepSpeed launcher (gloo on CPU; on CPU each finetuning job also runs as N processes)",
      range="[0, inf)", identity=OPERATIONAL),
    S("SYSTEM.TENSORBOARD", True, "write TensorBoard event files of pretraining and of each finetuning job into the"
                                  " run folder's tensorboard/ (tensorboard --logdir OUTPUT_ROOT/runs/ID/tensorboard)",
      flags=("--tensorboard",), scripts=_PRE, identity=OPERATIONAL),
    S("SYSTEM.LOG_LEVEL", "INFO", "what the console shows: DEBUG | INFO | WARNING | ERROR (main.py's and the scripts'"
      " --quiet = WARNING and --verbose = DEBUG override it); logs/<stage>.log keeps DEBUG either way",
      choices=LOG_LEVELS, identity=OPERATIONAL),
    # -- INSTALL -------------------------------------------------------------------------------------------------
    S("INSTALL.ENABLED", True, "check that the running environment has every dependency before the other stages"),
    # -- DEMO_DATA -----------------------------------------------------------------------------------------------
    S("DEMO_DATA.ENABLED", False, "build the offline demo corpus and demo GLUE-format tasks first (the quickstart's data)"),
    S("DEMO_DATA.OUTPUT_DIR", "runs/demo_data", "where the demo corpus (corpus/) and demo tasks (glue/) are written"),
    # -- WANDB ---------------------------------------------------------------------------------------------------
    S("WANDB.ENABLED", False, "log pretraining/finetuning to Weights & Biases (the key comes from $WANDB_API_KEY)",
      flags=("--wandb",), scripts=_PRE),
    S("WANDB.PROJECT", "extremebert", "wandb project name", flags=("--project_name",), scripts=_PRE),
    S("WANDB.ENTITY", "", "wandb entity (team or user); \"\" = your default entity", flags=("--wandb_entity",),
      scripts=_PRE),
    S("WANDB.MODE", "online", "online | offline | disabled", choices=("online", "offline", "disabled"),
      flags=("--wandb_mode",), scripts=_PRE),
    # -- TOKENIZER -----------------------------------------------------------------------------------------------
    S("TOKENIZER.NAME_OR_PATH", "bert-base-uncased", "Hugging Face hub name or local tokenizer folder",
      flags=("--tokenizer_name",), scripts=_SAMPLES),
    S("TOKENIZER.TRAIN", False, "train a new WordPiece vocabulary on the dataset's own text instead of loading one",
      flags=("--train_tokenizer",), scripts=_SAMPLES),
    S("TOKENIZER.VOCAB_SIZE", 30522, "vocabulary size when TRAIN is True", range="[8, inf)", flags=("--vocab_size",),
      scripts=_SAMPLES),
    S("TOKENIZER.MIN_FREQUENCY", 2, "minimum count of a WordPiece token when TRAIN is True", range="[1, inf)",
      flags=("--min_frequency",), scripts=_SAMPLES),
    S("TOKENIZER.TRAIN_MAX_CHARS", 500_000_000, "characters of corpus used to train the vocabulary (0 = all)",
      range="[0, inf)", flags=("--train_max_chars",), scripts=_SAMPLES),
    S("TOKENIZER.ADD_DOMAIN_TOKENS", 0, "add this many words of the corpus that the loaded vocabulary splits most as new"
                                        " tokens (with PRETRAIN.INIT_FROM: each new row starts as the mean of its"
                                        " pieces' rows)", range="[0, inf)", flags=("--add_domain_tokens",),
      scripts=_SAMPLES, identity=RESULT_IF_CHANGED),
    # -- DATASET -------------------------------------------------------------------------------------------------
    S("DATASET.ENABLED", True, "run the dataset stage (raw text -> text shards -> HDF5 samples)", identity=OPERATIONAL),
    S("DATASET.ID", "", "name of the prepared dataset; \"\" = derived from the inputs (their files' sizes and times)"
                        " and every setting below", identity=OPERATIONAL),
    S("DATASET.HUGGINGFACE_DATASETS", [], "hub datasets as [name, subset] or [name, subset, text_column], then"
                                          " optional \"split=NAME\", \"revision=REF\" items", element_type=list),
    S("DATASET.CUSTOMIZED_DATASETS", [], "folders of .txt files, articles separated by blank lines", element_type=str),
    S("DATASET.ENCODING_ERRORS", "strict", "non-UTF-8 bytes in .txt files: strict (error) | replace | ignore",
      choices=("strict", "replace", "ignore"), flags=("--encoding_errors",), scripts=_SHARD),
    S("DATASET.NUM_TRAIN_SHARDS", 256, "number of training shards", range="[1, inf)", flags=("--num_train_shards",),
      scripts=_SHARD),
    S("DATASET.NUM_TEST_SHARDS", 128, "number of held-out (validation) shards", range="[0, inf)",
      flags=("--num_test_shards",), scripts=_SHARD),
    S("DATASET.FRAC_TEST", 0.1, "fraction of the text routed to the held-out shards, in [0, 1)", range="[0, 1)",
      flags=("--frac_test",), scripts=_SHARD),
    S("DATASET.MAX_SEQ_LENGTH", 128, "tokens per sample, [CLS] and [SEP] included", range="[8, 65535]",
      flags=("--max_seq_length",), scripts=_SAMPLES),
    # Default full_sentences (issue 23): pretraining computes every row at full length, so the [PAD] positions that
    # "document" leaves are compute spent on nothing: 44% of the rows on paragraph-per-document text and 77% on
    # sentence-per-document text at seq 128, against ~0% packed (BENCHMARKS.md, "Packing: padding share"). On long
    # documents (Wikipedia articles) the two differ by ~1% of padding, so packing costs nothing there; RoBERTa
    # trains this way. legacy_default: data made as "document" (every dataset before issue 23) keep their dataset
    # ID; the default's data differ from those, so they get a new one.
    S("DATASET.PACKING", "full_sentences", "how articles fill rows: full_sentences (rows filled across articles, a"
                                           " [SEP] between two; only a shard's last row padded) | document (a row never"
                                           " crosses an article; each article's tail padded, as before issue 23)",
      choices=("document", "full_sentences"), flags=("--packing",), scripts=_SAMPLES, identity=RESULT_IF_CHANGED,
      legacy_default="document"),
    S("DATASET.MASKING", "dynamic", "static (masks written to disk, DUP_FACTOR copies) | dynamic (masks drawn at load)",
      choices=("static", "dynamic"), flags=("--masking",), scripts=_SAMPLES),
    # Whole-word masking needs WordPiece "##" pieces to find words (the vocabulary the pipeline trains has them); a
    # vocabulary without them (byte-level BPE) is refused rather than split into words by a guess.
    S("DATASET.MASKING_UNIT", "token", "token (each piece masked on its own) | word (all pieces of a word masked"
                                       " together, 80/10/10 per word, BERT-wwm's budget; needs a WordPiece vocabulary"
                                       " with ## pieces)", choices=("token", "word"), flags=("--masking_unit",),
      scripts=_SAMPLES, identity=RESULT_IF_CHANGED),
    S("DATASET.MASKED_LM_PROB", 0.15, "fraction of tokens selected for the MLM loss, in (0, 1)", range="(0, 1)",
      flags=("--masked_lm_prob",), scripts=("samples", "pretrain")),
    S("DATASET.MAX_PREDICTIONS_PER_SEQ", 20, "cap on masked positions per sample", range="[1, inf)",
      flags=("--max_predictions_per_seq",), scripts=("samples", "pretrain")),
    S("DATASET.DUP_FACTOR", 10, "differently-masked copies of each sample in static mode", range="[1, inf)",
      flags=("--dup_factor",), scripts=_SAMPLES),
    S("DATASET.DO_LOWER_CASE", True, "lower-case text before tokenizing (must match the tokenizer)",
      flags=("--do_lower_case:value",), scripts=_SAMPLES),
    # -- MODEL ---------------------------------------------------------------------------------------------------
    S("MODEL.PRESET", "bert-base", " | ".join(MODEL_PRESETS), choices=tuple(MODEL_PRESETS),
      flags=("--preset", "--model_preset"), scripts=_PRE),
    S("MODEL.HIDDEN_SIZE", 0, "hidden width; 0 = the preset's", range="[0, inf)", flags=("--hidden_size",),
      scripts=_PRE),
    S("MODEL.NUM_HIDDEN_LAYERS", 0, "transformer blocks; 0 = the preset's", range="[0, inf)",
      flags=("--num_hidden_layers",), scripts=_PRE),
    S("MODEL.NUM_ATTENTION_HEADS", 0, "attention heads; 0 = the preset's", range="[0, inf)",
      flags=("--num_attention_heads",), scripts=_PRE),
    S("MODEL.INTERMEDIATE_SIZE", 0, "feed-forward width; 0 = the preset's (4 x hidden)", range="[0, inf)",
      flags=("--intermediate_size",), scripts=_PRE),
    S("MODEL.HIDDEN_ACT", "gelu", "feed-forward activation: gelu | relu | gelu_new", choices=("gelu", "relu", "gelu_new"),
      flags=("--hidden_act",), scripts=_PRE),
    S("MODEL.HIDDEN_DROPOUT_PROB", 0.1, "dropout on hidden states, in [0, 1)", range="[0, 1)",
      flags=("--hidden_dropout_prob",), scripts=_PRE),
    S("MODEL.ATTENTION_PROBS_DROPOUT_PROB", 0.1, "dropout on attention probabilities, in [0, 1)", range="[0, 1)",
      flags=("--attention_probs_dropout_prob",), scripts=_PRE),
    S("MODEL.ENCODER_LN_MODE", "pre-ln", "pre-ln (stable at high LR) | post-ln (original BERT)",
      choices=("pre-ln", "post-ln"), flags=("--encoder_ln_mode",), scripts=_PRE),
    S("MODEL.MAX_POSITION_EMBEDDINGS", 512, "longest sequence the position embeddings cover", range="[8, inf)",
      flags=("--max_position_embeddings",), scripts=_PRE),
    S("MODEL.COMPILE", False, "wrap the model in torch.compile", flags=("--compile",), scripts=_PRE),
    # -- PRETRAIN ------------------------------------------------------------------------------------------------
    S("PRETRAIN.ENABLED", True, "run the pretraining stage (HDF5 samples -> final_model/)", identity=OPERATIONAL),
    S("PRETRAIN.ID", "", "name of the pretraining run; \"\" = derived from the dataset ID and every setting below",
      flags=("--job_name",), scripts=_PRE, identity=OPERATIONAL),
    S("PRETRAIN.NUM_STEPS", 23000, "optimizer steps (the step schedule's horizon and an exact stop)", range="[1, inf)",
      flags=("--max_steps",), scripts=_PRE, identity=HORIZON),
    S("PRETRAIN.TOTAL_TRAINING_HOURS", 24.0, "wall-clock budget in hours (the time schedule's horizon and a stop)",
      range="(0, inf)", flags=("--total_training_time",), scripts=_PRE, identity=HORIZON),
    S("PRETRAIN.SCHEDULE_BASIS", "step", "step (schedule over NUM_STEPS) | time (over TOTAL_TRAINING_HOURS) |"
                                         " constant_step (over NUM_STEPS, warmup WARMUP_STEPS steps)",
      choices=("step", "time", "constant_step"), flags=("--lr_schedule",), scripts=_PRE),
    # SCHEDULER, WARMUP_PROPORTION and LEARNING_RATE: measured by benchmarks/bench_time_to_quality.py (BENCHMARKS.md,
    # "Time to quality"): at an equal budget ESD ended lowest (held-out 6.77; constant 6.79, linear 6.89, cosine
    # 6.90) and pre-LN at 1e-3 with a 6% warmup reached HF run_mlm's final loss in under a sixth of its time.
    S("PRETRAIN.SCHEDULER", "esd", "curve after the warmup: esd (Elastic Step Decay) | linear | cosine | constant | exp |"
                                   " inverse_time | poly | step (the originals' curves, parameters below)",
      choices=LR_CURVES, flags=("--curve",), scripts=_PRE),
    S("PRETRAIN.WARMUP_PROPORTION", 0.06, "fraction of the horizon spent in linear warmup, in [0, 1)", range="[0, 1)",
      flags=("--warmup_proportion",), scripts=_PRE),
    S("PRETRAIN.LEARNING_RATE", 1e-3, "peak learning rate", range="(0, inf)", flags=("--lr", "--learning_rate"),
      scripts=_PRE),
    S("PRETRAIN.BATCH_SIZE", 4096, "global batch size in samples (micro batch x GPUs x accumulation)", range="[1, inf)",
      flags=("--train_batch_size",), scripts=_PRE),
    S("PRETRAIN.MICRO_BATCH_SIZE_PER_GPU", 32, "samples per forward pass per GPU (or per CPU process)", range="[1, inf)",
      flags=("--train_micro_batch_size_per_gpu",), scripts=_PRE),
    S("PRETRAIN.PRECISION", "auto", "auto (GPU: bf16 where supported, else fp16; CPU: bf16 if it has bf16"
                                    " instructions, else fp32) | fp16 | bf16 | fp32", choices=PRECISIONS,
      flags=("--precision", "--fp16=fp16", "--bf16=bf16", "--fp32=fp32"), scripts=_PRE),
    S("PRETRAIN.OPTIMIZER", "adamw", "adamw", choices=("adamw",), flags=("--optimizer_type",), scripts=_PRE),
    S("PRETRAIN.WEIGHT_DECAY", 0.01, "AdamW weight decay (not applied to biases and LayerNorm)", range="[0, inf)",
      flags=("--weight_decay",), scripts=_PRE),
    S("PRETRAIN.ADAM_BETA1", 0.9, "AdamW beta1", range="[0, 1)", flags=("--adam_beta1",), scripts=_PRE),
    S("PRETRAIN.ADAM_BETA2", 0.98, "AdamW beta2", range="[0, 1)", flags=("--adam_beta2",), scripts=_PRE),
    S("PRETRAIN.ADAM_EPS", 1e-6, "AdamW epsilon", range="(0, inf)", flags=("--adam_eps",), scripts=_PRE),
    S("PRETRAIN.GRADIENT_CLIPPING", 0.0, "max gradient norm; 0 = no clipping", range="[0, inf)",
      flags=("--gradient_clipping",), scripts=_PRE),
    S("PRETRAIN.ZERO_STAGE", 0, "DeepSpeed ZeRO stage 0-3; fp16/bf16 run at stage >= 1 (0 becomes 1: DeepSpeed keeps"
                                " fp32 master weights there)", range="[0, 3]", flags=("--zero_stage",), scripts=_PRE),
    S("PRETRAIN.LOG_EVERY_STEPS", 10, "steps between console/metrics.jsonl lines", range="[1, inf)",
      flags=("--print_steps", "--log_every_steps"), scripts=_PRE, identity=OPERATIONAL),
    S("PRETRAIN.VALIDATION_EVERY_STEPS", 500, "steps between validation-loss evaluations (0 = only at the end)",
      range="[0, inf)", flags=("--validation_every_steps",), scripts=_PRE, identity=OPERATIONAL),
    S("PRETRAIN.VALIDATION_MAX_SAMPLES", 8192, "held-out samples used per validation (0 = all)", range="[0, inf)",
      flags=("--validation_max_samples",), scripts=_PRE, identity=OPERATIONAL),
    S("PRETRAIN.CHECKPOINT_EVERY_STEPS", 1000, "steps between resumable DeepSpeed checkpoints", range="[1, inf)",
      flags=("--checkpoint_every_steps",), scripts=_PRE, identity=OPERATIONAL),
    S("PRETRAIN.KEEP_CHECKPOINTS", 2, "newest checkpoints kept on disk", range="[1, inf)",
      flags=("--num_checkpoints_to_keep",), scripts=_PRE, identity=OPERATIONAL),
    S("PRETRAIN.EARLY_STOP_TIME_MINUTES", 0.0, "after this many minutes, stop if validation loss > EARLY_STOP_EVAL_LOSS",
      range="[0, inf)", flags=("--early_stop_time",), scripts=_PRE),
    S("PRETRAIN.EARLY_STOP_EVAL_LOSS", 0.0, "loss threshold for the early stop above (0 = off)", range="[0, inf)",
      flags=("--early_stop_eval_loss",), scripts=_PRE),
    S("PRETRAIN.ESD.RATIO", 0.7071067811865476, "r in the ESD equation: interval i ends at 1 - r^i of the horizon",
      range="(0, 1)", flags=("--esd_ratio",), scripts=_PRE),
    S("PRETRAIN.ESD.START_INTERVAL", 6, "l in the ESD equation: the rate stays at its peak until 1 - r^l",
      range="[0, inf)", flags=("--esd_start_interval",), scripts=_PRE),
    S("PRETRAIN.VALIDATE", True, "compute the held-out loss every VALIDATION_EVERY_STEPS and at the end",
      flags=("--do_validation",), scripts=_PRE, identity=OPERATIONAL),
    S("PRETRAIN.VALIDATION_MICRO_BATCH", 0, "samples per validation forward pass; 0 = MICRO_BATCH_SIZE_PER_GPU",
      range="[0, inf)", flags=("--validation_micro_batch",), scripts=_PRE, identity=OPERATIONAL),
    S("PRETRAIN.MIN_LOSS_SCALE_STEPS", 20, "fp16: stop when this many steps in a row overflow at the minimum loss scale",
      range="[1, inf)", flags=("--min_loss_scale_steps",), scripts=_PRE, identity=OPERATIONAL),
    S("PRETRAIN.WARMUP_STEPS", 0, "warmup in optimizer steps instead of WARMUP_PROPORTION; 0 = the proportion (with"
                                  " SCHEDULE_BASIS constant_step: 1000, the original's default)", range="[0, inf)",
      flags=("--num_warmup_steps",), scripts=_PRE, identity=RESULT_IF_CHANGED),
    S("PRETRAIN.GRADIENT_ACCUMULATION_STEPS", 0, "micro-batches per optimizer step; 0 = BATCH_SIZE / (micro batch x"
                                                 " processes), which any other value must equal", range="[0, inf)",
      flags=("--gradient_accumulation_steps",), scripts=_PRE, identity=OPERATIONAL),
    S("PRETRAIN.EXP.DECAY_RATE", 0.99, "exp curve: the rate is multiplied by this every DECAY_STEP steps (or hours)",
      range="(0, 1]", flags=("--decay_rate",), scripts=_PRE, identity=RESULT_IF_CHANGED),
    S("PRETRAIN.EXP.DECAY_STEP", 1000.0, "exp curve: steps (hours on a time basis) per DECAY_RATE factor",
      range="(0, inf)", flags=("--decay_step",), scripts=_PRE, identity=RESULT_IF_CHANGED),
    S("PRETRAIN.INVERSE_TIME.LAMBDA", 3.33, "inverse_time curve: lambda of ExtremeBERT's inverse-time decay",
      range="(0, inf)", flags=("--inverse_time_lambda",), scripts=_PRE, identity=RESULT_IF_CHANGED),
    S("PRETRAIN.POLY.POWER", 1.0, "poly curve: (1 - t)^POWER after the warmup (1 = linear)", range="(0, inf)",
      flags=("--poly_power",), scripts=_PRE, identity=RESULT_IF_CHANGED),
    S("PRETRAIN.STEP.DECAY_RATE", 10.0, "step curve: the rate is divided by this at each interval edge", range="(1, inf)",
      flags=("--step_decay_rate",), scripts=_PRE, identity=RESULT_IF_CHANGED),
    S("PRETRAIN.STEP.NUM_INTERVALS", 3, "step curve: equal intervals of constant rate after the warmup",
      range="[1, inf)", flags=("--step_num_intervals",), scripts=_PRE, identity=RESULT_IF_CHANGED),
    S("PRETRAIN.EARLY_EXIT_HOURS", 0.0, "stop after this many hours without changing the schedule's horizon (0 = off)",
      range="[0, inf)", flags=("--early_exit_time_marker",), scripts=_PRE, identity=RESULT_IF_CHANGED),
    S("PRETRAIN.INIT_FROM", "", "starting weights: a BERT model folder or hub name (stock bert, our exports,"
                                " sentence-transformers BERT encoders); its architecture and tokenizer are used; \"\" ="
                                " random initialisation", flags=("--model_name_or_path",), scripts=_PRE,
      identity=RESULT_IF_CHANGED),
    # -- FINETUNE (flags: those of finetuning/run_glue.py that the stage passes) -----------------------------------
    S("FINETUNE.ENABLED", True, "run the finetuning search (GLUE and own tasks)", identity=OPERATIONAL),
    S("FINETUNE.MODEL_NAME_OR_PATH", "", "model to finetune; \"\" = the final_model this run pretrained",
      identity=SEARCH),
    S("FINETUNE.TASKS", ["CoLA", "SST-2", "MRPC", "STS-B", "QQP", "MNLI", "QNLI", "RTE", "WNLI"],
      "GLUE tasks (AX comes with MNLI) and tasks of one's own (OWN_TASKS), in any mix", identity=SEARCH),
    S("FINETUNE.OWN_TASKS", {}, "tasks of one's own, by name: each a section of the fields in"
                                " pipeline/own_task_fields.py (TYPE, TRAIN_FILE, VALIDATION_FILE, TEXT_COLUMNS,"
                                " LABEL_COLUMN, METRIC, ...); list their names in TASKS", identity=SEARCH),
    S("FINETUNE.GLUE_DIR", "", "local GLUE data in the official layout; \"\" = nyu-mll/glue from the Hugging Face Hub",
      flags=("--data_dir",), scripts=_FT),
    S("FINETUNE.MALFORMED_ROWS", "error", "a GLUE_DIR train/dev row with the wrong column count: error (name file and"
                                          " line) | skip (drop, with a count); a bad test row is always an error",
      choices=("error", "skip"), identity=RESULT_IF_CHANGED, flags=("--malformed_rows",), scripts=_FT),
    S("FINETUNE.SEEDS", [42, 43, 44], "seeds per hyperparameter configuration (best = median over seeds)",
      identity=SEARCH),
    S("FINETUNE.MAX_SEQ_LENGTH", 128, "longest tokenized input; batches are padded only to their own longest",
      range="[8, inf)", flags=("--max_seq_length",), scripts=_FT),
    S("FINETUNE.WEIGHT_DECAY", 0.01, "AdamW weight decay", range="[0, inf)", flags=("--weight_decay",), scripts=_FT),
    S("FINETUNE.WARMUP_RATIO", 0.06, "fraction of steps spent in linear warmup", range="[0, 1)",
      flags=("--warmup_ratio",), scripts=_FT),
    S("FINETUNE.LR_SCHEDULER", "polynomial", "transformers lr_scheduler_type: polynomial | linear | cosine | constant",
      choices=("polynomial", "linear", "cosine", "constant"), flags=("--lr_scheduler_type",), scripts=_FT),
    S("FINETUNE.PRECISION", "auto", "auto (bf16/fp16 on GPU, fp32 on CPU) | fp16 | bf16 | fp32", choices=PRECISIONS,
      identity=RESULT_IF_CHANGED, flags=("--precision",), scripts=_FT),
    S("FINETUNE.GROUP_BY_LENGTH", True, "batch examples of similar length together (less padding)",
      identity=RESULT_IF_CHANGED, flags=("--group_by_length",), scripts=_FT),
    S("FINETUNE.MAX_TRAIN_SAMPLES", 0, "cap on training rows per task (0 = all); for quick runs", range="[0, inf)",
      flags=("--max_train_samples",), scripts=_FT),
    S("FINETUNE.MAX_EVAL_SAMPLES", 0, "cap on dev rows per task (0 = all); for quick runs", range="[0, inf)",
      flags=("--max_eval_samples",), scripts=_FT),
    S("FINETUNE.MULTIPROCESS_GPU_LIST", [], "GPU groups that run jobs in parallel, e.g. [[0, 1], [2, 3]]; [] = one at"
                                            " a time", element_type=list, identity=OPERATIONAL),
    S("FINETUNE.RANDOM_INIT_BASELINE", False, "also run the grid from random weights (same architecture) into"
                                              " finetune_random_init/", identity=SEARCH),
    S("FINETUNE.SEARCH.LARGE.TASKS", ["MNLI", "QQP", "QNLI"], "tasks that use the LARGE grid; all others use SMALL",
      identity=SEARCH),
    S("FINETUNE.SEARCH.LARGE.LEARNING_RATES", [5e-5, 8e-5], "learning rates tried on large tasks", range="(0, inf)",
      identity=SEARCH),
    S("FINETUNE.SEARCH.LARGE.BATCH_SIZES", [32], "batch sizes tried on large tasks", range="[1, inf)", identity=SEARCH),
    S("FINETUNE.SEARCH.LARGE.EPOCHS", [3, 5], "epoch counts tried on large tasks", range="[1, inf)", identity=SEARCH),
    S("FINETUNE.SEARCH.SMALL.LEARNING_RATES", [1e-5, 3e-5, 5e-5, 8e-5], "learning rates tried on small tasks",
      range="(0, inf)", identity=SEARCH),
    S("FINETUNE.SEARCH.SMALL.BATCH_SIZES", [16, 32], "batch sizes tried on small tasks", range="[1, inf)",
      identity=SEARCH),
    S("FINETUNE.SEARCH.SMALL.EPOCHS", [3, 5, 10], "epoch counts tried on small tasks", range="[1, inf)",
      identity=SEARCH),
    S("FINETUNE.STILT.ENABLED", True, "start the TARGETS from the best model of the SOURCE task's search",
      identity=SEARCH),
    S("FINETUNE.STILT.SOURCE", "MNLI", "intermediate task", identity=SEARCH),
    S("FINETUNE.STILT.TARGETS", ["RTE", "MRPC", "STS-B"], "tasks that start from the SOURCE model", identity=SEARCH),
    S("FINETUNE.STILT.SOURCE_CONFIG", [], "[lr, batch size, epochs] of the SOURCE configuration whose best seed the"
                                         " targets start from; [] = the best configuration", element_type=float,
      identity=SEARCH),
    # -- FINETUNE: the rest of the paper's search settings, and how the search runs --------------------------------
    # The paper's search (finetune_search.sh -> run_glue.sh) and ours differ in five defaults, each on purpose:
    # - WEIGHT_DECAY: paper 0.1, ours 0.01, the BERT / HF finetuning value (and the paper README's own example);
    # - SEEDS: paper one seed (42), ours three, since the median over seeds is what keeps a lucky seed on a small task
    #   from being chosen (468 jobs instead of 156);
    # - PRECISION: paper fp32, ours auto (bf16 autocast where the GPU has it, else fp16; fp32 on a CPU): about twice
    #   the GPU speed at scores within seed noise;
    # - STILT.SOURCE_CONFIG: paper the fixed MNLI configuration [5e-5, 32, 3], ours the best MNLI configuration;
    # - EVAL_BATCH_SIZE: paper 16, ours 128 (speed only).
    # The paper's search exactly: WEIGHT_DECAY 0.1, SEEDS [42], PRECISION fp32, STILT.SOURCE_CONFIG [5e-5, 32, 3].
    # MAX_SEQ_LENGTH 128, WARMUP_RATIO 0.06, LR_SCHEDULER polynomial, MAX_GRAD_NORM 1.0 and the grids are the paper's.
    S("FINETUNE.WARMUP_STEPS", 0, "linear warmup in optimizer steps; > 0 overrides WARMUP_RATIO", range="[0, inf)",
      identity=RESULT_IF_CHANGED, flags=("--warmup_steps",), scripts=_FT),
    S("FINETUNE.MAX_GRAD_NORM", 1.0, "clip the gradient norm to this (0 = no clipping)", range="[0, inf)",
      identity=RESULT_IF_CHANGED, flags=("--max_grad_norm",), scripts=_FT),
    S("FINETUNE.GRADIENT_ACCUMULATION_STEPS", 1, "batches per optimizer step: each GPU takes batch size / (GPUs x"
                                                 " this) rows at a time (a large model on a small GPU)",
      range="[1, inf)", identity=RESULT_IF_CHANGED, flags=("--gradient_accumulation_steps",), scripts=_FT),
    S("FINETUNE.EVAL_BATCH_SIZE", 128, "dev/test batch per device (speed and memory only)", range="[1, inf)",
      identity=OPERATIONAL, flags=("--per_device_eval_batch_size",), scripts=_FT),
    S("FINETUNE.SAVE_STEPS", 2000, "a job checkpoints every N optimizer steps (the newest kept) and a rerun resumes it"
                                   " there; 0 = no checkpoints", range="[0, inf)", identity=OPERATIONAL),
    S("FINETUNE.RETRIES", 1, "times a failed job is run again in the same run before it counts as failed",
      range="[0, inf)", identity=OPERATIONAL),
    S("FINETUNE.PROGRESS_SECONDS", 60, "seconds between the progress lines of a running job (steps/s, ETA); 0 = only"
                                       " its start and end lines", range="[0, inf)", identity=OPERATIONAL),
    # -- RESULT_COLLECTION ---------------------------------------------------------------------------------------
    S("RESULT_COLLECTION.ENABLED", True, "collect dev tables, best configs, GLUE score, report and submission zip"),
    S("RESULT_COLLECTION.ALLOW_PARTIAL", False, "write the submission zip even when some GLUE tasks are missing"),
    S("RESULT_COLLECTION.WRITE_SUBMISSION", True, "write glue_submission.zip for gluebenchmark.com"),
    S("RESULT_COLLECTION.WRITE_PLOTS", True, "draw the pretraining curves and per-task seed spread into the report"),
    # -- PUBLISH -------------------------------------------------------------------------------------------------
    # The token is never a setting: it comes from $HF_TOKEN or the login cache (`hf auth login`). PRIVATE defaults to
    # True so that a first upload is never public by accident; LICENSE defaults to "other" because the licence of a
    # model follows its training data, which only the user knows (set e.g. apache-2.0 for data that allows it).
    S("PUBLISH.ENABLED", False, "upload models to the Hugging Face Hub after result collection (the publish stage)",
      identity=OPERATIONAL),
    S("PUBLISH.HUB_REPO", "", "Hub repository (\"user/name\" or \"name\") of the pretrained model; a finetuned model"
                              " goes to HUB_REPO-<task>", identity=OPERATIONAL),
    S("PUBLISH.PRIVATE", True, "create the Hub repositories private", flags=("--hub_private_repo",), scripts=_PRE,
      identity=OPERATIONAL),
    S("PUBLISH.WHAT", "pretrained", "pretrained (final_model/) | best_finetuned (each task's best job, whose model"
                                    " the search then keeps) | both", choices=("pretrained", "best_finetuned", "both"),
      identity=OPERATIONAL),
    S("PUBLISH.LICENSE", "other", "the license the model cards declare (a Hub license id, e.g. apache-2.0, mit)",
      flags=("--license",), scripts=_PRE, identity=OPERATIONAL),
)
SETTINGS_BY_KEY = {setting.key: setting for setting in SETTINGS}

# Keys whose string values are filesystem paths (relative ones resolve against the current directory).
# A "name or path" key is resolved only when its value is a local path (``is_local_path``), else it is a hub name.
PATH_KEYS = ("SYSTEM.OUTPUT_ROOT", "SYSTEM.HOSTFILE", "DEMO_DATA.OUTPUT_DIR", "DATASET.CUSTOMIZED_DATASETS",
             "FINETUNE.GLUE_DIR")
NAME_OR_PATH_KEYS = ("TOKENIZER.NAME_OR_PATH", "FINETUNE.MODEL_NAME_OR_PATH", "PRETRAIN.INIT_FROM")


def is_local_path(value, base=None) -> bool:
    """THE rule for a "name or path" value (a model, a tokenizer): a local path when it is written as one (``/``,
    ``./``, ``../``, ``~``, a trailing ``/``) or names something on disk (relative to ``base``); else a hub name."""
    text = str(value)
    return text.startswith(("/", "./", "../", "~")) or text.endswith("/") or (
        Path(base or ".") / Path(text).expanduser()).exists()


# Settings whose keys the user chooses (a dict default): sections of named entries, each checked field by field.
MAPPING_KEYS = tuple(setting.key for setting in SETTINGS if isinstance(setting.default, dict))


def leaf_items(node, prefix=""):
    """(dotted key, value) for every leaf of a config tree; a setting whose keys the user names (FINETUNE.OWN_TASKS)
    is one leaf."""
    for key, value in node.items():
        if isinstance(value, CN) and f"{prefix}{key}" not in MAPPING_KEYS:
            yield from leaf_items(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def get_key(cfg, dotted: str):
    return reduce(lambda node, part: node[part], dotted.split("."), cfg)


def set_key(cfg, dotted: str, value, make=None) -> None:
    """Set a dotted key of a config tree (or of a nested dict); ``make`` (``dict``, ``CN``) creates the sections
    that are missing, which are otherwise an error."""
    *parents, last = dotted.split(".")
    node = cfg
    for part in parents:
        node = node.setdefault(part, make()) if make else node[part]
    node[last] = value


def _default_tree() -> CN:
    root = CN()
    for setting in SETTINGS:
        set_key(root, setting.key, CN() if isinstance(setting.default, dict) else copy.copy(setting.default), make=CN)
    return root


_C = _default_tree()


def get_default_config() -> CN:
    """A fresh, mutable copy of the default configuration."""
    return _C.clone()
