"""One evaluation for every contender, from its exported Hugging Face folders only: the held-out MLM loss on the
fixed masked samples (stock ``AutoModelForMaskedLM``, fp32) and GLUE dev scores after finetuning with
``finetuning/run_glue.py`` (the same flags for everyone)."""
import subprocess
import sys
from pathlib import Path

import torch

from pipeline.manifest import read_json, write_json_atomic

REPO_ROOT = Path(__file__).resolve().parents[2]


def held_out_loss(folder: Path, held_out: dict, batch_size: int = 64) -> float:
    """Mean cross-entropy per masked token over ``held_out`` (``data.write_held_out``). The stock model's encoder
    runs on every position and its MLM head on the masked ones only: the same numbers as the full logits, without
    the vocabulary-sized product at the positions that are not scored."""
    from transformers import AutoModelForMaskedLM
    from transformers.utils import logging

    logging.disable_progress_bar()
    model = AutoModelForMaskedLM.from_pretrained(str(folder)).float().eval()
    encoder = model.base_model
    (head,) = [module for _, module in model.named_children() if module is not encoder]
    total, count = 0.0, 0
    with torch.no_grad():
        for lo in range(0, len(held_out["input_ids"]), batch_size):
            labels = held_out["labels"][lo:lo + batch_size]
            hidden = encoder(input_ids=held_out["input_ids"][lo:lo + batch_size],
                             attention_mask=held_out["attention_mask"][lo:lo + batch_size])[0]
            predicted = labels != -100
            logits = head(hidden[predicted])
            total += float(torch.nn.functional.cross_entropy(logits.float(), labels[predicted], reduction="sum"))
            count += int(predicted.sum())
    return total / count


def snapshot_losses(contender_dir: Path, snapshots: list, held_out: dict) -> list:
    """Each snapshot's held-out loss (computed once; kept in ``held_out_losses.json``)."""
    path = contender_dir / "held_out_losses.json"
    known = read_json(path) or {}
    for snapshot in snapshots:
        if snapshot["folder"] not in known:
            known[snapshot["folder"]] = held_out_loss(contender_dir / snapshot["folder"], held_out)
            write_json_atomic(path, known)
    return [known[s["folder"]] for s in snapshots]


def finetune(model_dir: Path, task: str, seed: int, output_dir: Path, glue_dir: Path, train_rows: int, lr: float,
             epochs: int) -> dict:
    """Dev metrics of one ``run_glue.py`` job (skipped when its results exist)."""
    results = output_dir / "eval_results.json"
    if not results.exists():
        command = [sys.executable, str(REPO_ROOT / "finetuning" / "run_glue.py"), "--model_name_or_path",
                   str(model_dir), "--task_name", task, "--data_dir", str(glue_dir), "--output_dir", str(output_dir),
                   "--overwrite_output_dir", "--do_train", "--do_eval", "--max_seq_length", "128",
                   "--per_device_train_batch_size", "32", "--learning_rate", str(lr), "--num_train_epochs",
                   str(epochs), "--warmup_ratio", "0.06", "--weight_decay", "0.01", "--seed", str(seed),
                   "--max_train_samples", str(train_rows)]
        completed = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
        if completed.returncode:
            sys.exit(f"error: finetuning {model_dir} on {task} failed:\n{completed.stdout[-2000:]}"
                     f"{completed.stderr[-3000:]}")
    return read_json(results)
