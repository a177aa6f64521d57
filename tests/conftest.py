"""Test-wide settings: never wait on the network, never log to wandb, and skip DeepSpeed's slow JIT comm op;
logging as main.py sets it up (INFO on the console), restored after each test that changes it; the one-process group that in-process DeepSpeed runs share; the quickstart's demo data folder, built once."""
import fcntl
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


# The test files that take a minute or more, longest first. pytest-xdist hands whole files to its workers in
# collection order (pytest.ini: --dist loadfile --no-loadscope-reorder), so collecting these first keeps both
# workers busy until the end instead of leaving one of them alone with a long file that came last. The two files
# that need the quickstart's demo data are not the first two: the worker without them would wait for its build.
LONGEST_FILES = ("test_distributed.py", "test_quickstart_end_to_end.py", "test_own_tasks_end_to_end.py",
                 "test_pretrain_training.py", "test_bench_time_to_quality.py", "test_finetuning_stage.py",
                 "test_configs_dry_run.py", "test_finetuning_search_run.py")


@pytest.fixture(autouse=True)
def console_logging(monkeypatch):
    """Each test starts with the console at INFO, as a plain run has it (in-process callers of the runner and the
    stages see their lines), and what a test's --quiet or --verbose handed down to child processes is undone."""
    from pipeline.log_setup import LEVEL_ENV, LIBRARY_VERBOSITY_ENV, LOG_FILE_ENV, QUIET_ENV, setup_logging

    for variable in (LEVEL_ENV, LOG_FILE_ENV, *filter(None, LIBRARY_VERBOSITY_ENV.values()), *QUIET_ENV):
        monkeypatch.delenv(variable, raising=False)
    setup_logging("INFO")  # monkeypatch then puts back the variables as they were before the test


def pytest_collection_modifyitems(items):
    def rank(item):
        name = Path(str(item.fspath)).name
        return LONGEST_FILES.index(name) if name in LONGEST_FILES else len(LONGEST_FILES)

    items.sort(key=rank)  # stable: the order within a file, and of the other files, stays


@pytest.fixture(scope="session")
def one_rank_group():
    """A one-process torch.distributed group for the in-process runs, for the whole session (DeepSpeed caches its
    groups: a group destroyed and made again would leave it holding the old one), torn down (with its env) at the
    end. One torch thread: the tiny models gain nothing from more, and on a shared machine oversubscribed OpenMP
    threads make steps many times slower."""
    import deepspeed.ops
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)

    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False  # skip the ~30 s JIT build of a comm op
    # Port 0: the one-process group's store binds any free port itself (no port picked in advance for another
    # process, or another pytest worker, to take first).
    env = dict(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT="0")
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
    torch.set_num_threads(threads)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def quickstart_demo_dir(tmp_path_factory, worker_id):
    """DEMO_DATA.OUTPUT_DIR for every test that loads configs/quickstart.yaml, built once (most of a minute) for all
    the pytest-xdist workers: in the folder their own temporary folders share, under a lock, by loading the config
    as a user's command would; the later loads find the finished build."""
    from orchestration.stages import load_config

    root = tmp_path_factory.getbasetemp()
    root = root if worker_id == "master" else root.parent
    folder = root / "quickstart_demo_data"
    with open(root / "quickstart_demo_data.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        load_config(REPO_ROOT / "configs" / "quickstart.yaml",
                    ["SYSTEM.OUTPUT_ROOT", str(root / "runs"), "DEMO_DATA.OUTPUT_DIR", str(folder),
                     "DATASET.CUSTOMIZED_DATASETS", f"[{folder / 'corpus'}]", "FINETUNE.GLUE_DIR", str(folder / "glue")])
    return folder
