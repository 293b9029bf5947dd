"""Credentials never survive redaction, whatever text carries them."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from urllib.parse import quote, quote_plus

import pytest

from tests.support.private_tmp import private_tmp
from wrapper import tokens
from wrapper.errors import InputFileError
from wrapper.redact import SECRET_ENV, redact
from wrapper.report.jobreport import JobReport
from wrapper.staging import https

JWT = ("eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJkdW5lcHJvIiwic2NvcGUiOiJzdG9yYWdlLnJlYWQ6LyJ9."
       "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6")


@pytest.fixture(autouse=True)
def no_secret_env(monkeypatch):
    for name in (*SECRET_ENV, "BEARER_TOKEN_FILE", "XDG_RUNTIME_DIR"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("text,secret,kept", [
    ("fetch https://alice:hunter2@127.0.0.1:8443/ev.h5 failed", "hunter2", "127.0.0.1:8443/ev.h5"),
    ("https://alice@127.0.0.1/ev.h5", "alice", "127.0.0.1/ev.h5"),
    ("davs://user:p%40ss@127.0.0.1:2880/dune/ev.h5", "p%40ss", "127.0.0.1:2880/dune/ev.h5"),
    ("s3://AKIAIOSFODNN7EXAMPLE:wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY@127.0.0.1:8333/b/k",
     "K7MDENG", "127.0.0.1:8333/b/k"),
    ("root://dune:secretpw@127.0.0.1//pnfs/ev.h5", "secretpw", "127.0.0.1//pnfs/ev.h5"),
])
def test_url_userinfo(text, secret, kept):
    out = redact(text)
    assert secret not in out and kept in out and "***@" in out


@pytest.mark.parametrize("param", ["X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token",
                                   "Signature", "AWSAccessKeyId", "access_token", "token", "sig"])
def test_signed_url_parameters(param):
    url = f"https://127.0.0.1:8333/b/ev.h5?X-Amz-Algorithm=AWS4-HMAC-SHA256&{param}=c2VjcmV0dmFsdWU0Mg&x=1"
    out = redact(url)
    assert "c2VjcmV0dmFsdWU0Mg" not in out
    assert out.startswith("https://127.0.0.1:8333/b/ev.h5?") and out.endswith("&x=1")


@pytest.mark.parametrize("text", ["Authorization: Bearer abc.def-ghi_jkl",
                                  "authorization: basic dXNlcjpwYXNz",
                                  "sent header Authorization: AWS4-HMAC-SHA256 Credential=AKIA/2024",
                                  "using bearer abc.def-ghi_jkl for the upload"])
def test_authorization_headers_and_bearer_tokens(text):
    out = redact(text)
    for secret in ("abc.def-ghi_jkl", "dXNlcjpwYXNz", "Credential=AKIA"):
        assert secret not in out
    assert "***" in out


@pytest.mark.parametrize("text", [JWT, f"token={JWT}", f"'{JWT}'", f"id {JWT} rejected"])
def test_jwts(text):
    out = redact(text)
    assert "eyJzdWIi" not in out and "Zm9vYmFy" not in out and "***" in out


@pytest.mark.parametrize("name", SECRET_ENV)
def test_secret_environment_values(monkeypatch, name):
    monkeypatch.setenv(name, "Zq8-very-secret-value")
    out = redact("the store said: key Zq8-very-secret-value is not valid")
    assert "Zq8-very-secret-value" not in out and out == "the store said: key *** is not valid"


def test_short_environment_values_are_not_treated_as_secrets(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "a")
    assert redact("a bad file") == "a bad file"


def test_bearer_token_file_content(monkeypatch, tmp_path):
    token = tmp_path / "bt_u0"
    token.write_text("  wlcg-token-9a8b7c6d5e  \n")
    monkeypatch.setenv("BEARER_TOKEN_FILE", str(token))
    assert redact("server rejected wlcg-token-9a8b7c6d5e") == "server rejected ***"
    monkeypatch.setenv("BEARER_TOKEN_FILE", str(tmp_path / "absent"))
    assert redact("nothing to hide") == "nothing to hide"


def test_every_discovered_token_is_redacted_and_the_first_is_sent(monkeypatch, tmp_path):
    # One token in each place the staging looks (but /tmp: see the next test); each is removed by
    # value, while requests carry the first in the WLCG discovery order.
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    (runtime / f"bt_u{os.getuid()}").write_text("wlcg-runtime-token-4d3c\n")
    (tmp_path / "token").write_text("wlcg-file-token-8e7f\n")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("BEARER_TOKEN_FILE", str(tmp_path / "token"))
    monkeypatch.setenv("BEARER_TOKEN", "wlcg-env-token-1a2b")
    places = [("BEARER_TOKEN", "wlcg-env-token-1a2b"), ("BEARER_TOKEN_FILE", "wlcg-file-token-8e7f"),
              ("XDG_RUNTIME_DIR", "wlcg-runtime-token-4d3c")]

    for i, (variable, first) in enumerate(places):
        found = [token for _, token in places[i:]]
        assert https.auth_headers("https://127.0.0.1/ev.h5") == {"Authorization": f"Bearer {first}"}
        assert redact(f"tried {' and '.join(found)}") == "tried " + " and ".join(["***"] * len(found))
        monkeypatch.delenv(variable)
    assert https.bearer_token is tokens.bearer_token    # one discovery, for sending and for redacting


_TMP_TOKEN = """
import json
from wrapper.redact import redact
from wrapper.staging.https import auth_headers
print(json.dumps([auth_headers("https://127.0.0.1/ev.h5"), redact("rejected wlcg-tmp-token-6b5a")]))
"""


def test_a_token_in_tmp_is_sent_and_redacted_in_a_private_tmp(cli_env, tmp_path):
    # /tmp/bt_u<uid> is a real user's place: the token goes into a /tmp of the command's own
    # (a private mount namespace), and the host's /tmp is left as it was.
    host = f"/tmp/bt_u{os.getuid()}"
    before = os.path.lexists(host) and os.stat(host, follow_symlinks=False)
    (tmp_path / "token").write_text("wlcg-tmp-token-6b5a\n")
    wrap = private_tmp({f"bt_u{os.getuid()}": tmp_path / "token"}, keep=[tmp_path])
    env = {k: v for k, v in cli_env().items() if k != "XDG_RUNTIME_DIR"}

    done = subprocess.run([*wrap, sys.executable, "-c", _TMP_TOKEN], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [{"Authorization": "Bearer wlcg-tmp-token-6b5a"}, "rejected ***"]
    assert (os.path.lexists(host) and os.stat(host, follow_symlinks=False)) == before


@pytest.mark.parametrize("encode", [lambda v: quote(v, safe=""), quote, quote_plus],
                         ids=["quote-all", "quote", "quote_plus"])
def test_url_encoded_secrets_are_redacted(monkeypatch, encode):
    secret = "wJalr/XUtn+FEMI K7MDENG"      # AWS secret keys hold '/' and '+'
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    assert encode(secret) != secret
    assert redact(f"GET https://127.0.0.1/b/k?key={encode(secret)}&x=1 failed") == (
        "GET https://127.0.0.1/b/k?key=***&x=1 failed")


def test_ordinary_text_is_untouched():
    text = ("input ev.001.h5 (s3://bucket/ev.001.h5 at http://127.0.0.1:8333/) is not HDF5; "
            "--maxEvents=10 --outputPredFile=pred.000042.h5, email dune@fnal.gov")
    assert redact(text) == text
    assert redact("") == ""


_NEAR_MISSES = """
from wrapper.redact import redact
text = "eyJ" * 200_000 + " " + "https://u:" + "p" * 500_000 + " " + "s3://a:b," * 100_000
print(redact(text)[:6])
"""


def test_a_megabyte_of_near_misses_does_not_hang(cli_env):
    # A backtracking pattern is quadratic here (hours for a 1 MiB job parameter string, which
    # JobReport.begin redacts); the timeout only turns such a hang into a failure.
    done = subprocess.run([sys.executable, "-c", _NEAR_MISSES], env=cli_env(), capture_output=True,
                          text=True, timeout=120)
    assert (done.returncode, done.stdout) == (0, "eyJeyJ\n"), done.stderr


def test_reports_redact_messages_and_command_lines(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "Zq8-very-secret-value")
    report = JobReport.begin(["--inputEventsFile=https://alice:hunter2@127.0.0.1/ev.h5"], tmp_path)
    report.fail(InputFileError("cannot read https://alice:hunter2@127.0.0.1/ev.h5 with key "
                               "Zq8-very-secret-value", extra=f"token {JWT}"))
    report.write()
    for path in tmp_path.iterdir():
        text = path.read_text()
        assert "hunter2" not in text and "Zq8-very" not in text and "eyJzdWIi" not in text, path.name
