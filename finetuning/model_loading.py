"""Loading the model and tokenizer a finetuning job starts from: a model folder (a pretrain final_model, any HF
encoder) or a hub name, with one-line errors that name the folder. The search uses ``load_tokenizer`` too, to
tokenize each task once before its jobs."""
from pipeline.errors import DataError
from pipeline.model_files import check_weight_files
from pipeline.tokenizer_loading import check_vocabulary


def refuse_old_format(model_path: str) -> None:
    """A model folder of the old pre-LN format (model type ``extremebert``) stops here with the command that
    converts it, rather than with transformers' "does not recognize this architecture"."""
    from pretraining.convert_checkpoint import old_format_error

    message = old_format_error(model_path)
    if message:
        raise DataError(message)


def load_tokenizer(model_path: str, **hub_options):
    """``AutoTokenizer`` for ``model_path``; ``hub_options`` go to ``from_pretrained`` (revision, token, ...)."""
    from transformers import AutoTokenizer

    refuse_old_format(model_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path, **hub_options)
    except (OSError, ValueError) as e:
        raise DataError(f"cannot load a tokenizer from {model_path}: {str(e).splitlines()[0]}")
    check_vocabulary(tokenizer, model_path)
    return tokenizer


def load_model(model_path: str, task, random_init: bool = False, config_name: str = "", **hub_options):
    """``AutoModelForSequenceClassification`` for ``task``; a head of another size (STILT) starts fresh.

    ``config_name`` loads the config from elsewhere; ``hub_options`` go to ``from_pretrained``."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    refuse_old_format(model_path)
    label_kwargs = {"num_labels": 1, "problem_type": "regression"} if task.is_regression else {
        "num_labels": len(task.labels), "problem_type": "single_label_classification",
        "id2label": dict(enumerate(task.labels)), "label2id": {label: i for i, label in enumerate(task.labels)}}
    try:
        config = AutoConfig.from_pretrained(config_name or model_path, **label_kwargs, **hub_options)
    except (OSError, ValueError) as e:
        raise DataError(f"cannot load a model config from {model_path}: {str(e).splitlines()[0]}")
    if random_init:
        return AutoModelForSequenceClassification.from_config(config)
    from safetensors import SafetensorError

    check_weight_files(model_path)  # a truncated file is named here; the library would not name it
    try:
        return AutoModelForSequenceClassification.from_pretrained(model_path, config=config,
                                                                  ignore_mismatched_sizes=True, **hub_options)
    except (OSError, SafetensorError) as e:
        raise DataError(f"cannot load the model weights from {model_path}: {str(e).strip().splitlines()[0]}") from e


def hub_options(model_args) -> dict:
    """The ``from_pretrained`` options the flags set (only those that differ from the defaults)."""
    options = {"cache_dir": model_args.cache_dir, "token": model_args.token,
               "revision": model_args.model_revision if model_args.model_revision != "main" else None,
               "trust_remote_code": model_args.trust_remote_code or None}
    return {key: value for key, value in options.items() if value is not None}
