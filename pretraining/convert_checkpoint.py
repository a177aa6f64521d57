"""Convert a pre-LN ``final_model/`` of the old format (model type ``extremebert``, which needed this repository's
code to load) into the stock ``roberta-prelayernorm`` folder that exports are now::

    python -m pretraining.convert_checkpoint OLD_DIR NEW_DIR

NEW_DIR may be OLD_DIR: the folder is replaced atomically. Only pretraining exports (``ExtremeBertForMaskedLM``)
convert; a finetuned model of the old format is remade by finetuning the converted ``final_model/`` again.

``old_format_error`` is the one-line message loaders give for such a folder; it imports neither torch nor
transformers, so a loader can ask before anything heavy.
"""
import argparse
import sys
from pathlib import Path

from pipeline.errors import DataError
from pipeline.log_setup import add_level_flags, setup_script_logging
from pipeline.manifest import read_json
from pipeline.model_files import check_weight_files

OLD_MODEL_TYPE = "extremebert"
OLD_ARCHITECTURE = "ExtremeBertForMaskedLM"
COMMAND = "python -m pretraining.convert_checkpoint"


def old_format_error(model_path) -> str | None:
    """The one-line error for a model folder of the old format (naming the command that converts it); None for
    anything else (stock folders, hub names)."""
    config = read_json(Path(model_path) / "config.json")
    if not config or config.get("model_type") != OLD_MODEL_TYPE:
        return None
    return (f"{model_path} is an ExtremeBERT export of the old format (model type '{OLD_MODEL_TYPE}'), which stock "
            f"transformers cannot open; convert it once with: {COMMAND} {model_path} NEW_DIR")


def _old_name_to_ours(name: str) -> str:
    """The old folder kept our parameter names, the encoder under ``bert.`` and the MLM head as ``cls``."""
    if name.startswith("bert."):
        return name[len("bert."):]
    if name.startswith("cls."):
        return "head." + name[len("cls."):]
    raise DataError(f"unexpected weight {name} in an old-format model folder")


def read_old_export(folder: Path):
    """(our ``ModelConfig``, our state dict without vocabulary padding) of an old-format pretraining export."""
    from safetensors.torch import load_file

    from pretraining.export_stock import SHARED_FIELDS
    from pretraining.modeling import ModelConfig

    if not folder.is_dir():
        raise DataError(f"{folder} does not exist or is not a folder")
    config = read_json(folder / "config.json")
    if not config or config.get("model_type") != OLD_MODEL_TYPE:
        raise DataError(f"{folder} is not a model folder of the old format (its config.json does not say model type "
                        f"'{OLD_MODEL_TYPE}'): nothing to convert")
    if config.get("architectures") != [OLD_ARCHITECTURE]:
        raise DataError(f"{folder} holds a {config.get('architectures')} model; only pretraining exports "
                        f"({OLD_ARCHITECTURE}) convert: finetune again from the converted final_model")
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise DataError(f"{folder} has no model.safetensors")
    check_weight_files(folder)
    state = {_old_name_to_ours(name): tensor.float() for name, tensor in load_file(weights).items()}
    model_config = ModelConfig(vocab_size=config["vocab_size"], tokenizer_vocab_size=config["vocab_size"],
                               encoder_ln_mode=config.get("encoder_ln_mode", "pre-ln"),
                               pad_token_id=config.get("pad_token_id") or 0,
                               **{name: config[name] for name in SHARED_FIELDS if name in config})
    return model_config, state


def convert(old_dir, new_dir) -> None:
    """Write ``new_dir`` as the stock folder of the old-format export in ``old_dir``."""
    from transformers import AutoTokenizer, BertConfig

    from pipeline.defaults import SETTINGS_BY_KEY
    from pipeline.model_card import command_line, pretrained_card, write_card
    from pipeline.model_files import write_model_folder
    from pretraining.export_stock import build_stock_masked_lm
    from pretraining.modeling import parameter_count

    old_dir, new_dir = Path(old_dir), Path(new_dir)
    config, state = read_old_export(old_dir)
    if new_dir.exists() and new_dir.resolve() != old_dir.resolve() and any(new_dir.iterdir()):
        raise DataError(f"{new_dir} exists and is not empty; give a new folder, or {old_dir} itself to convert in "
                        f"place")
    # The old config.json names a model type transformers does not know; the tokenizer is BERT WordPiece, so say
    # so rather than let AutoTokenizer guess from that file (tokenizer_config.json's class still comes first).
    tokenizer = AutoTokenizer.from_pretrained(old_dir, config=BertConfig())
    card = pretrained_card({  # what the old folder records: its shape (its run's records are not part of it)
        "title": "ExtremeBERT pretrained model (converted from the old export format)", "model_type":
        "roberta-prelayernorm", "ln_mode": config.encoder_ln_mode, "parameters": parameter_count(config),
        "tokenizer": type(tokenizer).__name__, "vocab_size": len(tokenizer), "command": command_line(),
        "license": SETTINGS_BY_KEY["PUBLISH.LICENSE"].default})
    write_model_folder(build_stock_masked_lm(state, config, tokenizer), tokenizer, new_dir,
                       write_more=lambda folder: write_card(folder, card))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0])
    parser.add_argument("old_dir", help="final_model folder of the old format (model type extremebert)")
    parser.add_argument("new_dir", help="where to write the stock roberta-prelayernorm folder (may be OLD_DIR)")
    add_level_flags(parser)
    args = parser.parse_args(argv)
    setup_script_logging(args)
    try:
        convert(args.old_dir, args.new_dir)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.new_dir} (stock roberta-prelayernorm)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
