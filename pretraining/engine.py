"""The DeepSpeed side of pretraining: the process group, the precision, the DeepSpeed config and the engine.

Nothing here knows about data or the loop; ``build_engine`` returns the engine and the bare model it wraps.
"""
import contextlib
import io
import os
from dataclasses import dataclass

import torch

from pipeline.errors import ConfigError
from pipeline.log_setup import chosen_level, library_level
from pretraining.modeling import BertForPreTraining, maybe_compile


def ensure_distributed_env() -> tuple:
    """(rank, world size, local rank). Without a launcher, declare a one-process group: DeepSpeed would otherwise
    try MPI discovery (and fail without mpi4py). Nobody connects to a one-process group: port 0 lets its store bind
    any free port itself, leaving no moment in which another process can take a port picked in advance."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", "0")
    return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", "0"))


def node_report(rank: int, local_rank: int) -> str:
    """Which global ranks this node runs (said once per node, by its local rank 0): the global rank splits the data
    and picks the one writer (0); the local rank picks the device. Launchers number a node's ranks contiguously."""
    import socket

    local_size = int(os.environ.get("LOCAL_WORLD_SIZE") or os.environ.get("LOCAL_SIZE") or 1)
    node = os.environ.get("GROUP_RANK") or os.environ.get("CROSS_RANK") or "0"
    first = rank - local_rank
    return (f"node {node} ({socket.gethostname()}): global ranks {first}-{first + local_size - 1}, local ranks"
            f" 0-{local_size - 1}")


def cpu_has_bf16_math() -> bool:
    """True when the CPU has bf16 dot-product instructions (AVX512-BF16 or AMX); without them bf16 is emulated and
    several times slower than fp32."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def machine_precision(requested: str) -> str:
    """The precision in effect on this machine. fp16 needs a GPU; ``auto`` is bf16 where supported (no loss
    scaling, fp32 range), else fp16 on older GPUs. On CPU ``auto`` is bf16 where the CPU has bf16 instructions (2x
    the fp32 throughput of bert-mini/small on an AVX512-BF16 EPYC, BENCHMARKS.md), else fp32. DeepSpeed keeps fp32
    master weights in every case."""
    on_gpu = torch.cuda.is_available()
    bf16_supported = on_gpu and torch.cuda.is_bf16_supported()
    if requested == "fp16" and not on_gpu:
        raise ConfigError("fp16 needs a GPU (DeepSpeed has no fp16 on CPU); use --bf16 or --fp32 on this machine")
    if requested == "bf16" and on_gpu and not bf16_supported:
        raise ConfigError("this GPU does not support bf16; use --fp16 (dynamic loss scaling) or --fp32")
    if requested != "auto":
        return requested
    if on_gpu:
        return "bf16" if bf16_supported else "fp16"
    return "bf16" if cpu_has_bf16_math() else "fp32"


def accumulation_steps(cfg, world_size: int) -> int:
    """Micro-batches per optimizer step: the global batch over micro batch x processes, which must divide it."""
    p = cfg.PRETRAIN
    per_step = p.MICRO_BATCH_SIZE_PER_GPU * world_size
    if p.BATCH_SIZE % per_step:
        raise ConfigError(f"--train_batch_size {p.BATCH_SIZE} is not divisible by --train_micro_batch_size_per_gpu x"
                          f" processes = {p.MICRO_BATCH_SIZE_PER_GPU} x {world_size}; choose a multiple of {per_step}")
    steps = p.BATCH_SIZE // per_step
    if p.GRADIENT_ACCUMULATION_STEPS and p.GRADIENT_ACCUMULATION_STEPS != steps:
        raise ConfigError(f"--gradient_accumulation_steps {p.GRADIENT_ACCUMULATION_STEPS} contradicts"
                          f" --train_batch_size {p.BATCH_SIZE} = {p.MICRO_BATCH_SIZE_PER_GPU} per micro-batch x"
                          f" {world_size} processes x {steps} steps; give two of the three (or all three agreeing)")
    return steps


def deepspeed_config(cfg, precision: str, world_size: int) -> dict:
    """The DeepSpeed config of ``cfg``'s PRETRAIN section."""
    p = cfg.PRETRAIN
    config = {
        "train_batch_size": p.BATCH_SIZE,
        "train_micro_batch_size_per_gpu": p.MICRO_BATCH_SIZE_PER_GPU,
        "gradient_accumulation_steps": accumulation_steps(cfg, world_size),
        "gradient_clipping": p.GRADIENT_CLIPPING,
        "steps_per_print": 2 ** 62,  # we log ourselves
        # Mixed precision runs under ZeRO >= 1 so that DeepSpeed keeps fp32 master weights with a mapping we can read
        # back for the export, and bf16 accumulates gradients in fp32 (with ZeRO 0, DeepSpeed would do so in bf16).
        "zero_optimization": {"stage": p.ZERO_STAGE if precision == "fp32" else max(1, p.ZERO_STAGE)},
        "zero_allow_untested_optimizer": True,
    }
    if precision == "fp16":
        config["fp16"] = {"enabled": True, "loss_scale": 0, "initial_scale_power": 16, "loss_scale_window": 1000,
                          "hysteresis": 2, "min_loss_scale": 1}
    elif precision == "bf16":
        config["bf16"] = {"enabled": True}
        config["data_types"] = {"grad_accum_dtype": "fp32"}
    return config


# PRETRAIN.OPTIMIZER -> the optimizer class (the setting's choices; ``--optimizer_type`` of the original's scripts).
OPTIMIZERS = {"adamw": torch.optim.AdamW}


def optimizer_param_groups(model, weight_decay: float) -> list:
    """AdamW groups: no weight decay on biases and LayerNorm weights (all 1-D parameters), as in BERT."""
    params = [param for param in model.parameters() if param.requires_grad]
    return [{"params": [param for param in params if param.ndim >= 2], "weight_decay": weight_decay},
            {"params": [param for param in params if param.ndim < 2], "weight_decay": 0.0}]


@dataclass
class EngineParts:
    engine: object  # the DeepSpeed engine (forward, backward, step, checkpoints)
    model: BertForPreTraining  # the bare model inside it (its parameters hold DeepSpeed's fp32 mapping)
    zero_stage: int  # the ZeRO stage in effect

    @property
    def device(self):
        return self.engine.device


def _unlink_shared_memory_names(rank: int, world_size: int) -> None:
    """DeepSpeed's CPU all-reduce maps one shared-memory file per rank in /dev/shm and never removes it: every
    multi-process CPU run would leave world_size x 66 MiB of RAM taken until the next reboot. Once every rank has
    mapped every file (the barrier), each rank removes its own name; the mappings stay valid until the process ends,
    a SIGKILL included."""
    import torch.distributed as dist

    if world_size == 1 or torch.cuda.is_available() or not os.path.isdir("/dev/shm"):
        return
    dist.barrier()
    name = f"deepspeed_allreduce_buffer_{os.getuid()}_{os.environ['MASTER_ADDR']}_{os.environ['MASTER_PORT']}_{rank}"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join("/dev/shm", name))


def build_engine(cfg, model_config, precision: str, world_size: int, local_rank: int,
                 start_from=None) -> EngineParts:
    """Initialise the process group (NCCL on GPU, gloo on CPU) and the engine; the initial weights depend only on
    the seed (and on ``start_from``, a function that fills the fresh model with starting weights: PRETRAIN.INIT_FROM),
    so they are the same on every rank and in every rerun."""
    import deepspeed
    import torch.distributed as dist

    p = cfg.PRETRAIN
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo")
        _unlink_shared_memory_names(dist.get_rank(), world_size)
    torch.manual_seed(cfg.SYSTEM.SEED)
    model = BertForPreTraining(model_config)
    if start_from is not None:
        start_from(model)
    optimizer = OPTIMIZERS[p.OPTIMIZER](optimizer_param_groups(model, p.WEIGHT_DECAY), lr=p.LEARNING_RATE,
                                       betas=(p.ADAM_BETA1, p.ADAM_BETA2), eps=p.ADAM_EPS)
    ds_config = deepspeed_config(cfg, precision, world_size)
    deepspeed.utils.logger.setLevel(library_level(chosen_level()))  # its INFO lines would drown the training log
    # DeepSpeed's bf16 optimizer prints a memory report per parameter group; errors still raise.
    with contextlib.redirect_stdout(io.StringIO()):
        engine, _, _, _ = deepspeed.initialize(model=maybe_compile(model, cfg.MODEL.COMPILE), optimizer=optimizer,
                                               config=ds_config)
    return EngineParts(engine, model, ds_config["zero_optimization"]["stage"])


def loss_scale(engine, precision: str) -> float:
    """fp16's current dynamic loss scale (1 in other precisions)."""
    scale = getattr(engine.optimizer, "cur_scale", None)
    if scale is None:
        scale = getattr(engine.optimizer, "loss_scale", None)
    return float(scale) if isinstance(scale, (int, float)) and precision == "fp16" else 1.0


def all_reduce(values, device, world_size: int, op: str = "sum") -> list:
    """``values`` summed (or maxed) over every rank, as floats (one process: the values, with no device sync)."""
    import torch.distributed as dist

    if world_size == 1:
        return [float(value) for value in values]
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX)
    return tensor.tolist()
