"""One selection rule: STILT's source job, collect_best_val, the report and the submission zip name the same job,
also when configurations tie."""
import json

import pytest

from finetuning.job_selection import Scored, choose_best
from pipeline import layout
from tests.test_result_helpers import default_predictions, make_cfg

A, B, C = 2e-5, 3e-5, 5e-5  # the three learning rates of make_cfg's grid (batch 32, 3 epochs, seeds 1-3)
FAILED = "failed"

CASES = {
    # equal medians (0.75): the higher mean wins (B); the old STILT rule took the first in plan order (A)
    "median tie, higher mean": ({A: (0.70, 0.75, 0.76), B: (0.75, 0.75, 0.78), C: (0.6, 0.6, 0.6)}, B, 3),
    # equal median and mean (0.625): the configuration with more completed seeds wins
    "median and mean tie, more seeds": ({A: (0.625, 0.625, FAILED), B: (0.5, 0.625, 0.75), C: (0.5, 0.5, 0.5)}, B, 3),
    # a full tie: the first configuration in sorted order, and of its equal seeds the lowest
    "full tie, sorted order and lowest seed": ({A: (0.625,) * 3, B: (0.625,) * 3, C: (0.5,) * 3}, A, 1),
}


def _write_mnli_search(cfg, scores: dict):
    """MNLI job folders exactly as the stage writes them (job.json with the record the stage expects)."""
    from finetuning.search_plan import SearchTree

    search = SearchTree(cfg, layout.finetune_dir(cfg), False)
    for job in search.jobs["MNLI"]:
        value = scores[job.learning_rate][job.seed - 1]
        folder = search.job_dir(job)
        folder.mkdir(parents=True)
        status = "failed" if value == FAILED else "completed"
        record = {**search.expected(job), "status": status, "error": "exit code 1: boom" if value == FAILED else None,
                  "wall_time_s": 10.0}
        (folder / "job.json").write_text(json.dumps(record))
        if status == "completed":
            (folder / "eval_results.json").write_text(json.dumps({"accuracy": value, "accuracy_mm": value,
                                                                  "eval_loss": 0.5}))
            for name, predictions in default_predictions("MNLI").items():
                rows = "".join(f"{i}\t{p}\n" for i, p in enumerate(predictions))
                (folder / f"predictions_{name}.tsv").write_text("index\tprediction\n" + rows)
    return search


@pytest.mark.parametrize("case", list(CASES))
def test_stilt_the_report_collect_best_val_and_the_zip_pick_the_same_job(tmp_path, case):
    from scripts.result_collection import collect_best_validation, collect_test_result

    scores, learning_rate, seed = CASES[case]
    cfg = make_cfg(tmp_path, glue_dir=False, **{"FINETUNE.TASKS": ["MNLI", "RTE"],
                                                "RESULT_COLLECTION.ALLOW_PARTIAL": True,
                                                "RESULT_COLLECTION.WRITE_PLOTS": False})
    search = _write_mnli_search(cfg, scores)
    expected = f"lr{learning_rate:g}_bs32_ep3_seed{seed}"

    assert search.stilt_init() == f"MNLI/{expected}"  # the model the STILT targets start from
    assert collect_best_validation(cfg)["MNLI"].best_job.name == expected  # scripts/collect_best_val.py
    results = collect_test_result(cfg)
    assert results["tasks"]["MNLI"]["best_job"].endswith(f"MNLI/{expected}")  # report.md and results.json
    for name in ("MNLI-m", "MNLI-mm", "AX"):  # glue_submission.zip
        assert results["submission"]["sources"][name].endswith(f"MNLI/{expected}/predictions_{name}.tsv")


def test_choose_best_ignores_runs_without_a_finite_score_and_an_empty_search_has_no_best():
    runs = [Scored((A, 32, 3), 1, float("nan")), Scored((B, 32, 3), 1, 0.4), Scored((A, 32, 3), 2, None)]
    choice = choose_best(runs)
    assert choice.config == (B, 32, 3) and choice.best.seed == 1 and choice.configs == 1
    assert choose_best([]) is None and choose_best(runs[:1]) is None


def test_a_fixed_stilt_source_configuration_as_in_the_paper_starts_the_targets_from_its_best_seed(tmp_path):
    cfg = make_cfg(tmp_path, glue_dir=False, **{"FINETUNE.TASKS": ["MNLI", "RTE"]})
    cfg.defrost()
    cfg.FINETUNE.STILT.SOURCE_CONFIG = [A, 32, 3]  # not the best configuration (B is)
    cfg.freeze()
    search = _write_mnli_search(cfg, CASES["median tie, higher mean"][0])
    assert search.stilt_init() == "MNLI/lr2e-05_bs32_ep3_seed3"  # A's best seed (0.76)
