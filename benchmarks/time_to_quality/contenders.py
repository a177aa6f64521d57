"""The contenders: who trains, with which recipe. Every one gets the same data, tokenizer, architecture size,
batch size, precision and wall-clock budget; only the recipe differs.

``ours*`` run the pipeline's own pretraining (``pretraining.trainer``'s pieces: DeepSpeed engine, sample stream,
train step, scheduler) with the settings table's defaults, on the time basis over the budget, plus the overrides
given. ``hf*`` run Hugging Face's ``Trainer`` with ``DataCollatorForLanguageModeling`` on text grouped into blocks,
as ``examples/pytorch/language-modeling/run_mlm.py`` does; its linear decay (after an optional warmup) spans the
budget's wall-clock time instead of a step count, so that it ends at zero when the budget does, as ours does.
"""
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Contender:
    name: str
    kind: str  # "ours" or "hf"
    description: str
    overrides: tuple = ()  # ours: config key/value pairs on top of the defaults
    hf: dict = field(default_factory=dict)  # hf: architecture and optimizer settings


HF_RUN_MLM = dict(architecture="bert", learning_rate=1e-4, warmup_fraction=0.0, weight_decay=0.0, adam_beta1=0.9,
                  adam_beta2=0.999, adam_epsilon=1e-8)  # run_mlm.py / TrainingArguments defaults, lr 5e-5 doubled
HF_24H_PRELN = dict(architecture="roberta-prelayernorm", learning_rate=1e-3, warmup_fraction=0.06, weight_decay=0.01,
                    adam_beta1=0.9, adam_beta2=0.98, adam_epsilon=1e-6)  # 24h-BERT's optimizer on HF's pre-LN model

CONTENDERS = (
    Contender("ours", "ours", "ours: the settings table's defaults (pre-LN, ESD, lr 1e-3, warmup 6%,"
                              " full_sentences packing)"),
    Contender("hf-run-mlm", "hf", "HF run_mlm recipe: BertForMaskedLM (post-LN), lr 1e-4, no warmup, linear",
              hf=HF_RUN_MLM),
    Contender("hf-preln-24h", "hf", "24h-BERT recipe on HF's RobertaPreLayerNorm: lr 1e-3, warmup 6%, linear",
              hf=HF_24H_PRELN),
    Contender("ours-linear", "ours", "ours, linear decay instead of ESD", ("PRETRAIN.SCHEDULER", "linear")),
    Contender("ours-cosine", "ours", "ours, cosine decay instead of ESD", ("PRETRAIN.SCHEDULER", "cosine")),
    Contender("ours-constant", "ours", "ours, constant rate after the warmup", ("PRETRAIN.SCHEDULER", "constant")),
)
BY_NAME = {c.name: c for c in CONTENDERS}
REFERENCE = "hf-run-mlm"  # whose final held-out loss is the target


def variant(name: str, pairs: list) -> Contender:
    """An extra contender of ours from the command line: ``NAME KEY VALUE [KEY VALUE ...]``."""
    if len(pairs) % 2:
        raise ValueError(f"--variant {name}: give KEY VALUE pairs")
    described = ", ".join(f"{k} {v}" for k, v in zip(pairs[::2], pairs[1::2]))
    return Contender(name, "ours", f"ours, {described}", tuple(pairs))
