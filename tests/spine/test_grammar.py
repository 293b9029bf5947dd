"""The trf argument grammar: words as the pilot passes them → JobSpec or a clean error
(docs/design.md, 'Arguments and exit codes')."""
from __future__ import annotations

import base64
import json
import shlex

import pytest

from wrapper import exitcodes as ec
from wrapper.args.grammar import MAX_ARG_CHARS, collect, decode_jobpars, expand_compact, parse_words, split_list
from wrapper.errors import ArgumentError, TrfError
from wrapper.args.spec import parse_job_args

INFER = ["--mode=infer", "--modelFile=model.keras", "--outputPredFile=pred.000042.h5"]


def infer_with(*words: str):
    return parse_job_args([*INFER, *words])


def error_of(words) -> TrfError:
    with pytest.raises(TrfError) as caught:
        parse_job_args(list(words))
    return caught.value


# --- forms of one argument ---------------------------------------------------------------------

@pytest.mark.parametrize("words", [["--epochs=7"], ["--epochs", "7"], ["epochs=7"]])
def test_value_forms_agree(words):
    spec = infer_with("--inputEventsFile=a.h5", *words)
    assert spec.epochs == 7 and isinstance(spec.epochs, int)


def test_equals_form_keeps_everything_after_the_first_equals():
    spec = infer_with("--inputEventsFile=a.h5", "--s3Endpoint=http://127.0.0.1:8333/?a=b")
    assert spec.s3_endpoint == "http://127.0.0.1:8333/?a=b"


def test_negative_numbers_in_both_forms():
    assert infer_with("--inputEventsFile=a.h5", "--maxEvents=-1").max_events == -1
    assert infer_with("--inputEventsFile=a.h5", "--maxEvents", "-1").max_events == -1
    assert error_of([*INFER, "--inputEventsFile=a.h5", "--skipEvents", "-3"]).exit_code == ec.ARG_OUT_OF_RANGE


def test_value_starting_with_dash_needs_equals_form():
    err = error_of([*INFER, "--inputEventsFile", "-weird.h5"])
    assert err.exit_code == ec.ARG_ERROR and "'-weird.h5'" in err.message and "--name=value" in err.message
    assert infer_with("--inputEventsFile=-weird.h5").input_events == ("-weird.h5",)


# --- lists --------------------------------------------------------------------------------------

def test_list_by_commas_words_and_both_mixed():
    by_commas = infer_with("--inputEventsFile=a.h5,b.h5,c.h5")
    by_words = infer_with("--inputEventsFile", "a.h5", "b.h5", "c.h5")
    mixed = infer_with("--inputEventsFile=a.h5,b.h5", "c.h5")
    repeated = infer_with("--inputEventsFile=a.h5", "--inputEventsFile=b.h5,c.h5")
    assert by_commas.input_events == by_words.input_events == mixed.input_events \
        == repeated.input_events == ("a.h5", "b.h5", "c.h5")


def test_list_words_stop_at_the_next_argument():
    spec = parse_job_args(["--inputEventsFile", "a.h5", "b.h5", *INFER, "--epochs", "3"])
    assert spec.input_events == ("a.h5", "b.h5") and spec.epochs == 3


def test_empty_comma_items_are_dropped():
    assert infer_with("--inputEventsFile=a.h5,,b.h5,").input_events == ("a.h5", "b.h5")


def test_float_list_takes_commas_and_words():
    assert infer_with("--inputEventsFile=a", "--classWeights=1,170,15").class_weights == (1.0, 170.0, 15.0)
    assert infer_with("--inputEventsFile=a", "--classWeights", "1", "170", "15").class_weights \
        == (1.0, 170.0, 15.0)


# --- JEDI compact lists ---------------------------------------------------------------------------

def test_compact_list_expands():
    assert expand_compact("ev.[001,002].h5") == ["ev.001.h5", "ev.002.h5"]
    assert infer_with("--inputEventsFile=ev.[001,002,010].h5").input_events == \
        ("ev.001.h5", "ev.002.h5", "ev.010.h5")


def test_compact_list_inside_a_comma_list_keeps_its_commas():
    assert split_list("x.h5,ev.[001,002].h5,y.h5") == ["x.h5", "ev.001.h5", "ev.002.h5", "y.h5"]
    spec = infer_with("--inputEventsFile=data.[7,8]_sub.h5,other.h5", "more.[1,2]")
    assert spec.input_events == ("data.7_sub.h5", "data.8_sub.h5", "other.h5", "more.1", "more.2")


def test_compact_list_with_prefix_only_and_suffix_only():
    assert expand_compact("[a,b].h5") == ["a.h5", "b.h5"]
    assert expand_compact("run_[1,2]") == ["run_1", "run_2"]


def test_text_without_a_bracket_group_is_a_plain_name():
    assert expand_compact("plain.h5") == ["plain.h5"]
    assert expand_compact("s3://bucket/ev.h5") == ["s3://bucket/ev.h5"]


# --- --argJSON ------------------------------------------------------------------------------------

def write_json(path, content) -> str:
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def test_arg_json_supplies_arguments(tmp_path):
    name = write_json(tmp_path / "args.json", {"mode": "infer", "inputEventsFile": ["a.h5", "b.h5"],
                                               "--modelFile": "m.keras", "outputPredFile": "p.h5",
                                               "epochs": 9, "dryRun": True, "classWeights": [1, 2, 3]})
    spec = parse_job_args([f"--argJSON={name}"])
    assert (spec.mode, spec.input_events, spec.model_file, spec.output_pred, spec.epochs, spec.dry_run,
            spec.class_weights) == ("infer", ("a.h5", "b.h5"), "m.keras", "p.h5", 9, True, (1.0, 2.0, 3.0))
    assert spec.arg_json == name


def test_command_line_wins_over_arg_json(tmp_path):
    name = write_json(tmp_path / "args.json", {"mode": "train", "epochs": 9, "inputEventsFile": "j.h5"})
    spec = parse_job_args([*INFER, "--argJSON", name, "--epochs=2", "--inputEventsFile=c.h5"])
    assert (spec.mode, spec.epochs, spec.input_events) == ("infer", 2, ("c.h5",))


def test_arg_json_bad_json_names_file_and_line(tmp_path):
    name = write_json(tmp_path / "bad.json", '{\n  "mode": "infer",\n  "epochs": 3,,\n}\n')
    err = error_of([f"--argJSON={name}"])
    assert err.exit_code == ec.ARG_ERROR
    assert name in err.message and "line 3" in err.message


@pytest.mark.parametrize("content,kind", [("[1, 2]", "list"), ('"mode=infer"', "str"), ("3", "int"),
                                          ("null", "NoneType")])
def test_arg_json_must_be_an_object(tmp_path, content, kind):
    err = error_of([f"--argJSON={write_json(tmp_path / 'a.json', content)}"])
    assert err.exit_code == ec.ARG_ERROR and "JSON object" in err.message and kind in err.message


def test_arg_json_unknown_key_is_named_with_a_suggestion(tmp_path):
    err = error_of([f"--argJSON={write_json(tmp_path / 'a.json', {'mode': 'infer', 'epoch': 3})}"])
    assert err.exit_code == ec.ARG_ERROR and "--epoch" in err.message and "--epochs" in err.message


def test_arg_json_missing_file(tmp_path):
    err = error_of([f"--argJSON={tmp_path / 'absent.json'}"])
    assert err.exit_code == ec.ARG_ERROR and "absent.json" in err.message and "cannot be read" in err.message


def test_arg_json_unreadable_file(tmp_path):
    # a directory cannot be read as a file whoever we run as (root ignores permission bits)
    err = error_of([f"--argJSON={tmp_path}"])
    assert err.exit_code == ec.ARG_ERROR and "cannot be read" in err.message


def test_arg_json_not_utf8(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes('{"mode": "inf\xe9r"}'.encode("latin-1"))
    err = error_of([f"--argJSON={path}"])
    assert err.exit_code == ec.ARG_ERROR and "UTF-8" in err.message


def test_arg_json_cannot_nest(tmp_path):
    inner = write_json(tmp_path / "inner.json", {"mode": "infer"})
    outer = write_json(tmp_path / "outer.json", {"argJSON": inner})
    assert error_of([f"--argJSON={outer}"]).exit_code == ec.ARG_ERROR


def test_arg_json_placeholder_is_a_task_definition_error(tmp_path):
    name = write_json(tmp_path / "a.json", {"mode": "infer", "inputEventsFile": ["ok.h5", "${IN}"]})
    err = error_of([f"--argJSON={name}"])
    assert err.exit_code == ec.ARG_ERROR and "${IN}" in err.message and "task-definition" in err.message


# --- old style, base64 ----------------------------------------------------------------------------

def test_old_style_words():
    spec = parse_job_args(["mode=infer", "inputEventsFile=a.h5,b.h5", "modelFile=m.keras",
                           "outputPredFile=p.h5", "maxEvents=-1", "dryRun=true"])
    assert (spec.mode, spec.input_events, spec.max_events, spec.dry_run) == \
        ("infer", ("a.h5", "b.h5"), -1, True)


def test_old_style_word_with_unknown_name_is_a_stray_word():
    err = error_of(["--inputEventsFile=a.h5", *INFER, "colour=blue"])
    assert err.exit_code == ec.ARG_ERROR and "colour=blue" in err.message


def test_old_style_word_is_an_argument_not_a_list_item():
    spec = parse_job_args(["--inputEventsFile", "a.h5", "mode=infer", "modelFile=m", "outputPredFile=p.h5"])
    assert spec.input_events == ("a.h5",) and spec.mode == "infer"


def test_base64_job_parameters():
    jobpars = ("--mode=infer --inputEventsFile=ev.[001,002].h5 --modelFile='my model.keras' "
               "--outputPredFile=pred.000042.h5 --maxEvents 10")
    encoded = base64.b64encode(jobpars.encode()).decode()
    assert decode_jobpars([encoded]) == shlex.split(jobpars)
    spec = parse_job_args([encoded])
    assert spec == parse_job_args(shlex.split(jobpars))
    assert spec.model_file == "my model.keras" and spec.input_events == ("ev.001.h5", "ev.002.h5")


def test_base64_with_unbalanced_quote_is_an_argument_error():
    encoded = base64.b64encode(b"--mode=infer --modelFile='oops").decode()
    err = error_of([encoded])
    assert err.exit_code == ec.ARG_ERROR and "base64" in err.message


def test_a_word_that_only_looks_like_base64_is_left_alone():
    # "dryRunXY" is valid base64 but decodes to bytes that are not job parameters
    assert decode_jobpars(["dryRunXY"]) == ["dryRunXY"]
    assert error_of(["dryRunXY"]).exit_code == ec.ARG_ERROR


# --- flags ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("words,expected", [
    (["--dryRun"], True), (["--dryRun=true"], True), (["--dryRun", "true"], True), (["--dryRun=1"], True),
    (["--dryRun=yes"], True), (["--dryRun=false"], False), (["--dryRun", "False"], False),
    (["--dryRun=0"], False), (["dryRun=no"], False), ([], False)])
def test_flags_with_and_without_values(words, expected):
    assert infer_with("--inputEventsFile=a.h5", *words).dry_run is expected


def test_flag_followed_by_an_argument_is_just_the_flag():
    spec = parse_job_args(["--dryRun", *INFER, "--inputEventsFile=a.h5"])
    assert spec.dry_run is True


def test_flag_with_a_non_boolean_value():
    err = error_of([*INFER, "--inputEventsFile=a.h5", "--dryRun=maybe"])
    assert err.exit_code == ec.ARG_CONV_FAIL and "--dryRun" in err.message


def test_stray_word_after_a_flag():
    err = error_of([*INFER, "--inputEventsFile=a.h5", "--dryRun", "later"])
    assert err.exit_code == ec.ARG_ERROR and "'later'" in err.message and "--dryRun" in err.message


def test_resume_defaults_true_and_can_be_turned_off():
    assert infer_with("--inputEventsFile=a").resume is True
    assert infer_with("--inputEventsFile=a", "--resume=false").resume is False


# --- placeholders ---------------------------------------------------------------------------------

PLACEHOLDERS = ["${IN}", "${IN/L}", "${OUT}", "${SN}", "${SN/P}", "${RNDMSEED}", "${MAXEVENTS}",
                "${SKIPEVENTS}", "${FIRSTEVENT}"]


@pytest.mark.parametrize("placeholder", PLACEHOLDERS)
@pytest.mark.parametrize("where", ["inputEventsFile", "outputPredFile", "modelFile", "randomSeed",
                                   "maxEvents", "skipEvents", "epochs"])
def test_unexpanded_placeholder_is_a_task_definition_error(placeholder, where):
    values = {"inputEventsFile": "ev.h5", "outputPredFile": "pred.h5", "modelFile": "m.keras"}
    values[where] = f"prefix.{placeholder}.h5" if where in values else placeholder
    words = ["--mode=infer"] + [f"--{k}={v}" for k, v in values.items()]
    err = error_of(words)
    assert err.exit_code == ec.ARG_ERROR
    assert placeholder in err.message and f"--{where}" in err.message and "task-definition" in err.message


@pytest.mark.parametrize("words", [
    ["--inputEventsFile", "a.h5", "${IN/L}"],                       # a list word
    ["--inputEventsFile=a.h5", "--randomSeed", "${RNDMSEED}"],      # the `--k v` form
    ["--inputEventsFile=a.h5", "randomSeed=${RNDMSEED}"],           # old style
    ["--inputEventsFile=a.h5", "--dryRun", "${SN}"],                # after a flag
    ["--inputEventsFile=a.h5", "${OUT}"],                           # a stray word
    ["--inputEventsFile=ev.[${SN},002].h5"],                        # inside a compact list
    ["--inputEventsFile=a.h5", "--maxEvents=$MAXEVENTS"],           # the brace-less form
])
def test_placeholder_is_named_wherever_it_sits(words):
    err = error_of([*INFER, *words])
    assert err.exit_code == ec.ARG_ERROR and "placeholder" in err.message and "$" in err.message


def test_placeholder_wins_over_a_missing_argument():
    # the JEDI example of the spine issue: --modelFile is also missing, but the template is the bug
    err = error_of(["--mode=infer", "--inputEventsFile=ev.[001,002].h5", "--outputPredFile=pred.${SN}.h5"])
    assert err.exit_code == ec.ARG_ERROR and "${SN}" in err.message and "--outputPredFile" in err.message


def test_dollar_signs_that_are_not_placeholders_pass():
    assert infer_with("--inputEventsFile=cost$5.h5").input_events == ("cost$5.h5",)


# --- unknown, stray, repeated, enormous -----------------------------------------------------------

@pytest.mark.parametrize("typo,meant", [("--inputEventFile=a", "inputEventsFile"),
                                        ("--maxevents=3", "maxEvents"), ("--max-events=3", "maxEvents"),
                                        ("--epoch=3", "epochs"), ("--batchsize=2", "batchSize"),
                                        ("--outputPredictionFile=p.h5", "outputPredFile")])
def test_unknown_argument_with_did_you_mean(typo, meant):
    err = error_of([*INFER, "--inputEventsFile=a.h5", typo])
    assert err.exit_code == ec.ARG_ERROR
    assert f"--{typo[2:].split('=')[0]}" in err.message and f"did you mean --{meant}?" in err.message


def test_unknown_argument_without_a_close_match_points_to_help():
    err = error_of([*INFER, "--inputEventsFile=a.h5", "--zzzqqq=1"])
    assert err.exit_code == ec.ARG_ERROR and "--zzzqqq" in err.message and "--help" in err.message


@pytest.mark.parametrize("word", ["stray", "-x", "--", "-", ""])
def test_stray_words_and_single_dashes(word):
    err = error_of([*INFER, "--inputEventsFile=a.h5", "--epochs=3", word])
    assert err.exit_code == ec.ARG_ERROR and repr(word) in err.message


def test_second_value_for_a_scalar_is_a_stray_word():
    err = error_of([*INFER, "--inputEventsFile=a.h5", "--epochs", "3", "4"])
    assert err.exit_code == ec.ARG_ERROR and "'4'" in err.message


@pytest.mark.parametrize("words", [["--epochs=1", "--epochs=2"], ["--epochs=1", "epochs=2"],
                                   ["--mode=train"], ["--dryRun", "--dryRun"]])
def test_repeated_scalar_argument(words):
    err = error_of([*INFER, "--inputEventsFile=a.h5", *words])
    assert err.exit_code == ec.ARG_ERROR and "more than once" in err.message


def test_dash_h_is_help():
    assert parse_job_args(["-h"]).help is True


def test_enormous_argument_string_is_rejected_cleanly():
    names = ",".join(f"ev.{i:07d}.h5" for i in range(MAX_ARG_CHARS // 14 + 10))
    assert len(names) > MAX_ARG_CHARS
    err = error_of([*INFER, f"--inputEventsFile={names}"])
    assert err.exit_code == ec.ARG_ERROR and "--argJSON" in err.message
    assert len(err.message) < 300


def test_parse_words_keeps_raw_values():
    assert parse_words(["--inputEventsFile=a.h5,b.h5", "c.h5", "--dryRun", "--epochs", "3"]) == \
        {"inputEventsFile": ["a.h5,b.h5", "c.h5"], "dryRun": [], "epochs": ["3"]}


def test_collect_overlays_command_line_on_json(tmp_path):
    name = write_json(tmp_path / "a.json", {"epochs": 4, "loss": "focal"})
    assert collect([f"--argJSON={name}", "--epochs=5"]) == \
        {"epochs": ["5"], "loss": ["focal"], "argJSON": [name]}


def test_argument_errors_are_argument_errors():
    assert isinstance(error_of(["--bogus=1"]), ArgumentError)
