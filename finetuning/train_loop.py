"""A lean finetuning loop: dynamic padding, optional length grouping, bf16/fp16 autocast on GPU, fp32 on CPU.

Why not the HF ``Trainer``: each job here is small and there are hundreds of them; this loop starts in no time,
pads each batch only to its own longest row (rounded up to a multiple of 8 on GPU for tensor cores) and evaluates
in length-sorted batches. Multi-GPU groups run it under ``torchrun`` with DistributedDataParallel.
"""
import math
import time

import numpy as np
import torch

# Rows per length-sorted "megabatch" when grouping by length, in batches (as in the HF LengthGroupedSampler):
# large enough that batches have near-uniform lengths, small enough that order stays random across the epoch.
_MEGABATCH_BATCHES = 50


def training_batches(lengths, batch_size: int, rng: np.random.Generator, group_by_length: bool) -> list:
    """Row indices per batch for one epoch: shuffled, and with ``group_by_length`` of similar lengths."""
    order = rng.permutation(len(lengths))
    if group_by_length:
        mega = batch_size * _MEGABATCH_BATCHES
        order = np.concatenate([chunk[np.argsort(-lengths[chunk], kind="stable")]
                                for chunk in np.array_split(order, max(1, math.ceil(len(order) / mega)))])
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if group_by_length:
        batches = [batches[i] for i in rng.permutation(len(batches))]  # no long-to-short trend within an epoch
    return batches


def collate(encoded, rows, pad_id: int, pad_multiple: int = 1, with_labels: bool = True) -> dict:
    """Tensors for ``rows`` of an ``EncodedSplit``, padded to the longest row of this batch only."""
    lengths = [int(encoded.offsets[i + 1] - encoded.offsets[i]) for i in rows]
    width = max(lengths)
    width = -(-width // pad_multiple) * pad_multiple
    input_ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    token_type_ids = np.zeros((len(rows), width), dtype=np.int64)
    attention_mask = np.zeros((len(rows), width), dtype=np.int64)
    for j, (i, n) in enumerate(zip(rows, lengths)):
        ids, types = encoded.row(i)
        input_ids[j, :n] = ids
        token_type_ids[j, :n] = types
        attention_mask[j, :n] = 1
    batch = {"input_ids": torch.from_numpy(input_ids), "token_type_ids": torch.from_numpy(token_type_ids),
             "attention_mask": torch.from_numpy(attention_mask)}
    if with_labels and encoded.labels is not None:
        batch["labels"] = torch.from_numpy(encoded.labels[np.asarray(rows)])
    return batch


def autocast_dtype(precision: str, device: torch.device):
    """The autocast dtype for ``precision`` (auto = bf16 where supported, else fp16 on GPU; fp32 on CPU)."""
    if device.type != "cuda" or precision == "fp32":
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def _optimizer(model, learning_rate: float, weight_decay: float, device: torch.device):
    """AdamW with no decay on biases and LayerNorm weights (as BERT and the HF Trainer do)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if param.ndim < 2 or "LayerNorm" in name or "layernorm" in name else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # The fused kernel is one pass over all parameters: on CPU too it is ~1.5-2x faster than the per-tensor loop.
    return torch.optim.AdamW(groups, lr=learning_rate, fused=device.type in ("cpu", "cuda"))


def train(model, encoded, *, batch_size: int, learning_rate: float, weight_decay: float, epochs: float,
          lr_scheduler_type: str, warmup_ratio: float, seed: int, group_by_length: bool, device, pad_id: int,
          precision: str = "auto", rank: int = 0, world_size: int = 1, max_grad_norm: float = 1.0,
          log=print) -> dict:
    """Train ``model`` (already on ``device``, DDP-wrapped when ``world_size`` > 1) in place; returns a summary."""
    from transformers import get_scheduler

    rng = np.random.default_rng(seed)
    lengths = encoded.lengths
    global_batch = batch_size * world_size
    # One process keeps the short last batch; several drop it, as every rank must take a full, equal share.
    steps_per_epoch = math.ceil(len(encoded) / global_batch) if world_size == 1 else len(encoded) // global_batch
    if steps_per_epoch == 0:
        raise ValueError(f"{len(encoded)} training rows give no step at batch size {batch_size} x {world_size}")
    total_steps = max(1, math.ceil(steps_per_epoch * epochs))
    optimizer = _optimizer(model, learning_rate, weight_decay, device)
    # At least one step after warmup: transformers' polynomial schedule divides by (total - warmup).
    warmup_steps = min(math.ceil(warmup_ratio * total_steps), total_steps - 1)
    scheduler = get_scheduler(lr_scheduler_type, optimizer, num_warmup_steps=warmup_steps,
                              num_training_steps=total_steps)
    dtype = autocast_dtype(precision, device)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    pad_multiple = 8 if device.type == "cuda" else 1
    log_every = max(1, total_steps // 10)
    model.train()
    step, started, running_loss, running_n = 0, time.time(), 0.0, 0
    while step < total_steps:
        # The batches of the global batch size, the same for any number of processes; rank r trains on rows
        # [r*batch_size, (r+1)*batch_size) of each, so that N processes take the steps one process would.
        batches = training_batches(lengths, global_batch, rng, group_by_length)
        if world_size > 1:
            batches = [batch for batch in batches if len(batch) == global_batch]
        for rows in (batch[rank * batch_size:(rank + 1) * batch_size] for batch in batches):
            if step >= total_steps:
                break
            batch = {k: v.to(device, non_blocking=True) for k, v in collate(encoded, rows, pad_id, pad_multiple).items()}
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                loss = model(**batch).loss
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
            else:
                loss.backward()
            if max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            running_loss += loss.item()
            running_n += 1
            if rank == 0 and (step % log_every == 0 or step == total_steps):
                log(f"step {step}/{total_steps} loss {running_loss / running_n:.4f} lr {scheduler.get_last_lr()[0]:.3g}"
                    f" elapsed {time.time() - started:.1f}s")
                running_loss, running_n = 0.0, 0
    return {"train_steps": total_steps, "train_runtime_s": time.time() - started}


@torch.no_grad()
def predict(model, encoded, *, batch_size: int, device, pad_id: int, precision: str = "auto"):
    """Logits for every row (in the split's order) and the mean loss when the split has labels."""
    model.eval()
    dtype = autocast_dtype(precision, device)
    order = np.argsort(-encoded.lengths, kind="stable")  # length-sorted batches waste almost no padding
    pad_multiple = 8 if device.type == "cuda" else 1
    outputs, loss_sum = [None] * len(order), 0.0
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        batch = {k: v.to(device) for k, v in collate(encoded, rows, pad_id, pad_multiple).items()}
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            result = model(**batch)
        if result.loss is not None:
            loss_sum += result.loss.float().item() * len(rows)
        logits = result.logits.float().cpu().numpy()
        for row, value in zip(rows, logits):
            outputs[row] = value
    logits = np.stack(outputs) if outputs else np.zeros((0, 1), np.float32)
    loss = loss_sum / len(order) if encoded.labels is not None and len(order) else None
    return logits, loss
