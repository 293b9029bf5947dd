"""Property-based tests of the grammar: any words give a JobSpec or a clean, allowed error."""
from __future__ import annotations

import base64
import json
import shlex
import string

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from wrapper.args.argdefs import ARGS, BOOL, INT, STR
from wrapper.args.grammar import expand_compact, split_list
from wrapper.errors import TrfError
from wrapper.args.spec import JobSpec, parse_job_args

ALLOWED = frozenset({4, 5, 7, 9, 11, 15, 16, 17})
NAMES = [a.name for a in ARGS]

# Pieces that reach deep into the grammar: option names in every form, list and compact syntax,
# placeholders, numbers at the edges, and plain unicode text (look-alikes, empty strings included).
_PIECES = st.one_of(
    st.text(max_size=10),
    st.text(alphabet="-=[],${}/.:@#0123456789 \u0430\u0661\uff0e", max_size=8),
    st.sampled_from(["-", "--", "=", "[", "]", ",", "${", "}", "${SN}", "${IN/L}", "$IN", "-1", "1e400",
                     "nan", "true", "false", "0", "2147483648", "ev.[001,002].h5", "train", "infer",
                     "evaluate", "p.h5", "s3://b/k", "https://127.0.0.1:1/x"]),
    st.sampled_from([f"--{n}" for n in NAMES] + [f"--{n}=" for n in NAMES] + [f"{n}=" for n in NAMES]),
)
WORDS = st.lists(st.lists(_PIECES, max_size=4).map("".join), max_size=10)


def outcome(words) -> object:
    """The JobSpec, or the exit code of the clean error; anything else propagates and fails."""
    try:
        return parse_job_args(words)
    except TrfError as err:
        return err.exit_code


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(WORDS)
@example([])
@example([""])
@example(["--argJSON=\x00"])
@example(["argJSON="])
@example(["--inputEventsFile=a[1,]b,[", "--"])
def test_any_words_give_a_spec_or_an_allowed_error(words):
    result = outcome(words)
    assert isinstance(result, JobSpec) or result in ALLOWED, result


@settings(max_examples=150, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.sampled_from(NAMES) | st.text(max_size=6), inner, max_size=6),
                    max_leaves=12))
def test_any_json_in_arg_json_gives_a_spec_or_an_allowed_error(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("argjson") / "args.json"
    path.write_text(json.dumps(content))
    result = outcome([f"--argJSON={path}"])
    assert isinstance(result, JobSpec) or result in ALLOWED, result


# --- round trips -----------------------------------------------------------------------------------

_LFN = st.text(alphabet=string.ascii_letters + string.digits + "._-", min_size=1, max_size=40).map(
    lambda s: "o" + s)
_SCALARS = [a for a in ARGS if a.kind in (INT, STR, BOOL) and not a.output
            and a.name not in ("mode", "modelFile", "help", "showPlatform", "argJSON", "dryRun")
            # the server's arguments are valid only together (tests/faults/test_faults_serving.py)
            and a.group != "inference"]


def _value_of(arg):
    if arg.kind == BOOL:
        return st.booleans()
    if arg.choices:
        return st.sampled_from(arg.choices)
    if arg.kind == INT:
        low = int(arg.minimum) if arg.minimum is not None else -(2**40)
        high = int(arg.maximum) if arg.maximum is not None else 2**40
        return st.integers(low, high)
    return st.text(alphabet=string.ascii_letters + string.digits + "./:_", min_size=1, max_size=20)


@st.composite
def valid_jobs(draw):
    chosen = draw(st.lists(st.sampled_from(_SCALARS), unique_by=lambda a: a.name, max_size=8))
    values = {a.name: draw(_value_of(a)) for a in chosen}
    inputs = draw(st.lists(_LFN, min_size=1, max_size=4))
    return values, inputs, draw(_LFN)


def _words(values: dict, inputs: list, pred: str, forms: list) -> list[str]:
    words = ["--mode=infer", "--modelFile=m.keras", f"--outputPredFile={pred}"]
    for (name, value), form in zip(values.items(), forms):
        text = str(value).lower() if isinstance(value, bool) else str(value)
        words += {"eq": [f"--{name}={text}"], "space": [f"--{name}", text],
                  "old": [f"{name}={text}"]}[form if not text.startswith("-") else "eq"]
    return words + ["--inputEventsFile", *inputs]


@settings(max_examples=200, deadline=None)
@given(valid_jobs(), st.lists(st.sampled_from(["eq", "space", "old"]), min_size=8, max_size=8))
def test_valid_values_survive_every_form(job, forms):
    values, inputs, pred = job
    assume(not (values.get("requireGPU") and values.get("device") == "cpu"))  # a contradiction: exit 7
    spec = parse_job_args(_words(values, inputs, pred, forms))
    by_name = {a.name: a for a in ARGS}
    for name, value in values.items():
        assert getattr(spec, by_name[name].field) == value, name
    assert spec.input_events == tuple(inputs) and spec.output_pred == pred


@settings(max_examples=200, deadline=None)
@given(WORDS)
def test_base64_of_the_words_means_the_same_as_the_words(words):
    encoded = base64.b64encode(shlex.join(words).encode()).decode()
    assume(len(encoded.rstrip("=")) >= 8)  # shorter words are never taken for base64
    plain = outcome(words)
    decoded = outcome([encoded])
    if shlex.join(words).lstrip().startswith("-") or "=" in shlex.join(words):
        assert decoded == plain
    else:
        assert decoded == 7  # not job parameters: a stray word


_NAME = st.text(alphabet=string.ascii_letters + string.digits + "._-", max_size=8)


@settings(max_examples=300, deadline=None)
@given(_NAME, st.lists(_NAME.filter(bool), min_size=1, max_size=5), _NAME)
def test_compact_lists_expand_in_order(prefix, items, suffix):
    compact = f"{prefix}[{','.join(items)}]{suffix}"
    expected = [prefix + item + suffix for item in items]
    assert expand_compact(compact) == expected
    assert split_list(f"first.h5,{compact},last.h5") == ["first.h5", *expected, "last.h5"]


# --- the real CLI --------------------------------------------------------------------------------------

# No help or platform probe (they exit 0 without a job report), and no storage outside loopback.
_CLI_PIECES = _PIECES.filter(lambda p: not any(x in p for x in ("help", "showPlatform", "-h", "://")))


# The fixed examples, each with the one code its words must give (random words may give any
# allowed code; these may not).
PINNED = {("--mode=infer", "--inputEventsFile=ev.[001,002].h5", "--outputPredFile=pred.${SN}.h5"): 7,
          ("--bogus=1",): 7, ("--mode=infer", "--epochs=x"): 4, ("--mode=learn",): 16, ("--mode=infer",): 17}


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(_CLI_PIECES, max_size=3).map("".join), max_size=6)
       .filter(lambda ws: all("\x00" not in w for w in ws)))
@example(["--mode=infer", "--inputEventsFile=ev.[001,002].h5", "--outputPredFile=pred.${SN}.h5"])
@example(["--bogus=1"])
@example(["--mode=infer", "--epochs=x"])
@example(["--mode=learn"])
@example(["--mode=infer"])
def test_the_cli_always_reports_with_an_allowed_code(tmp_path_factory, run_cli, cli_env, read_reports,
                                                     words):
    jobdir = tmp_path_factory.mktemp("job")
    result = run_cli(words, jobdir, env=cli_env(AWS_ENDPOINT_URL="http://127.0.0.1:9",
                                                S3_ENDPOINT_URL="http://127.0.0.1:9"))
    assert result.rc not in (2, 3, 255) and 0 <= result.rc < 255
    assert result.rc in ALLOWED or result.rc == 0, (result.rc, result.stderr)
    if tuple(words) in PINNED:
        assert result.rc == PINNED[tuple(words)], (words, result.rc, result.stderr)
    assert "Traceback" not in result.stderr
    report, error = read_reports(jobdir)
    assert report["exitCode"] == result.rc
    if result.rc:
        assert error == {"error_code": result.rc, "error_diag": report["exitMsg"]}
        assert len([line for line in result.stderr.splitlines() if line.strip()]) == 1
    else:
        assert error is None
    assert not result.frameworks
