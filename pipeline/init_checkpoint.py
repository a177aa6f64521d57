"""The starting checkpoint of PRETRAIN.INIT_FROM (``run_pretraining.py --model_name_or_path``), read without torch:
where its files are, its architecture as our MODEL keys, and the problems of a config that contradicts it (what is
accepted and what follows the checkpoint: the README, "Start from an existing BERT"). ``pretraining.import_weights``
reads the weights.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from pipeline.defaults import MODEL_PRESETS, SETTINGS_BY_KEY, get_key, is_local_path, set_key
from pipeline.errors import DataError, first_line
from pipeline.manifest import read_json

KEY = "PRETRAIN.INIT_FROM"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt")
TRANSFORMER_MODULE = "sentence_transformers.models.Transformer"
# model_type -> our MODEL.ENCODER_LN_MODE
LN_MODE_OF_MODEL_TYPE = {"bert": "post-ln", "roberta-prelayernorm": "pre-ln"}
# Our MODEL key -> the config.json field it is read from (ENCODER_LN_MODE comes from the model type).
MODEL_FIELDS = {"MODEL.HIDDEN_SIZE": "hidden_size", "MODEL.NUM_HIDDEN_LAYERS": "num_hidden_layers",
                "MODEL.NUM_ATTENTION_HEADS": "num_attention_heads", "MODEL.INTERMEDIATE_SIZE": "intermediate_size",
                "MODEL.HIDDEN_ACT": "hidden_act", "MODEL.MAX_POSITION_EMBEDDINGS": "max_position_embeddings"}
# A hub snapshot without the weights (config checks) or with them (training); safetensors preferred.
HUB_FILES = ["*.json", "vocab.txt", "*/*.json", "*/vocab.txt"]
HUB_WEIGHTS = ["model.safetensors", "*/model.safetensors"]
HUB_LEGACY_WEIGHTS = ["pytorch_model.bin", "*/pytorch_model.bin"]
# Model types whose position table has pad_token_id + 1 rows before the first position (RoBERTa's layout; our pre-LN
# exports are roberta-prelayernorm, see pretraining.export_stock).
OFFSET_POSITION_TYPES = ("roberta", "roberta-prelayernorm", "xlm-roberta", "camembert")


def input_positions(config: dict) -> Optional[int]:
    """The most tokens one input of a model with this ``config.json`` may have (None when it does not say): a longer
    row indexes past the position table, an ``IndexError`` deep inside a job, so the finetune stage's checks and
    ``run_glue.py`` compare their sequence lengths with it first."""
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


def _hub_snapshot(name: str, with_weights: bool) -> Path:
    """The local snapshot of hub model ``name`` (downloaded, or from the cache offline)."""
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(name, allow_patterns=HUB_FILES + (HUB_WEIGHTS if with_weights else [])))
        if with_weights and not any(folder.rglob("model.safetensors")):
            folder = Path(snapshot_download(name, allow_patterns=HUB_FILES + HUB_LEGACY_WEIGHTS))
    except Exception as e:  # offline without a cached copy, no such repo, no network: one line either way
        raise DataError(f"{KEY}: cannot fetch hub model '{name}': {first_line(e)}; give a local model folder or go"
                        f" online") from None
    return folder


def _model_folder(root: Path, name: str) -> Path:
    """The folder of ``root`` that holds config.json and the weights: a sentence-transformers Transformer module's
    (per modules.json), else ``root`` itself."""
    modules = read_json(root / "modules.json")
    if isinstance(modules, list):
        paths = [module.get("path", "") for module in modules if module.get("type") == TRANSFORMER_MODULE]
        if not paths:
            raise DataError(f"{KEY}: {name} is a sentence-transformers folder without a Transformer module")
        return root / paths[0]
    return root


@dataclass(frozen=True)
class StartingCheckpoint:
    """A located starting checkpoint: ``folder`` holds its config.json (and, when asked for, its weights)."""

    name: str  # as the config gives it
    root: Path  # the folder it names, or the hub snapshot
    folder: Path  # root, or the sentence-transformers module folder in it
    config: dict  # its config.json

    @classmethod
    def locate(cls, name: str, with_weights: bool = False) -> "StartingCheckpoint":
        """Raises DataError (one line) for a missing folder, a folder without config.json or weights, a hub name
        that cannot be fetched."""
        local = is_local_path(name)
        if local:
            root = Path(name).expanduser()
            if not root.is_dir():
                raise DataError(f"{KEY}: model folder does not exist: {name} (a final_model/ appears when the run"
                                f" that trains it has finished)")
        else:
            root = _hub_snapshot(name, with_weights)
        folder = _model_folder(root, name)
        config = read_json(folder / "config.json")
        if not isinstance(config, dict):
            raise DataError(f"{KEY}: {name} holds no readable config.json{_where(folder, root)}; give a Hugging Face"
                            f" model folder (config.json and model.safetensors)")
        checkpoint = cls(name, root, folder, config)
        if (with_weights or local) and checkpoint.weights_file is None:
            raise DataError(f"{KEY}: {name} holds no {' or '.join(WEIGHT_FILES)}{_where(folder, root)}")
        return checkpoint

    @property
    def weights_file(self):
        return next((self.folder / f for f in WEIGHT_FILES if (self.folder / f).is_file()), None)

    @property
    def model_type(self) -> str:
        return self.config.get("model_type", "")

    @property
    def pad_token_id(self) -> int:
        return self.config.get("pad_token_id") or 0

    @property
    def tokenizer_source(self) -> str:
        """Where the checkpoint's tokenizer loads from: the model folder or the folder it is a module of (a
        sentence-transformers layout), as a path, or the hub name when that is the snapshot's top level; "" when
        it has none."""
        for folder in dict.fromkeys((self.folder, self.root)):
            if any((folder / f).is_file() for f in TOKENIZER_FILES):
                return self.name if folder == self.root and not is_local_path(self.name) else str(folder)
        return ""

    def architecture_problems(self) -> list:
        """What in config.json our model cannot be (one line each)."""
        if self.model_type not in LN_MODE_OF_MODEL_TYPE:
            return [f"{KEY}: {self.name} is a '{self.model_type}' model; this model is BERT ('bert', post-LN)"
                    f" or 'roberta-prelayernorm' (pre-LN)"]
        problems = []
        embedding = self.config.get("position_embedding_type", "absolute")
        if embedding != "absolute":
            problems.append(f"{KEY}: {self.name} uses position_embedding_type '{embedding}'; this model has"
                            f" absolute position embeddings only")
        act = self.config.get("hidden_act")
        if act not in SETTINGS_BY_KEY["MODEL.HIDDEN_ACT"].choices:
            problems.append(f"{KEY}: {self.name} uses hidden_act {act!r}; this model has"
                            f" {', '.join(SETTINGS_BY_KEY['MODEL.HIDDEN_ACT'].choices)}")
        missing = [field for field in MODEL_FIELDS.values() if not self.config.get(field)]
        if missing:
            problems.append(f"{KEY}: {self.name}'s config.json lacks {', '.join(missing)}")
        return problems

    def model_keys(self) -> dict:
        """Our MODEL keys for this checkpoint's architecture (call after ``architecture_problems`` found none)."""
        return {**{key: self.config[field] for key, field in MODEL_FIELDS.items()},
                "MODEL.ENCODER_LN_MODE": LN_MODE_OF_MODEL_TYPE[self.model_type],
                "MODEL.MAX_POSITION_EMBEDDINGS": input_positions(self.config)}  # a pre-LN table has rows before ours


def _where(folder: Path, root: Path) -> str:
    return f" (in {folder.relative_to(root)}/)" if folder != root else ""


def _contradictions(cfg, checkpoint: StartingCheckpoint, keys: dict) -> list:
    """The MODEL keys the config sets (off their defaults; a shape key left at 0 takes a MODEL.PRESET that is off
    its default) to something else than the checkpoint has."""
    preset, preset_default = cfg.MODEL.PRESET, SETTINGS_BY_KEY["MODEL.PRESET"].default
    problems = []
    for key, value in keys.items():
        given, source = get_key(cfg, key), key
        if given == SETTINGS_BY_KEY[key].default and preset != preset_default:
            field = key.split(".")[1].lower()
            given, source = MODEL_PRESETS[preset].get(field, given), f"MODEL.PRESET = {preset}, whose {key}"
        if given != SETTINGS_BY_KEY[key].default and given != value:
            problems.append(f"{source} = {given} contradicts {KEY} ({checkpoint.name} has {value}); leave it out:"
                            f" the architecture follows the checkpoint")
    return problems


def apply_init_from(cfg, tokenizer_key: str = "TOKENIZER.NAME_OR_PATH") -> list:
    """With PRETRAIN.INIT_FROM set, write the checkpoint's architecture into the MODEL keys and its tokenizer into
    ``tokenizer_key`` (None: leave the tokenizer alone); returns the problems (one line each) instead when the
    config contradicts the checkpoint or the checkpoint does not fit. Reads config.json only (a hub model's small
    files are fetched, not its weights)."""
    name = cfg.PRETRAIN.INIT_FROM
    if not name:
        return []
    problems = []
    if cfg.TOKENIZER.TRAIN:
        problems.append(f"TOKENIZER.TRAIN = True contradicts {KEY}: the tokenizer is the checkpoint's; set"
                        f" TOKENIZER.TRAIN False (TOKENIZER.ADD_DOMAIN_TOKENS extends its vocabulary)")
    try:
        checkpoint = StartingCheckpoint.locate(name)
    except DataError as e:
        return problems + [str(e)]
    architecture = checkpoint.architecture_problems()
    if architecture:
        return problems + architecture
    keys = checkpoint.model_keys()
    problems += _contradictions(cfg, checkpoint, keys)
    if tokenizer_key:
        source = checkpoint.tokenizer_source
        given = get_key(cfg, tokenizer_key)
        if not source:
            problems.append(f"{KEY}: {name} holds no tokenizer ({', '.join(TOKENIZER_FILES)}); the samples must be"
                            f" made with the checkpoint's tokenizer")
        elif given != SETTINGS_BY_KEY[tokenizer_key].default and given != source:
            problems.append(f"{tokenizer_key} = {given} contradicts {KEY}: the tokenizer is the checkpoint's"
                            f" ({source}); leave {tokenizer_key} out")
        elif not problems:
            set_key(cfg, tokenizer_key, source)
    if not problems:
        for key, value in keys.items():
            set_key(cfg, key, value)
    return problems
