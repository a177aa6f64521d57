"""The Hugging Face contenders: ``Trainer`` + ``DataCollatorForLanguageModeling`` on text cut into blocks the way
``run_mlm.py`` prepares it (``benchmarks.run_mlm_blocks``), from the same training text shards that our samples
were made from."""
import json
from pathlib import Path

import torch

from benchmarks.run_mlm_blocks import tokenize_and_group
from benchmarks.time_to_quality.harness import Snapshots, TrainingClock

LOG_EVERY = 25


def grouped_blocks(text_files: list, tokenizer, block_size: int, cache_dir: Path):
    """run_mlm.py's dataset: ``load_dataset("text")``, tokenize, ``group_texts``; saved once under ``cache_dir``."""
    import datasets

    datasets.disable_progress_bars()
    saved = cache_dir / f"grouped-{block_size}"
    if saved.exists():
        return datasets.load_from_disk(str(saved))
    raw = datasets.load_dataset("text", data_files={"train": [str(f) for f in text_files]},
                                cache_dir=str(cache_dir / "hf_cache"))["train"]
    grouped = tokenize_and_group(raw, tokenizer, block_size)
    grouped.save_to_disk(str(saved))
    return datasets.load_from_disk(str(saved))


def build_model(architecture: str, sizes: dict, tokenizer, dropout: float):
    """An untrained masked LM of the given shape: stock BERT (post-LN) or RoBERTa-PreLayerNorm (pre-LN)."""
    from transformers import (BertConfig, BertForMaskedLM, RobertaPreLayerNormConfig,
                              RobertaPreLayerNormForMaskedLM)

    common = dict(vocab_size=len(tokenizer), hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout,
                  type_vocab_size=2, pad_token_id=tokenizer.pad_token_id, **sizes)
    if architecture == "bert":
        return BertForMaskedLM(BertConfig(max_position_embeddings=512, **common))
    if architecture == "roberta-prelayernorm":  # positions start after the padding index, as in RoBERTa
        return RobertaPreLayerNormForMaskedLM(RobertaPreLayerNormConfig(
            max_position_embeddings=514, bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
            **common))
    raise ValueError(f"unknown architecture {architecture}")


def linear_over_time(progress: float, warmup_fraction: float) -> float:
    """Warmup to the peak over ``warmup_fraction`` of the budget, then linear to zero at its end."""
    if progress < warmup_fraction:
        return progress / warmup_fraction
    return max(0.0, (1.0 - progress) / (1.0 - warmup_fraction))


def train_hf(recipe: dict, sizes: dict, tokenizer, blocks, output_dir: Path, budget_s: float, points: int,
             batch_size: int, precision: str, seed: int) -> None:
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainerCallback, TrainingArguments

    from pipeline.model_files import write_model_folder

    torch.manual_seed(seed)
    model = build_model(recipe["architecture"], sizes, tokenizer, recipe.get("dropout", 0.1))
    clock = TrainingClock()
    block_size = len(blocks[0]["input_ids"])  # group_texts' blocks are all full: every token is real
    snapshots = Snapshots(output_dir, budget_s, points, lambda folder: write_model_folder(model, tokenizer, folder))
    log = open(output_dir / "train_log.jsonl", "w", encoding="utf-8")

    class Budget(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            clock.start()

        def on_step_end(self, args, state, control, **kwargs):
            samples = state.global_step * batch_size
            snapshots.maybe_take(clock, state.global_step, samples, samples * block_size)
            if snapshots.finished(clock):
                control.should_training_stop = True

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                row = {"step": state.global_step, "train_s": round(clock.elapsed(), 2),
                       "lr": logs.get("learning_rate"), "loss": logs["loss"]}
                log.write(json.dumps(row) + "\n")
                log.flush()

    class TimeScheduledTrainer(Trainer):
        def create_scheduler(self, num_training_steps, optimizer=None):
            if self.lr_scheduler is None:
                warmup = recipe["warmup_fraction"]
                self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
                    optimizer or self.optimizer, lambda _: linear_over_time(clock.elapsed() / budget_s, warmup))
            return self.lr_scheduler

    on_gpu = torch.cuda.is_available()
    args = TrainingArguments(
        output_dir=str(output_dir / "trainer"), per_device_train_batch_size=batch_size, max_steps=10 ** 8,
        learning_rate=recipe["learning_rate"], weight_decay=recipe["weight_decay"], adam_beta1=recipe["adam_beta1"],
        adam_beta2=recipe["adam_beta2"], adam_epsilon=recipe["adam_epsilon"], logging_steps=LOG_EVERY,
        save_strategy="no", report_to=[], disable_tqdm=True, dataloader_num_workers=0, seed=seed,
        bf16=precision == "bf16", fp16=precision == "fp16", use_cpu=not on_gpu)
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15)
    trainer = TimeScheduledTrainer(model=model, args=args, train_dataset=blocks, data_collator=collator,
                                   callbacks=[Budget()])
    parameters = sum(p.numel() for p in model.parameters())
    print(f"{recipe['architecture']}: {parameters / 1e6:.1f}M parameters | {precision} | batch {batch_size} |"
          f" lr {recipe['learning_rate']:g}, warmup {recipe['warmup_fraction']:.0%} of {budget_s:.0f} s", flush=True)
    try:
        trainer.train()
    finally:
        log.close()
    steps = snapshots.taken[-1]["step"] if snapshots.taken else 0
    print(f"{recipe['architecture']}: {steps} steps in {clock.elapsed():.0f} s", flush=True)
    if len(snapshots.taken) < points:
        raise RuntimeError(f"training ended after {clock.elapsed():.0f} s, before the budget of {budget_s:.0f} s")
