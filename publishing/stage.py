"""Pipeline stage "publish": the run's models to the Hugging Face Hub after result collection (PUBLISH.*; the README's
"Model cards and publishing"). A task's best job is ``choose_best``'s, the rule of the report and the zip; the finetune
stage keeps every job's model when PUBLISH asks for them (``finetuning.stage.tasks_keeping_models``). The manifest
records the repositories and the stamps of the files sent, so the stage is complete until a model changes.
"""
import logging
import re
from pathlib import Path

from finetuning.job_record import MODEL_SUBDIR
from finetuning.job_selection import best_job
from finetuning.search_plan import search_trees
from finetuning.search_tasks import search_task
from pipeline import layout
from pipeline.defaults import get_key
from pipeline.errors import DataError
from pipeline.hub_publish import looks_like_token, publish_folder, publish_problems
from pipeline.manifest import StageStatus, manifest_status, write_manifest
from pipeline.run_ids import path_stamps

log = logging.getLogger(__name__)
PUBLISH_KEYS = ("PUBLISH.HUB_REPO", "PUBLISH.WHAT", "PUBLISH.LICENSE", "PUBLISH.PRIVATE")


def publish_dir(cfg) -> Path:
    """The stage's own folder in the run folder: its manifest only."""
    return layout.run_dir(cfg) / "publish"


def finetuned_repo(repo: str, task: str) -> str:
    """The repository of ``task``'s best model: ``HUB_REPO-<task>``, lower case, characters the Hub refuses as ``-``."""
    return f"{repo}-{re.sub(r'[^A-Za-z0-9._-]+', '-', task).lower()}"


def publish_targets(cfg) -> list:
    """(what, model folder or None, repository) for each model PUBLISH asks for; None: the task has no completed
    job yet."""
    repo, targets = cfg.PUBLISH.HUB_REPO, []
    if cfg.PUBLISH.WHAT in ("pretrained", "both"):
        targets.append(("the pretrained model", layout.final_model_dir(cfg), repo))
    if cfg.PUBLISH.WHAT in ("best_finetuned", "both"):
        tree = search_trees(cfg)[0]  # the pretrained model's search, not the random-init baseline
        init = tree.stilt_init() if tree.targets else None
        for task in tree.tasks:
            start = init if task in tree.targets else None
            best = best_job(tree.root / task, tree.jobs[task], search_task(cfg, task).primary_metric,
                            lambda job, start=start: tree.is_done(job, start))
            folder = tree.job_dir(best) / MODEL_SUBDIR if best else None
            targets.append((f"the best {task} job", folder, finetuned_repo(repo, task)))
    return targets


def publish_settings(cfg) -> dict:
    """What the stage's output depends on: the PUBLISH settings and the stamps of every file it sends."""
    return {**{key: get_key(cfg, key) for key in PUBLISH_KEYS},
            "models": {repo: [str(folder), path_stamps(folder, prefix="") if folder else []]
                       for _, folder, repo in publish_targets(cfg)}}


def publish_status(cfg) -> StageStatus:
    folders = [str(folder) for _, folder, _ in publish_targets(cfg) if folder is not None]
    return manifest_status(publish_dir(cfg), publish_settings(cfg), reads=folders, writes=[publish_dir(cfg)])


def validate_config(cfg) -> list:
    """A token in the config is refused whether or not the stage is on; with it on, the repository name, a token
    and the network (``pipeline.hub_publish.publish_problems``)."""
    problems = [f"{key} holds what looks like a Hugging Face token: tokens come from HF_TOKEN or `hf auth login`,"
                f" never from a config" for key in PUBLISH_KEYS if looks_like_token(get_key(cfg, key))]
    if problems or not cfg.PUBLISH.ENABLED:
        return problems
    return publish_problems(cfg.PUBLISH.HUB_REPO, "PUBLISH.HUB_REPO")


def _model_problem(what: str, folder) -> str:
    """Why ``folder`` cannot be published, or ""."""
    if folder is None:
        return f"{what}: no completed job to publish (run the finetune stage first)"
    if (Path(folder) / "config.json").is_file():
        return ""
    if Path(folder).name == layout.FINAL_MODEL:
        return f"no pretrained model at {folder}: run the pretrain stage first (PRETRAIN.ENABLED True)"
    return (f"{what} kept no model at {folder} (it ran before PUBLISH asked for finetuned models): delete"
            f" {Path(folder).parent} and rerun to train it again with its model kept")


def publish(cfg) -> None:
    """Upload every model PUBLISH asks for (each one resumes, or is skipped when the Hub has it), then record it.
    Every model folder is checked before the first upload."""
    settings = publish_settings(cfg)
    targets = publish_targets(cfg)
    problems = [problem for what, folder, _ in targets for problem in [_model_problem(what, folder)] if problem]
    if problems:
        raise DataError("; ".join(problems))
    done = {}
    for what, folder, repo in targets:
        log.info(publish_folder(folder, repo, cfg.PUBLISH.PRIVATE, f"ExtremeBERT: {what} of run {cfg.PRETRAIN.ID}"))
        done[repo] = str(folder)
    write_manifest(publish_dir(cfg), "publish", settings, published=done)
