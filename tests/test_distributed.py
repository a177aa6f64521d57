"""Several processes without a GPU: ranks under the DeepSpeed launcher on CPU (gloo), through the pipeline
(SYSTEM.PROCESSES_PER_NODE) and as two "nodes" on localhost (torchrun); a rank that dies; ZeRO 2 and 3 resumed;
another number of processes; a finetuning job on two processes.

One tiny recipe (global batch 16, dropout off) runs in every split. The data-order rule (pretraining.data.loader)
makes every split train on the same samples with the same step loss, so each run is held against one reference
run made in this process (1 process, micro-batch 8, 2 accumulation steps), to float tolerance.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.hardware import free_port
from pretraining.checkpointing import POINTER_NAME, checkpoints_dir, latest_tag, tag_for_step
from pretraining.metrics_log import read_metrics
from tests.pretrain_fixtures import REPO_ROOT, child_env, make_dataset, pretrain_argv, write_tokenizer

pytestmark = pytest.mark.slow

STEPS, CHECKPOINT_EVERY = 60, 10
RECIPE = dict(train_batch_size=16, max_steps=STEPS, print_steps=1, validation_every_steps=0,
              checkpoint_every_steps=CHECKPOINT_EVERY, num_checkpoints_to_keep=STEPS // CHECKPOINT_EVERY,
              hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
WAIT_S = 600  # generous: several sessions may share the CPU cores


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The samples and tokenizer at the place a pipeline run with DATASET.ID "tiny" reads them."""
    root = tmp_path_factory.mktemp("distributed")
    dataset = root / "runs" / "datasets" / "tiny"
    return {"root": root, "samples": make_dataset(dataset / "samples", "dynamic"),
            "tokenizer": write_tokenizer(dataset / "tokenizer")}


def recipe_argv(data, out, micro_batch: int, **flags) -> list:
    return pretrain_argv(data["samples"], out, data["tokenizer"], train_micro_batch_size_per_gpu=micro_batch,
                         **{**RECIPE, **flags})


def train_here(argv):
    """A 1-process run in this process (the one_rank_group fixture provides the process group)."""
    from pretraining.arguments import parse_arguments
    from pretraining.trainer import train

    return train(*parse_arguments(argv))


@pytest.fixture(scope="module")
def reference(one_rank_group, data):
    """The uninterrupted 1-process run every split is held against: micro-batch 8 x 2 accumulation steps."""
    out = data["root"] / "reference"
    train_here(recipe_argv(data, out, 8))
    return out


def launcher(ranks: int, argv: list) -> list:
    return [sys.executable, "-m", "deepspeed.launcher.runner", "--num_gpus", str(ranks), "--master_port",
            str(free_port()), "pretraining/run_pretraining.py", *argv]


def start(command, log: Path, env=None) -> subprocess.Popen:
    """``command`` in the background, its output to ``log``."""
    with open(log, "w") as out:
        return subprocess.Popen(command, cwd=REPO_ROOT, env=env or child_env(), stdout=out, stderr=subprocess.STDOUT)


def finish(children: list, logs: list) -> list:
    """Wait for every child; returns their exit codes (a child still running after WAIT_S is killed)."""
    codes = []
    for child in children:
        try:
            codes.append(child.wait(timeout=WAIT_S))
        except subprocess.TimeoutExpired:
            child.kill()
            raise AssertionError(f"{child.args} did not end; see {logs}")
    return codes


def run_to_end(command, log: Path, env=None) -> str:
    assert finish([start(command, log, env)], [log]) == [0], log.read_text()[-3000:]
    return log.read_text()


def rank_pids(marker: str) -> dict:
    """{global rank: pid} of the live training processes (those with a RANK, unlike their launchers) whose command
    line holds ``marker``."""
    pids = {}
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
            environ = (proc / "environ").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        rank = next((item[5:] for item in environ if item.startswith("RANK=")), None)
        if rank is not None and any("run_pretraining.py" in a for a in argv) and any(marker in a for a in argv):
            pids[int(rank)] = int(proc.name)
    return pids


def kill_rank_1_after_a_checkpoint(children: list, checkpoints, marker: str, logs: list, after_step: int = 0) -> dict:
    """Once ``checkpoints()`` (a folder) holds a complete checkpoint of a step after ``after_step``, SIGKILL global
    rank 1 of the run whose command lines hold ``marker``; returns {global rank: pid} as they were."""
    deadline = time.monotonic() + WAIT_S
    while int((latest_tag(checkpoints()) or "step0")[4:]) <= after_step:
        assert all(child.poll() is None for child in children), [log.read_text()[-3000:] for log in logs]
        assert time.monotonic() < deadline, f"no checkpoint after step {after_step} in {WAIT_S} s"
        time.sleep(0.02)
    pids = rank_pids(marker)
    os.kill(pids[1], signal.SIGKILL)
    return pids


def losses(out) -> list:
    return [(row["step"], row["loss"]) for row in read_metrics(Path(out) / "metrics.jsonl") if "loss" in row]


def assert_same_training(out, reference, tolerance=1e-5):
    """The same loss at every step (each logged once) and the same final weights as the reference run."""
    from safetensors.torch import load_file
    import torch

    got, expected = losses(out), losses(reference)
    assert [step for step, _ in got] == [step for step, _ in expected] == list(range(1, STEPS + 1))
    for (step, loss), (_, reference_loss) in zip(got, expected):
        assert loss == pytest.approx(reference_loss, rel=tolerance), step
    a, b = load_file(Path(out) / "final_model" / "model.safetensors"), load_file(reference / "final_model" /
                                                                               "model.safetensors")
    assert a.keys() == b.keys()
    for name in b:
        torch.testing.assert_close(a[name], b[name], rtol=10 * tolerance, atol=tolerance, msg=name)


# -- one rank, split differently -------------------------------------------------------------------------------

def test_one_process_with_micro_batch_16_trains_like_8_with_two_accumulation_steps(reference, data):
    out = data["root"] / "one_by_16"
    train_here(recipe_argv(data, out, 16))
    assert_same_training(out, reference)


# -- the pipeline under ZeRO 2: a rank killed, the same command resumed, another number of processes refused

@pytest.fixture(scope="module")
def pipeline_run(reference, data):
    """main.py with SYSTEM.PROCESSES_PER_NODE 2 (2 ranks x micro-batch 8) under ZeRO 2: rank 1 is SIGKILLed after
    the first checkpoint; the run folder is copied aside; then the same command runs again."""
    from pretraining.arguments import parse_arguments

    recipe, _ = parse_arguments(recipe_argv(data, data["root"] / "unused", 8, zero_stage=2))
    settings = json.loads(json.dumps({"MODEL": recipe.MODEL, "PRETRAIN": recipe.PRETRAIN}))
    settings["PRETRAIN"].pop("ID")
    settings.update(SYSTEM={"OUTPUT_ROOT": str(data["root"] / "runs"), "NUM_GPUS": 0, "PROCESSES_PER_NODE": 2,
                            "SEED": recipe.SYSTEM.SEED},
                    DATASET={"ENABLED": False, "ID": "tiny", "MAX_SEQ_LENGTH": 32},
                    INSTALL={"ENABLED": False}, FINETUNE={"ENABLED": False}, RESULT_COLLECTION={"ENABLED": False})
    config = data["root"] / "pipeline.yaml"
    config.write_text(json.dumps(settings))  # JSON is YAML
    command = [sys.executable, "main.py", "--config", str(config)]
    runs = data["root"] / "runs" / "runs"

    def checkpoints():  # the run folder's name is the ID the pipeline derives
        return checkpoints_dir(next(runs.glob("*/pretrain"), runs / "not-yet"))

    log = data["root"] / "pipeline.log"
    child = start(command, log)
    pids = kill_rank_1_after_a_checkpoint([child], checkpoints, str(data["root"] / "runs"), [log])
    first = (finish([child], [log])[0], log.read_text(), pids)
    out = next(runs.glob("*/pretrain"))
    aside = data["root"] / "killed_run"
    shutil.copytree(out, aside)
    second = run_to_end(command, data["root"] / "pipeline_resumed.log")
    return {"first": first, "second": second, "out": out, "aside": aside}


def test_a_killed_rank_stops_every_rank_and_the_pipeline_names_the_stage(pipeline_run):
    code, output, pids = pipeline_run["first"]
    assert code != 0
    assert "FAILED: stage 'pretrain'" in output and "logs/pretrain.log" in output
    assert set(pids) == {0, 1}
    assert not rank_pids(str(pipeline_run["out"].parents[2])), "a rank outlived the run"
    assert not (pipeline_run["aside"] / "manifest.json").exists()


def test_the_same_command_resumes_and_ends_with_the_weights_of_an_uninterrupted_run(pipeline_run, reference):
    assert "resumed from step" in pipeline_run["second"]
    assert "[done] pretrain" in pipeline_run["second"]
    assert_same_training(pipeline_run["out"], reference, tolerance=1e-4)  # 2 x 8 under ZeRO 2 = 1 x 8 x 2, ZeRO 0


def test_a_zero_checkpoint_of_two_processes_is_refused_on_one_in_one_line(pipeline_run):
    out = pipeline_run["aside"]
    with pytest.raises(ConfigError, match="written by 2 processes under ZeRO stage 2.*resume it with 2") as refused:
        train_here(["--config", str(out / "config.yaml"), "--output_dir", str(out)])
    assert "\n" not in str(refused.value)


def test_zero_3_with_accumulation_killed_on_one_rank_resumes_to_the_uninterrupted_weights(reference, data):
    out = data["root"] / "zero3"
    command = launcher(2, recipe_argv(data, out, 4, zero_stage=3))  # 2 ranks x 4 x 2 accumulation steps
    log = out.with_suffix(".killed.log")
    child = start(command, log)
    kill_rank_1_after_a_checkpoint([child], lambda: checkpoints_dir(out), str(out), [log])
    assert finish([child], [log]) != [0], log.read_text()[-3000:]
    assert not (out / "manifest.json").exists()
    resumed = run_to_end(command, out.with_suffix(".resumed.log"))
    assert "resumed from step" in resumed
    assert_same_training(out, reference, tolerance=1e-4)


# -- two nodes on localhost, and a ZeRO-0 checkpoint on another number of processes ----------------------------

AUDIT_HOOK = '''import os, sys
_root, _fd = os.environ["AUDIT_ROOT"], os.open(os.environ["AUDIT_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
def _written(event, args):
    if event == "open" and isinstance(args[0], str) and args[2] & (os.O_WRONLY | os.O_RDWR):
        path = args[0]
    elif event in ("os.rename", "os.replace"):
        path = os.fsdecode(args[1])
    else:
        return
    if os.path.abspath(path).startswith(_root):
        os.write(_fd, f"{os.environ.get('RANK', '-')} {os.path.abspath(path)}\\n".encode())
sys.addaudithook(_written)
'''


def copy_checkpoint(source, target, step: int) -> None:
    """``target`` as ``source`` was at its checkpoint of ``step``: that checkpoint, the pointer, the metrics."""
    tag = tag_for_step(step)
    shutil.copytree(checkpoints_dir(source) / tag, checkpoints_dir(target) / tag)
    (checkpoints_dir(target) / POINTER_NAME).write_text(tag + "\n")
    shutil.copy(Path(source) / "metrics.jsonl", Path(target) / "metrics.jsonl")


@pytest.fixture(scope="module")
def two_nodes(reference, data):
    """Two torchrun "nodes" of one rank each (ZeRO 0) resume the reference's 1-process checkpoint of step 10; rank 1
    (node 1) is SIGKILLed after their first checkpoint, and the same two commands run again. An audit hook in every
    process records which rank opens which file of the run folder for writing."""
    out = data["root"] / "two_nodes"
    copy_checkpoint(reference, out, CHECKPOINT_EVERY)
    hook = data["root"] / "audit"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(AUDIT_HOOK)
    audit = data["root"] / "two_nodes.audit"
    env = child_env(PYTHONPATH=os.pathsep.join([str(hook), str(REPO_ROOT)]), AUDIT_ROOT=str(out),
                    AUDIT_LOG=str(audit))

    def start_nodes(logs):
        port = str(free_port())  # the rendezvous on node 0's host
        return [start([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node_rank", str(node),
                       "--nproc_per_node", "1", "--master_addr", "127.0.0.1", "--master_port", port,
                       "pretraining/run_pretraining.py", *recipe_argv(data, out, 8)], log, env)
                for node, log in enumerate(logs)]

    logs = [data["root"] / f"node{node}.killed.log" for node in (0, 1)]
    children = start_nodes(logs)
    kill_rank_1_after_a_checkpoint(children, lambda: checkpoints_dir(out), str(out), logs, CHECKPOINT_EVERY)
    killed = finish(children, logs)
    logs = [data["root"] / f"node{node}.log" for node in (0, 1)]
    resumed = finish(start_nodes(logs), logs)
    assert resumed == [0, 0], logs[0].read_text()[-3000:]
    writers = {}
    for line in audit.read_text().splitlines():
        rank, path = line.split(" ", 1)
        writers.setdefault(path, set()).add(rank)
    return {"out": out, "writers": writers, "killed": killed, "outputs": [log.read_text() for log in logs]}


def test_a_node_whose_rank_dies_stops_both_nodes_and_the_same_commands_resume(two_nodes, reference):
    assert 0 not in two_nodes["killed"]
    assert "resumed from step" in two_nodes["outputs"][0]
    assert_same_training(two_nodes["out"], reference)  # 1 x 8 x 2, then 2 x 8 on two nodes, across a kill


def test_two_nodes_on_localhost_split_the_data_by_global_rank_and_write_each_file_once(two_nodes):
    """Node 1's local rank 0 is global rank 1: it reads its own share of each batch and writes nothing."""
    node0, node1 = two_nodes["outputs"]
    assert "node 0 " in node0 and "global ranks 0-0" in node0
    assert "node 1 " in node1 and "global ranks 1-1" in node1
    assert "rank 0/2: first training batch" in node0 and "rank 1/2: first training batch" in node1
    assert "done:" in node0 and "done:" not in node1
    steps = [row["step"] for row in read_metrics(two_nodes["out"] / "metrics.jsonl") if "loss" in row]
    assert steps == list(range(1, STEPS + 1))  # one metrics.jsonl, no step written twice
    writers = two_nodes["writers"]
    assert any(path.endswith("metrics.jsonl") for path in writers) and any("final_model" in p for p in writers)
    assert all(len(ranks) == 1 for ranks in writers.values()), {p: r for p, r in writers.items() if len(r) > 1}
    assert {path for path, ranks in writers.items() if ranks != {"0"}} == set()  # ZeRO 0: global rank 0 writes all


def test_a_zero_0_checkpoint_of_two_processes_continues_on_one(two_nodes, reference, data):
    out = data["root"] / "two_to_one"
    copy_checkpoint(two_nodes["out"], out, STEPS - 2 * CHECKPOINT_EVERY)
    train_here(recipe_argv(data, out, 8))
    assert_same_training(out, reference)


# -- finetuning ----------------------------------------------------------------------------------------------------

def test_a_finetuning_job_on_two_cpu_processes_gives_the_dev_metric_of_one_process(tmp_path):
    from finetuning.stage import finetune
    from tests.test_finetuning_fixtures import finetune_config, write_glue, write_tiny_model

    model = write_tiny_model(tmp_path / "model", dropout=0.0)
    glue = write_glue(tmp_path / "glue", tasks=["SST-2"], n_train=64, n_dev=24)
    results = {}
    for processes in (1, 2):
        cfg = finetune_config(tmp_path / f"p{processes}", model, glue, **{
            "FINETUNE.TASKS": "[SST-2]", "FINETUNE.SEARCH.SMALL.BATCH_SIZES": "[16]",
            "FINETUNE.SEARCH.SMALL.EPOCHS": "[2]", "SYSTEM.PROCESSES_PER_NODE": processes})
        finetune(cfg)
        job = next((tmp_path / f"p{processes}").glob("out/runs/*/finetune/SST-2/lr*"))
        results[processes] = json.loads((job / "eval_results.json").read_text())
        assert f"world size {processes}" in (job / "job.log").read_text()
    assert results[2]["accuracy"] == results[1]["accuracy"]
    assert results[2]["eval_loss"] == pytest.approx(results[1]["eval_loss"], rel=1e-5)
