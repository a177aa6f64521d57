"""benchmarks/bench_time_to_quality.py: the harness's clock and snapshots, the time-to-target rule, the HF
contenders' schedule, and one whole run on a tiny corpus (every contender kind, evaluation, finetuning, rerun)."""
import json
import math
import time

import pytest

from benchmarks import bench_time_to_quality as bench
from benchmarks.time_to_quality.contenders import variant
from benchmarks.time_to_quality.harness import Snapshots, TrainingClock, read_snapshots
from benchmarks.time_to_quality.hf_recipes import linear_over_time
from benchmarks.time_to_quality.report import time_to_reach
from tests.test_dataset_fixtures import write_corpus, write_vocab
from tests.test_finetuning_fixtures import write_glue


def test_time_to_reach_interpolates_between_the_snapshots_around_the_crossing():
    curve = [(10.0, 8.0), (20.0, 6.0), (30.0, 5.0)]
    assert time_to_reach(curve, 7.0) == (15.0, True)
    assert time_to_reach(curve, 5.0) == (30.0, True)
    assert time_to_reach(curve, 9.0) == (10.0, False)  # below the target at the first snapshot: an upper bound
    assert time_to_reach(curve, 4.9) is None


def test_the_hf_schedule_warms_up_then_decays_linearly_to_zero_at_the_end_of_the_budget():
    assert linear_over_time(0.03, 0.06) == pytest.approx(0.5)
    assert linear_over_time(0.06, 0.06) == pytest.approx(1.0)
    assert linear_over_time(0.53, 0.06) == pytest.approx(0.5)
    assert linear_over_time(1.2, 0.06) == 0.0
    assert linear_over_time(0.0, 0.0) == 1.0 and linear_over_time(0.5, 0.0) == pytest.approx(0.5)


def test_the_clock_stops_while_a_snapshot_is_written(tmp_path):
    clock = TrainingClock()
    assert clock.elapsed() == 0.0  # not started: building the model is not counted
    exported = []

    def slow_export(folder):
        time.sleep(0.3)
        exported.append(folder.name)

    snapshots = Snapshots(tmp_path, budget_s=0.2, points=2, export=slow_export)
    clock.start()
    time.sleep(0.25)
    snapshots.maybe_take(clock, step=7, samples=70, real_tokens=6000)  # both points are due: two exports, one after the other
    assert exported == ["snapshot-1", "snapshot-2"]
    assert clock.elapsed() < 0.4  # the 0.6 s of exporting is not training time
    assert snapshots.finished(clock)
    taken = read_snapshots(tmp_path)
    assert [(s["step"], s["real_tokens"]) for s in taken] == [(7, 6000)] * 2 and all(0.25 <= s["train_s"] < 0.4 for s in taken)


def test_a_variant_needs_key_value_pairs_and_the_reference_must_run():
    assert variant("ours-lr2e-3", ["PRETRAIN.LEARNING_RATE", "2e-3"]).overrides == ("PRETRAIN.LEARNING_RATE", "2e-3")
    with pytest.raises(ValueError, match="KEY VALUE pairs"):
        variant("odd", ["PRETRAIN.LEARNING_RATE"])
    with pytest.raises(SystemExit):
        bench.parse_args(["--corpus", "c", "--glue_dir", "g", "--contenders", "ours"])


@pytest.mark.slow
def test_a_whole_run_on_a_tiny_corpus_scores_every_contender_the_same_way_and_a_rerun_only_reports(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "corpus", files=2, articles_per_file=40)
    glue = write_glue(tmp_path / "glue", tasks=["MRPC"], n_train=32, n_dev=16)
    argv = ["--corpus", str(corpus), "--glue_dir", str(glue), "--tokenizer", str(write_vocab(tmp_path / "vocab")),
            "--budget_minutes", "0.05", "--points", "2", "--preset", "bert-tiny", "--batch_size", "8",
            "--seq_length", "32", "--contenders", "ours", "hf-run-mlm",
            "--variant", "ours-document", "DATASET.PACKING", "document", "PRETRAIN.SCHEDULER", "linear",
            "--documents", "paragraphs",
            "--tasks", "MRPC", "--seeds", "1", "--train_rows", "32", "--finetune_epochs", "1",
            "--held_out_samples", "64", "--frac_test", "0.2", "--work_dir", str(tmp_path / "work"),
            "--output", str(tmp_path / "table.md")]
    assert bench.main(argv) == 0
    table = (tmp_path / "table.md").read_text(encoding="utf-8")
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in table.splitlines()
            if line.startswith("| ") and not line.startswith("| contender")}
    assert set(rows) == {"ours", "hf-run-mlm", "ours-document"}
    for name, cells in rows.items():
        steps, real_tokens_per_s = int(cells[1]), float(cells[3].replace(",", ""))
        losses = [float(c) for c in cells[5:7]]
        assert steps > 0 and real_tokens_per_s > 0, (name, cells)
        assert all(math.isfinite(loss) and 0 < loss < 20 for loss in losses), (name, cells)
        folder = tmp_path / "work" / "contenders" / name
        assert [s["folder"] for s in read_snapshots(folder)] == ["snapshot-1", "snapshot-2"]
        assert json.loads((folder / "glue" / "MRPC-seed1-rows32-lr0.0001-epochs1" / "eval_results.json").read_text())["f1"] >= 0
    padding = {name: float(cells[4].rstrip("%")) for name, cells in rows.items()}
    assert padding["hf-run-mlm"] == 0 and padding["ours"] < 5 < padding["ours-document"]  # one paragraph a document
    assert "one paragraph per document" in table
    assert rows["hf-run-mlm"][8].strip() == "1.00"  # the reference reaches its own final loss at its own end
    assert (tmp_path / "work" / "time_to_quality.png").stat().st_size > 0
    spec = json.loads((tmp_path / "work" / "ours-document.spec.json").read_text())
    assert spec["opts"][-4:] == ["DATASET.PACKING", "document", "PRETRAIN.SCHEDULER", "linear"]

    capsys.readouterr()
    assert bench.main(argv) == 0  # everything is done: only the report again, with the same figures
    assert "done already" in capsys.readouterr().out
    assert (tmp_path / "table.md").read_text(encoding="utf-8").split("\n", 1)[1] == table.split("\n", 1)[1]
