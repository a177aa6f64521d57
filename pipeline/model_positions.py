"""How long an input a model takes, read from its ``config.json`` without torch: its position table's rows, less
the rows a RoBERTa-style model keeps in front of its first position.

A row longer than that indexes past the position table (an ``IndexError`` deep inside a job), so the finetune
stage's config check and ``run_glue.py`` compare their sequence lengths with it before any work.
"""
from pathlib import Path
from typing import Optional

from pipeline.manifest import read_json

# Model types whose position table has pad_token_id + 1 rows before the first position (RoBERTa's layout; our pre-LN
# exports are roberta-prelayernorm, see pretraining.export_stock).
OFFSET_POSITION_TYPES = ("roberta", "roberta-prelayernorm", "xlm-roberta", "camembert")


def input_positions(config: dict) -> Optional[int]:
    """The most tokens one input of a model with this ``config.json`` may have; None when the config does not say."""
    positions = config.get("max_position_embeddings")
    if not isinstance(positions, int) or isinstance(positions, bool):
        return None
    if config.get("model_type") in OFFSET_POSITION_TYPES:
        positions -= (config.get("pad_token_id") or 0) + 1
    return positions


def folder_positions(folder) -> Optional[int]:
    """``input_positions`` of the model folder ``folder``; None without a readable config.json."""
    config = read_json(Path(folder) / "config.json")
    return input_positions(config) if isinstance(config, dict) else None
