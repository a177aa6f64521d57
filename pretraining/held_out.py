"""The validation loss: mean MLM loss per predicted token over the held-out files, all ranks together."""
import torch

from pretraining.data.loader import VALIDATION_SALT, SampleStream
from pretraining.engine import all_reduce


def held_out_loss(engine, test_shards, vocab, cfg, rank: int, world_size: int):
    """The loss over the first VALIDATION_MAX_SAMPLES held-out samples (all ranks together), with masks fixed by
    the seed so that successive validations are comparable, and the same samples and masks for any number of
    processes; None when there is nothing to validate on."""
    p = cfg.PRETRAIN
    if not (p.VALIDATE and test_shards):
        return None
    micro_batch = p.VALIDATION_MICRO_BATCH or p.MICRO_BATCH_SIZE_PER_GPU
    stream = SampleStream(test_shards, vocab, micro_batch, rank, world_size, cfg.SYSTEM.SEED, shuffle=False,
                          repeat=False, max_samples=p.VALIDATION_MAX_SAMPLES, salt=VALIDATION_SALT)
    total, count = 0.0, 0
    engine.eval()
    with torch.no_grad():
        for batch in stream:
            predictions = batch.pop("num_predictions")
            if predictions == 0:
                continue
            loss = engine(**{k: (v.to(engine.device) if v is not None else None) for k, v in batch.items()})
            total += float(loss) * predictions
            count += predictions
    engine.train()
    total, count = all_reduce([total, count], engine.device, world_size)
    return total / count if count else None


def validation_sample_count(cfg, test_shards) -> int:
    """Samples one validation reads (all ranks together)."""
    if not cfg.PRETRAIN.VALIDATE:
        return 0
    available = sum(shard.num_samples for shard in test_shards)
    cap = cfg.PRETRAIN.VALIDATION_MAX_SAMPLES
    return min(available, cap) if cap else available
