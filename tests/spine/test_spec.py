"""JobSpec: conversion and validation of the arguments, each failure with its exit code
(docs/design.md, 'Arguments and exit codes')."""
from __future__ import annotations

import dataclasses
import typing

import pytest

from wrapper import exitcodes as ec
from wrapper.args.argdefs import ARGS, BOOL, BY_NAME, FLOAT, FLOATLIST, INT, LIST, REQUIRED, STR
from wrapper.errors import TrfError
from wrapper.args.helptext import help_text
from wrapper.args.spec import JobSpec, parse_job_args

BASE = {"train": ["--mode=train", "--inputEventsFile=ev.h5", "--outputModelFile=model.keras"],
        "infer": ["--mode=infer", "--inputEventsFile=ev.h5", "--modelFile=m.keras", "--outputPredFile=p.h5"],
        "evaluate": ["--mode=evaluate", "--inputEventsFile=ev.h5", "--modelFile=m.keras",
                     "--outputMetricsFile=metrics.json"]}


def code_of(words) -> int:
    with pytest.raises(TrfError) as caught:
        parse_job_args(list(words))
    return caught.value.exit_code


def message_of(words) -> str:
    with pytest.raises(TrfError) as caught:
        parse_job_args(list(words))
    return caught.value.message


@pytest.mark.parametrize("mode", sorted(BASE))
def test_each_mode_has_a_minimal_valid_command_line(mode):
    spec = parse_job_args(BASE[mode])
    assert spec.mode == mode and spec.input_events == ("ev.h5",)


# --- exit code classes ------------------------------------------------------------------------------

@pytest.mark.parametrize("word", ["--epochs=three", "--epochs=1.5", "--epochs=", "--batchSize=0x10",
                                  "--learningRate=fast", "--learningRate=nan", "--learningRate=inf",
                                  "--validationSplit=1e999", "--classWeights=1,x,3", "--resume=perhaps",
                                  "--epochs=\u0663",      # an Arabic-Indic digit three
                                  "--randomSeed=" + "9" * 5000])
def test_wrong_type_is_exit_4(word):
    words = [*BASE["train"], word]
    assert code_of(words) == ec.ARG_CONV_FAIL
    assert word.split("=")[0] in message_of(words)


@pytest.mark.parametrize("word,bound", [("--epochs=0", "minimum 1"), ("--batchSize=5000", "maximum 4096"),
                                        ("--maxEvents=-2", "minimum -1"), ("--skipEvents=-1", "minimum 0"),
                                        ("--randomSeed=2147483648", "maximum 2.14748e+09"),
                                        ("--learningRate=0", "minimum 1e-09"),
                                        ("--validationSplit=0.95", "maximum 0.9"),
                                        ("--classWeights=1,-170,15", "minimum 0"),
                                        ("--gpus=65", "maximum 64"), ("--timeLimit=0.5", "minimum 1")])
def test_out_of_range_is_exit_5(word, bound):
    words = [*BASE["train"], word]
    assert code_of(words) == ec.ARG_OUT_OF_RANGE
    assert bound in message_of(words) and word.split("=")[0] in message_of(words)


def test_range_edges_are_inclusive():
    spec = parse_job_args([*BASE["train"], "--epochs=1", "--maxEvents=-1", "--randomSeed=2147483647",
                           "--validationSplit=0.9", "--batchSize=4096", "--gpus=0"])
    assert (spec.epochs, spec.max_events, spec.random_seed, spec.validation_split, spec.batch_size,
            spec.gpus) == (1, -1, 2**31 - 1, 0.9, 4096, 0)


@pytest.mark.parametrize("word", ["--mode=predict", "--mode=Infer", "--loss=mse", "--device=tpu",
                                  "--precision=float16", "--modelConfig=huge", "--predictionFormat=png",
                                  "--accessMode=stream"])
def test_value_not_among_choices_is_exit_16(word):
    words = [*BASE["infer"], word] if not word.startswith("--mode") else [word, *BASE["infer"][1:]]
    assert code_of(words) == ec.ARG_CHOICES_FAIL
    message = message_of(words)
    assert repr(word.split("=")[1]) in message and "not one of" in message


@pytest.mark.parametrize("mode", sorted(REQUIRED))
def test_each_required_argument_of_each_mode_is_exit_17(mode):
    for need in REQUIRED[mode]:
        names = need if isinstance(need, tuple) else (need,)
        words = [w for w in BASE[mode] if w.split("=")[0][2:] not in names]
        assert code_of(words) == ec.ARG_MISSING, (mode, names)
        assert all(f"--{n}" in message_of(words) for n in names)
        assert f"--mode={mode}" in message_of(words)


def test_missing_mode_is_exit_17():
    assert code_of(["--inputEventsFile=ev.h5"]) == ec.ARG_MISSING
    assert "--mode" in message_of([])


def test_evaluate_accepts_either_output():
    spec = parse_job_args(["--mode=evaluate", "--inputEventsFile=e.h5", "--modelFile=m",
                           "--outputPredFile=p.h5"])
    assert spec.output_pred == "p.h5" and spec.output_metrics is None


def test_build_manifest_stands_in_for_the_model_file():
    spec = parse_job_args(["--mode=infer", "--inputEventsFile=e.h5", "--buildManifest=builds.json",
                           "--outputPredFile=p.h5"])
    assert spec.model_file is None and spec.build_manifest == "builds.json"


def test_help_and_show_platform_need_nothing_else():
    assert parse_job_args(["--help"]).help is True
    assert parse_job_args(["--showPlatform"]).show_platform is True


@pytest.mark.parametrize("words,needle", [
    (["--requireGPU", "--device=cpu"], "--requireGPU"),
    (["--classWeights=1,2"], "3 values"),
    (["--classWeights=1,2,3,4"], "3 values"),
    (["--cropSize=128", "--modelConfig=paper"], "position channels"),
    (["--cropSize=100"], "multiple of 16"),
])
def test_contradictions_and_malformed_values_are_exit_7(words, needle):
    assert code_of([*BASE["train"], *words]) == ec.ARG_ERROR
    assert needle in message_of([*BASE["train"], *words])


def test_crop_training_options_reach_the_spec_and_mean_nothing_elsewhere():
    spec = parse_job_args([*BASE["train"], "--cropSize=128", "--loss=dice", "--lrSchedule=cosine",
                           "--warmupSteps=100", "--beamFraction=0.25"])
    assert (spec.crop_size, spec.loss, spec.lr_schedule, spec.warmup_steps, spec.beam_fraction) == (
        128, "dice", "cosine", 100, 0.25)
    assert parse_job_args([*BASE["infer"], "--cropSize=100", "--modelConfig=paper"]).crop_size == 100


def test_direct_access_is_not_for_training():
    assert code_of([*BASE["train"], "--accessMode=direct"]) == ec.ARG_ERROR
    assert parse_job_args([*BASE["infer"], "--accessMode=direct"]).access_mode == "direct"


# --- output names (the pilot's LFN rule) ---------------------------------------------------------------

@pytest.mark.parametrize("lfn", ["../x.h5", "/abs/x.h5", "dir/x.h5", ".hidden.h5", "-dash.h5", "x",
                                 "pred\u0430.h5",         # Cyrillic a
                                 "pred\uff0eh5",          # fullwidth full stop
                                 "pr\u0435d.h5",          # Cyrillic e
                                 "\uff50red.h5",          # fullwidth p
                                 "pred.h5\n", "pred .h5", "pred;rm.h5", "pred*.h5", "p" * 252,
                                 "a" + "\u0661" * 3])     # Arabic-Indic digits
def test_output_names_follow_the_lfn_rule(lfn):
    words = [*BASE["infer"][:-1], f"--outputPredFile={lfn}"]
    assert code_of(words) == ec.ARG_ERROR
    assert "--outputPredFile" in message_of(words) and "not a valid output file name" in message_of(words)


@pytest.mark.parametrize("lfn", ["p.h5", "pred.000042.h5", "A-b_c.9", "p" * 251, "9lives.keras"])
def test_valid_output_names_pass(lfn):
    assert parse_job_args([*BASE["infer"][:-1], f"--outputPredFile={lfn}"]).output_pred == lfn


def test_every_output_argument_is_checked():
    for arg in (a for a in ARGS if a.output):
        words = [*BASE["train"], f"--{arg.name}=../escape.h5"]
        if arg.name == "outputModelFile":
            words = [w for w in words if not w.startswith("--outputModelFile=model")]
        assert code_of(words) == ec.ARG_ERROR, arg.name
        assert f"--{arg.name}" in message_of(words)


def test_two_outputs_with_one_name():
    words = [*BASE["train"], "--outputMetricsFile=model.keras"]
    assert code_of(words) == ec.ARG_ERROR
    message = message_of(words)
    assert "--outputMetricsFile" in message and "--outputModelFile" in message and "model.keras" in message


# --- the spec itself -----------------------------------------------------------------------------------

def test_job_spec_is_frozen():
    spec = parse_job_args(BASE["infer"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.mode = "train"  # type: ignore[misc]
    assert isinstance(spec.input_events, tuple) and hash(spec) == hash(parse_job_args(BASE["infer"]))


def test_spec_fields_match_table():
    assert [f.name for f in dataclasses.fields(JobSpec)] == [a.field for a in ARGS]


def test_defaults_agree_with_the_table():
    spec = JobSpec()
    for arg in ARGS:
        assert getattr(spec, arg.field) == arg.default, arg.name


_KIND_TYPES = {STR: str, INT: int, FLOAT: float, BOOL: bool, LIST: tuple, FLOATLIST: tuple}


def test_field_types_agree_with_the_table():
    hints = typing.get_type_hints(JobSpec)
    for arg in ARGS:
        hint = hints[arg.field]
        allowed = set(typing.get_args(hint)) or {hint}
        assert _KIND_TYPES[arg.kind] in allowed, (arg.name, hint)


def test_table_is_consistent():
    assert len(BY_NAME) == len(ARGS), "an argument name is used twice"
    assert len({a.field for a in ARGS}) == len(ARGS), "a JobSpec field is used twice"
    for arg in ARGS:
        assert arg.kind in _KIND_TYPES, arg.name
        assert arg.output == (arg.name.startswith("output") and arg.name.endswith("File")), arg.name
        if arg.choices:
            assert arg.default is None or arg.default in arg.choices, arg.name
        if arg.minimum is not None and isinstance(arg.default, (int, float)) and arg.kind != BOOL:
            assert arg.minimum <= arg.default <= (arg.maximum if arg.maximum is not None else arg.default)


def test_values_have_the_types_of_the_table():
    spec = parse_job_args([*BASE["train"], "--epochs=3", "--learningRate=1", "--classWeights=1,2,3",
                           "--resume=false", "--timeLimit=60"])
    assert type(spec.epochs) is int and type(spec.learning_rate) is float
    assert spec.class_weights == (1.0, 2.0, 3.0) and all(type(w) is float for w in spec.class_weights)
    assert spec.resume is False and spec.time_limit == 60.0 and type(spec.time_limit) is float


def test_every_argument_has_help_and_appears_in_help_output():
    text = help_text()
    for arg in ARGS:
        assert arg.help.strip(), f"--{arg.name} has no help text"
        assert f"--{arg.name}" in text, arg.name
        for choice in arg.choices or ():
            assert choice in text


def test_every_exit_code_appears_in_help_output():
    text = help_text()
    for code, entry in ec.BY_CODE.items():
        assert entry.acronym in text and str(code) in text
    assert "TRF_SIG_" in text


def test_outputs_and_explicit():
    spec = parse_job_args([*BASE["train"], "--outputMetricsFile=m.json", "--epochs=5", "--loss=cce"])
    assert spec.outputs() == {"outputModelFile": "model.keras", "outputMetricsFile": "m.json"}
    explicit = spec.explicit()
    assert explicit["loss"] == "cce" and "epochs" not in explicit  # 5 is the default
    assert explicit["mode"] == "train"
