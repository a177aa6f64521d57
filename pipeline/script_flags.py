"""The stand-alone scripts' flags, generated from the settings table (``pipeline/defaults.py``).

Every setting that names a script (``setting.SCRIPTS``) gives that script its flags, with the setting's type,
choices and meaning. A flag not given stores nothing, so a script's defaults are the config's by construction;
``config_from_flags`` turns the flags given into a checked config. Flags of the original ExtremeBERT / 24h-BERT
scripts that mean nothing here are accepted (``add_not_applicable``) with a one-line note on what to use instead.
"""
import argparse

from pipeline.config import load_yaml_file, merge_mapping
from pipeline.defaults import SETTINGS, get_default_config, set_key
from pipeline.errors import ConfigError
from pipeline.validation import value_problems

SETTINGS_ATTR = "_settings_given"  # namespace attribute: {key: (flag, value)} of the table flags given
NOTES_ATTR = "_not_applicable_given"  # namespace attribute: notes for the not-applicable flags given


class ScriptParser(argparse.ArgumentParser):
    """argparse with a one-line error (``error: ...; see --help``, exit 2) instead of the usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def script_settings(script: str) -> list:
    """The settings whose flags ``script`` takes, in table order."""
    return [setting for setting in SETTINGS if script in setting.scripts]


def parse_bool(text: str) -> bool:
    lowered = str(text).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected 0/1/true/false, got {text!r}")


class _SetSetting(argparse.Action):
    """Records a setting's value under its config key; two flags giving one setting different values (e.g.
    ``--fp16 --bf16``) are an error rather than "the last one wins"."""

    def __call__(self, parser, namespace, values, option_string=None):
        value = self.const if self.nargs == 0 else values
        given = vars(namespace).setdefault(SETTINGS_ATTR, {})
        earlier = given.get(self.dest)
        if earlier is not None and earlier[1] != value:
            parser.error(f"{option_string} contradicts {earlier[0]}: give at most one of them")
        given[self.dest] = (option_string, value)


def _flag_help(setting) -> str:
    return f"{setting.help} [{setting.key}, default {setting.default!r}]".replace("%", "%%")


def _add_flag(group, setting, flag: str) -> None:
    value_type = type(setting.default)
    common = dict(dest=setting.key, action=_SetSetting, default=argparse.SUPPRESS)
    if "=" in flag:  # a flag that stores one constant, e.g. --fp16=fp16
        name, const = flag.split("=", 1)
        group.add_argument(name, nargs=0, const=const, help=f"same as {setting.key} = {const}", **common)
    elif value_type is bool and flag.endswith(":value"):  # a bool given as 0/1, e.g. --do_lower_case 1
        group.add_argument(flag[:-len(":value")], type=parse_bool, metavar="{0,1}", help=_flag_help(setting),
                           **common)
    elif value_type is bool:  # a switch with its --no- twin
        group.add_argument(flag, nargs=0, const=True, help=_flag_help(setting), **common)
        group.add_argument(f"--no-{flag[2:]}", nargs=0, const=False, help=f"{setting.key} = False", **common)
    else:
        group.add_argument(flag, type=value_type, choices=setting.choices or None, metavar=setting.choices and
                           "{" + ",".join(map(str, setting.choices)) + "}" or "X", help=_flag_help(setting), **common)


def add_setting_flags(parser: argparse.ArgumentParser, script: str) -> None:
    """Add the flags of every setting that ``script`` takes, grouped by config section."""
    groups = {}
    for setting in script_settings(script):
        section = setting.key.split(".")[0]
        if section not in groups:
            groups[section] = parser.add_argument_group(f"settings ({section} section of the config)")
        for flag in setting.flags:
            _add_flag(groups[section], setting, flag)


class _NotApplicable(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        note = f"note: {option_string} has no effect here: {self.help.removeprefix('not applicable: ')}"
        vars(namespace).setdefault(NOTES_ATTR, []).append(note)


def add_not_applicable(parser, reason: str, *flags, takes_value: bool = True) -> None:
    """Accept ``flags`` of the original scripts that mean nothing here; ``reason`` says what to use instead."""
    group = parser.add_argument_group("flags of the original scripts that do not apply")
    for flag in flags:
        group.add_argument(flag, action=_NotApplicable, nargs=None if takes_value else 0, default=argparse.SUPPRESS,
                           metavar="X", help=f"not applicable: {reason}")


def not_applicable_notes(args) -> list:
    """One line per not-applicable flag that was given."""
    return list(getattr(args, NOTES_ATTR, None) or [])


def given_settings(args) -> dict:
    """``{config key: value}`` of the table flags that were given."""
    return {key: value for key, (_, value) in (getattr(args, SETTINGS_ATTR, None) or {}).items()}


def config_from_flags(args, script: str, config_file=None):
    """The config a stand-alone script runs with: the defaults, then ``config_file`` (a YAML config, e.g. the one
    a pipeline run resolved) when given, then the flags. Raises ConfigError listing every problem of the script's
    settings. The result is mutable (the script fills what its flags leave out, e.g. paths)."""
    problems: list = []
    cfg = get_default_config()
    if config_file:
        merge_mapping(cfg, load_yaml_file(config_file, problems), problems)
    for key, value in given_settings(args).items():
        set_key(cfg, key, value)
    problems += value_problems(cfg, script_settings(script))
    if problems:
        raise ConfigError(problems)
    return cfg

