"""What hardware a run will use, decided in one place."""
import os
import shutil
import socket
from pathlib import Path


def visible_gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def resolve_num_gpus(cfg) -> int:
    """GPUs this node will use: SYSTEM.NUM_GPUS, with -1 meaning all visible ones (0 on a machine without GPUs)."""
    return visible_gpu_count() if cfg.SYSTEM.NUM_GPUS < 0 else cfg.SYSTEM.NUM_GPUS


def data_parallel_processes(cfg, num_gpus=None) -> int:
    """Training processes on this node (they share one global batch): SYSTEM.PROCESSES_PER_NODE, or one per GPU
    (one process on a machine without GPUs). ``num_gpus``: the node's GPUs, when already resolved."""
    return cfg.SYSTEM.PROCESSES_PER_NODE or max(1, resolve_num_gpus(cfg) if num_gpus is None else num_gpus)


def num_workers(cfg) -> int:
    return cfg.SYSTEM.NUM_WORKERS or os.cpu_count() or 1


def machine_has_gpu() -> bool:
    """A cheap guess (no CUDA initialisation): an NVIDIA device node exists."""
    return any(Path("/dev").glob("nvidia[0-9]*")) or (shutil.which("nvidia-smi") is not None
                                                       and Path("/proc/driver/nvidia").exists())


def gpus_may_be_used(cfg) -> bool:
    """False when the config or the machine rules GPUs out (checked without initialising CUDA)."""
    return cfg.SYSTEM.NUM_GPUS > 0 or (cfg.SYSTEM.NUM_GPUS < 0 and machine_has_gpu())


def fp16_problems(precision: str, gpu_usable: bool, name: str = "", instead: str = "bf16, fp32 or auto") -> list:
    """The one-line problem when ``precision`` asks for fp16 where no GPU can be used (fp16 autocast needs CUDA:
    neither torch nor DeepSpeed has it on a CPU), else none. ``name``: the setting that asked."""
    if precision != "fp16" or gpu_usable:
        return []
    return [f"{name + ' = ' if name else ''}fp16 needs a GPU and this run can use none; use {instead}"]


def free_port() -> int:
    """A TCP port that is free now, for a torch.distributed rendezvous."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
