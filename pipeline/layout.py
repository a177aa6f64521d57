"""Where each stage writes, in one place, derived from a resolved config: ``OUTPUT_ROOT/datasets/<DATASET.ID>/``,
shared by every run of the same data and settings, and ``OUTPUT_ROOT/runs/<PRETRAIN.ID>/`` (the README's
"Everything lands under runs/" table lists what each holds).
"""
from pathlib import Path


def output_root(cfg) -> Path:
    return Path(cfg.SYSTEM.OUTPUT_ROOT)


def dataset_dir(cfg) -> Path:
    return output_root(cfg) / "datasets" / cfg.DATASET.ID


def text_shards_dir(cfg) -> Path:
    return dataset_dir(cfg) / "text_shards"


def samples_dir(cfg) -> Path:
    return dataset_dir(cfg) / "samples"


def dataset_tokenizer_dir(cfg) -> Path:
    return dataset_dir(cfg) / "tokenizer"


def run_dir(cfg) -> Path:
    return output_root(cfg) / "runs" / cfg.PRETRAIN.ID


def log_path(cfg, stage: str) -> Path:
    return run_dir(cfg) / "logs" / f"{stage}.log"


def pretrain_dir(cfg) -> Path:
    return run_dir(cfg) / "pretrain"


FINAL_MODEL = "final_model"  # in a pretrain folder (the pipeline's, or run_pretraining.py's --output_dir)


def final_model_dir(cfg) -> Path:
    return pretrain_dir(cfg) / FINAL_MODEL


def finetune_dir(cfg) -> Path:
    return run_dir(cfg) / "finetune"


def random_init_finetune_dir(cfg) -> Path:
    """The random-initialisation baseline's finetune jobs (FINETUNE.RANDOM_INIT_BASELINE; same layout as finetune/)."""
    return run_dir(cfg) / "finetune_random_init"


def tensorboard_dir(cfg) -> Path:
    """``tensorboard --logdir`` this folder to watch the run: pretraining and every finetuning job."""
    return run_dir(cfg) / "tensorboard"


def tensorboard_dir_of(cfg, folder) -> Path:
    """The event files of a stage's output folder inside the run (pretrain/, finetune/<task>/<job>/) go to the same
    path under ``tensorboard/``: the runs TensorBoard lists are then named like the folders they describe. A folder
    outside the run keeps them in its own ``tensorboard/``."""
    folder = Path(folder)
    if not folder.is_relative_to(run_dir(cfg)):
        return folder / "tensorboard"
    return tensorboard_dir(cfg) / folder.relative_to(run_dir(cfg))


def results_dir(cfg) -> Path:
    """Result collection writes report.md, results.json and glue_submission.zip at the run folder's top."""
    return run_dir(cfg)


def finetune_model_path(cfg) -> str:
    """The model the finetune stage starts from: FINETUNE.MODEL_NAME_OR_PATH, or this run's final_model."""
    return cfg.FINETUNE.MODEL_NAME_OR_PATH or str(final_model_dir(cfg))
