"""The text preparation of Hugging Face's ``run_mlm.py`` example (without ``--line_by_line``): every line tokenized
with its special tokens, everything concatenated, cut into blocks of ``block_size`` tokens, the remainder dropped.
The baseline of ``bench_dataset.py`` and the data of the HF contenders of ``bench_time_to_quality.py``."""


def tokenize_and_group(raw, tokenizer, block_size: int, num_proc=None):
    """``raw``: a ``datasets.Dataset`` with a ``text`` column; returns the grouped ``Dataset``."""

    def tokenize(batch):
        return tokenizer(batch["text"], return_special_tokens_mask=True)

    def group_texts(batch):
        concatenated = {k: sum(batch[k], []) for k in batch}
        total = len(concatenated["input_ids"]) // block_size * block_size
        return {k: [v[i:i + block_size] for i in range(0, total, block_size)] for k, v in concatenated.items()}

    tokenized = raw.map(tokenize, batched=True, num_proc=num_proc, remove_columns=["text"])
    return tokenized.map(group_texts, batched=True, num_proc=num_proc)
