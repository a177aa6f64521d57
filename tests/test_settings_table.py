"""One declaration per setting: the scripts' parsers, the config defaults, the checks and the README reference all
come from the settings table, and nothing else declares a flag (but --quiet/--verbose, declared once in
pipeline.log_setup for every script)."""
import argparse

import pytest

from dataset import generate_samples, shard_data
from pipeline.defaults import LR_CURVES, MODEL_PRESETS, SETTINGS, SETTINGS_BY_KEY, get_default_config, get_key
from pipeline.errors import ConfigError
from pipeline.log_setup import LEVEL_FLAGS
from pipeline.own_task_fields import FIELDS
from pipeline.script_flags import _NotApplicable, _SetSetting, config_from_flags, script_settings
from pipeline.setting import SCRIPTS, Interval
from pretraining import arguments

PARSERS = {"shard": (shard_data.build_parser, shard_data.IO_FLAGS),
           "samples": (generate_samples.build_parser, generate_samples.IO_FLAGS),
           "pretrain": (arguments.build_parser, arguments.IO_FLAGS)}
REQUIRED_IO = {"shard": ["--output_dir", "o", "--dataset", "custom", "d"], "samples": ["--dir", "d", "-o", "o"],
               "pretrain": ["--dataset_path", "d", "--output_dir", "o", "--tokenizer_name", "t"]}


def _table_flags(setting) -> set:
    names = set()
    for flag in setting.flags:
        name = flag.split("=")[0].split(":")[0]
        names.add(name)
        if type(setting.default) is bool and "=" not in flag and ":" not in flag:
            names.add(f"--no-{name[2:]}")
    return names


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_flag_is_a_setting_of_the_table_or_a_declared_input_output_flag(script):
    build_parser, io_flags = PARSERS[script]
    for action in build_parser()._actions:
        flags = [s for s in action.option_strings if s.startswith("--")]
        if isinstance(action, _SetSetting):
            setting = SETTINGS_BY_KEY[action.dest]
            assert script in setting.scripts and set(flags) <= _table_flags(setting), (flags, setting.key)
            assert action.default is argparse.SUPPRESS  # the default is the table's, not the parser's
        elif not isinstance(action, (_NotApplicable, argparse._HelpAction)):
            assert set(flags) <= set(io_flags) | set(LEVEL_FLAGS), f"{script}: {flags} is neither a setting nor declared in IO_FLAGS"


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_setting_of_a_script_reaches_its_parser(script):
    build_parser, _ = PARSERS[script]
    parsed_keys = {action.dest for action in build_parser()._actions if isinstance(action, _SetSetting)}
    assert parsed_keys == {setting.key for setting in script_settings(script)}


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_script_without_setting_flags_runs_with_the_config_defaults(script):
    build_parser, _ = PARSERS[script]
    cfg = config_from_flags(build_parser().parse_args(REQUIRED_IO[script]), script)
    assert cfg == get_default_config()


def _other_valid_value(setting):
    default = setting.default
    if setting.choices:
        return next((choice for choice in setting.choices if choice != default), default)
    if isinstance(default, bool):
        return not default
    if isinstance(default, str):
        return "x/y"
    interval = setting.interval
    candidate = default + 1 if isinstance(default, int) else default / 2 if default else 0.5
    if interval is not None and candidate not in interval:
        candidate = default - 1 if isinstance(default, int) else (default + (interval.low or 0)) / 2
    return candidate


def _argv_for(setting, flag, value) -> list:
    if "=" in flag:
        return [flag.split("=")[0]]
    if flag.endswith(":value"):
        return [flag[:-len(":value")], "1" if value else "0"]
    if isinstance(value, bool):
        return [flag if value else f"--no-{flag[2:]}"]
    return [flag, str(value)]


@pytest.mark.parametrize("setting", [s for s in SETTINGS if s.flags], ids=lambda s: s.key)
def test_each_flag_sets_its_config_key(setting):
    for script in set(setting.scripts) & set(SCRIPTS):  # run_glue.py's own: tests/test_finetuning_search_run.py
        build_parser, _ = PARSERS[script]
        for flag in setting.flags:
            value = flag.split("=", 1)[1] if "=" in flag else _other_valid_value(setting)
            args = build_parser().parse_args(REQUIRED_IO[script] + _argv_for(setting, flag, value))
            cfg = config_from_flags(args, script)
            assert get_key(cfg, setting.key) == value, (script, flag)


def test_a_flag_value_out_of_its_range_is_the_tables_error():
    args = arguments.build_parser().parse_args(REQUIRED_IO["pretrain"] + ["--esd_ratio", "1.5", "--max_steps", "0"])
    with pytest.raises(ConfigError) as info:
        config_from_flags(args, "pretrain")
    assert info.value.problems == ["PRETRAIN.NUM_STEPS = 0 is out of range [1, inf)",
                                   "PRETRAIN.ESD.RATIO = 1.5 is out of range (0, 1)"]


def test_choice_lists_are_declared_once_and_the_implementations_follow_them():
    from pretraining.modeling import PRESETS
    from pretraining.schedulers import CURVE_PARAMETERS, CURVES

    assert tuple(CURVES) == LR_CURVES == SETTINGS_BY_KEY["PRETRAIN.SCHEDULER"].choices
    assert PRESETS is MODEL_PRESETS and tuple(MODEL_PRESETS) == SETTINGS_BY_KEY["MODEL.PRESET"].choices
    declared = {"decay_rate": "PRETRAIN.EXP.DECAY_RATE", "decay_step": "PRETRAIN.EXP.DECAY_STEP",
                "inverse_time_lambda": "PRETRAIN.INVERSE_TIME.LAMBDA", "poly_power": "PRETRAIN.POLY.POWER",
                "step_decay_rate": "PRETRAIN.STEP.DECAY_RATE", "step_num_intervals": "PRETRAIN.STEP.NUM_INTERVALS",
                "esd_ratio": "PRETRAIN.ESD.RATIO", "esd_start_interval": "PRETRAIN.ESD.START_INTERVAL"}
    for parameters in CURVE_PARAMETERS.values():
        for name, default in parameters.items():
            assert SETTINGS_BY_KEY[declared[name]].default == pytest.approx(default), name


def test_intervals_read_like_mathematics():
    interval = Interval.parse("[0, 1)")
    assert 0 in interval and 0.5 in interval and 1 not in interval and str(interval) == "[0, 1)"
    assert -5 in Interval.parse("(-inf, 0]") and str(Interval.parse("(0, inf]")) == "(0, inf]"
    inf, nan = float("inf"), float("nan")
    assert inf not in Interval.parse("(0, inf)") and 1e300 in Interval.parse("(0, inf)")
    assert inf in Interval.parse("(0, inf]") and -inf not in Interval.parse("(-inf, 0]")
    assert nan not in Interval.parse("(-inf, inf]")


def test_no_setting_of_the_table_takes_inf_or_nan():
    for setting in (*SETTINGS, *FIELDS):
        if setting.range:
            for value in (float("inf"), float("-inf"), float("nan")):
                assert setting.check_value([value] if isinstance(setting.default, list) else value), setting.key
