"""What a pretraining run reports: ``metrics.jsonl`` (its lines: ``docs/interfaces.md``), ``training_curves.png``,
TensorBoard event files (SYSTEM.TENSORBOARD) and (optionally) Weights & Biases. Only rank 0 writes.
"""
import hashlib
import json
import math
import os
from pathlib import Path

from pipeline.figures import pyplot, save_figure
from pipeline.manifest import write_text_atomic

METRICS_NAME = "metrics.jsonl"
CURVES_NAME = "training_curves.png"
# metrics.jsonl key -> TensorBoard tag, in the HF Trainer's train/ and eval/ sections (step and elapsed_s are axes)
TENSORBOARD_TAGS = {"loss": "train/loss", "lr": "train/learning_rate", "samples_per_s": "train/samples_per_s",
                    "tokens_per_s": "train/tokens_per_s", "real_tokens_per_s": "train/real_tokens_per_s",
                    "loss_scale": "train/loss_scale", "mfu": "train/mfu", "skipped_steps": "train/skipped_steps",
                    "val_loss": "eval/loss"}

# Dense bf16/fp16 tensor-core peak of one GPU in FLOP/s (vendor datasheets, without sparsity), for MFU.
GPU_PEAK_FLOPS = (
    ("H200", 989e12), ("H100 PCIe", 756e12), ("H100", 989e12), ("GH200", 989e12), ("A100", 312e12),
    ("A800", 312e12), ("L40S", 362e12), ("L40", 181e12), ("L4", 121e12), ("A10G", 70e12), ("A10", 125e12),
    ("A6000", 155e12), ("RTX 4090", 165e12), ("RTX 3090", 71e12), ("V100", 125e12), ("T4", 65e12),
)


def gpu_peak_flops(device_name: str, precision: str):
    """Peak FLOP/s of the named GPU at 16-bit precision, or None when unknown (or fp32: no tensor-core peak)."""
    found = (peak for marker, peak in GPU_PEAK_FLOPS if marker.lower() in device_name.lower())
    return next(found, None) if precision in ("fp16", "bf16") else None


def read_metrics(path) -> list:
    """The lines of a metrics file, in order (a torn last line from a killed run, or a line that is not a step's
    record, is skipped). The one reader of ``metrics.jsonl``: the report reads it too."""
    rows = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                if isinstance(row, dict) and "step" in row:
                    rows.append(row)
    except OSError:
        pass
    return rows


def split_metrics(rows) -> tuple:
    """(training lines, validation lines) of ``read_metrics``' rows."""
    train = [r for r in rows if r.get("loss") is not None and "val_loss" not in r]
    val = [r for r in rows if r.get("val_loss") is not None]
    return train, val


class MetricsLog:
    """Appends metric lines, mirrors them to TensorBoard (into ``tensorboard_dir``, None = not) and wandb, and draws
    the curves. A no-op object on ranks other than 0."""

    def __init__(self, output_dir, enabled: bool, resume_step: int = 0, wandb_cfg=None, tensorboard_dir=None):
        self.enabled = enabled
        self.path = Path(output_dir) / METRICS_NAME
        self.curves_path = Path(output_dir) / CURVES_NAME
        self._wandb = None
        self._tensorboard = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._truncate_after(resume_step)
        if tensorboard_dir is not None:
            from pipeline.tensorboard_log import ScalarWriter

            self._tensorboard = ScalarWriter(tensorboard_dir, from_scratch=resume_step == 0)
        pyplot()  # now rather than at the end: the time budget's reserve then holds drawing time only
        if wandb_cfg is not None:
            self._wandb = _start_wandb(output_dir, wandb_cfg)

    def _truncate_after(self, step: int) -> None:
        """Drop lines a killed run wrote after its last checkpoint: the resumed run writes those steps again."""
        rows = [r for r in read_metrics(self.path) if r.get("step", 0) <= step]
        write_text_atomic(self.path, "".join(json.dumps(r) + "\n" for r in rows))

    def log(self, row: dict) -> None:
        if not self.enabled:
            return
        # JSON has no NaN/inf: they are written as null, so that the file stays parseable
        row = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()
               if v is not None or k in ("loss", "val_loss")}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        if self._tensorboard is not None:
            tags = {TENSORBOARD_TAGS[k]: v for k, v in row.items() if k in TENSORBOARD_TAGS}
            self._tensorboard.add(tags, row["step"])
        if self._wandb is not None:
            self._wandb.log({k: v for k, v in row.items() if k != "step" and v is not None}, step=row["step"])

    def flush(self) -> None:
        """Put what was logged on disk: a run killed later resumes from its last checkpoint, and the event files then
        hold every step up to it, as ``metrics.jsonl`` does."""
        if self._tensorboard is not None:
            self._tensorboard.flush()

    def plot(self) -> None:
        if self.enabled:
            plot_training_curves(self.path, self.curves_path)

    def close(self) -> None:
        if self._tensorboard is not None:
            self._tensorboard.close()
            self._tensorboard = None
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None


def _start_wandb(output_dir, cfg):
    import wandb

    # A stable id from the output folder: a resumed run continues the same wandb run instead of starting another.
    run_id = hashlib.sha1(str(Path(output_dir).resolve()).encode()).hexdigest()[:16]
    w = cfg.WANDB
    return wandb.init(project=w.PROJECT or None, entity=w.ENTITY or None, name=cfg.PRETRAIN.ID or "pretraining",
                      config=cfg, id=run_id, resume="allow", mode=w.MODE or os.environ.get("WANDB_MODE") or "online",
                      dir=str(output_dir))


def plot_training_curves(metrics_path, png_path):
    """Loss (training and validation) and learning rate against step, one PNG written via a temporary name;
    returns its path, or None when the metrics hold no line yet."""
    train, val = split_metrics(read_metrics(metrics_path))
    if not train and not val:
        return None
    plt = pyplot()
    fig, (ax_loss, ax_lr) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    ax_loss.plot([r["step"] for r in train], [r["loss"] for r in train], label="training loss")
    if val:
        ax_loss.plot([r["step"] for r in val], [r["val_loss"] for r in val], "o-", label="validation loss")
    ax_loss.set_ylabel("MLM loss")
    ax_loss.grid(alpha=0.3)
    ax_loss.legend()
    ax_lr.plot([r["step"] for r in train], [r.get("lr") for r in train], color="tab:green")
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_xlabel("step")
    ax_lr.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, png_path)
