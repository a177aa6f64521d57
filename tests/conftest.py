"""Test-wide settings: never wait on the network, never log to wandb, and skip DeepSpeed's slow JIT comm op; the
one-process group that in-process DeepSpeed runs share; the quickstart's demo data folder, built once."""
import os
import socket
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
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
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
def quickstart_demo_dir(tmp_path_factory):
    """DEMO_DATA.OUTPUT_DIR for every test that loads configs/quickstart.yaml: the first load builds the demo corpus
    and tasks there (most of a minute), the later ones find the finished build."""
    return tmp_path_factory.mktemp("quickstart_demo_data")
