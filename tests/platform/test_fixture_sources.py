"""Every GPU fixture file names its source, and every adapted field can be traced to it.

Each machine folder of tests/platform/fixtures holds `sources.json`: for each file, whether it was
captured by this project, copied verbatim from a public log (with its URL), adapted (from what,
and each change), or is the fake's own harness. For an adapted `query.csv` every field of the
wrapper's query names where its value comes from, and the test finds that value there.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from wrapper.platform.gpus import cc_from_name

FIXTURES = Path(__file__).parent / "fixtures"
MACHINES = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())
KINDS = {"captured", "verbatim", "adapted", "harness"}


def _sources(machine: str) -> dict:
    return json.loads((FIXTURES / machine / "sources.json").read_text())


@pytest.mark.parametrize("machine", MACHINES)
def test_every_file_of_a_fixture_has_one_source_entry(machine):
    sources = _sources(machine)
    present = {p.name for p in (FIXTURES / machine).iterdir()} - {"sources.json"}
    assert set(sources["files"]) == present
    assert sources["source"] and sources["machine"]
    for name, entry in sources["files"].items():
        assert entry["kind"] in KINDS, (name, entry)
        if entry["kind"] == "verbatim":
            assert entry["source"].startswith("https://"), name
        if entry["kind"] == "captured":
            assert "captured by this project" in sources["source"] and entry["source"], name
        if entry["kind"] == "adapted":
            assert entry["from"] and entry["changes"] and all(entry["changes"]), name


def _queries(machine: str) -> list[tuple[list[str], str]]:
    """(fields of the --query-gpu, the file answering it) for each answered query of the fake."""
    out = []
    for response in json.loads((FIXTURES / machine / "responses.json").read_text()):
        argv = response["argv"]
        if isinstance(argv, list) and argv and argv[0].startswith("--query-gpu=") and response["rc"] == 0:
            out.append((argv[0].split("=", 1)[1].split(","), response["stdout"]))
    return out


ADAPTED_QUERIES = [(m, fields, answer) for m in MACHINES for fields, answer in _queries(m)
                   if _sources(m)["files"][answer]["kind"] == "adapted"]


@pytest.mark.parametrize("machine, fields, answer", ADAPTED_QUERIES,
                         ids=[f"{m}-{a}" for m, _, a in ADAPTED_QUERIES])
def test_each_adapted_query_field_is_found_where_its_source_says(machine, fields, answer):
    entry = _sources(machine)["files"][answer]
    assert list(entry["fields"]) == fields
    rows = list(csv.reader(io.StringIO((FIXTURES / machine / answer).read_text()), skipinitialspace=True))
    assert rows and all(len(row) == len(fields) for row in rows)
    for row in rows:
        values = dict(zip(fields, row))
        for field, value in values.items():
            origin = entry["fields"][field]
            if origin.startswith("NVIDIA's compute-capability table"):
                assert value == "%d.%d" % cc_from_name(values["name"]), (machine, field)
                continue
            source_file = origin.split(":", 1)[0]
            text = (FIXTURES / machine / source_file).read_text()
            if field == "mig.mode.current" and value == "Enabled":
                assert "MIG 1g" in text, origin          # MIG devices listed
            elif field == "index":
                assert f"|   {value}  " in text or f"| {value} " in text or f"GPU {value}" in text, origin
            else:
                assert value.strip("[]") in text, (machine, field, value, source_file)
