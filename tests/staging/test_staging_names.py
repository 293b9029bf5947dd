"""Names, checksums and the pilot's PoolFileCatalog.xml: the rules that keep writes in the job directory."""
from __future__ import annotations

from pathlib import Path

import pytest

from wrapper.errors import InputFileError
from wrapper.staging import stage_inputs
from wrapper.staging.catalog import parse_catalog
from wrapper.staging.names import hostile_reason, is_lfn, part_path
from wrapper.staging.verify import Expected, split_checksum

CATALOG = ('<?xml version="1.0" encoding="UTF-8" standalone="no" ?>\n'
           '<!DOCTYPE POOLFILECATALOG SYSTEM "InMemory">\n<POOLFILECATALOG>\n'
           '<File ID="6f1c"><physical><pfn filetype="ROOT_All" name="s3://events/run1/a.h5"/></physical>'
           '<logical/></File>\n'
           '<File ID="7a2d"><physical><pfn filetype="ROOT_All" name="root://eos//x/b.h5"/>'
           '<pfn filetype="ROOT_All" name="davs://se.example:2880/x/b.h5"/></physical>'
           '<logical><lfn name="b.h5"/></logical>'
           '<metadata att_name="fsize" att_value="1234"/><metadata att_name="adler32" att_value="0a0b0c0d"/>'
           '</File>\n</POOLFILECATALOG>\n')


@pytest.mark.parametrize("name, ok", [("ev.h5", True), ("a1", True), ("EV_001-x.h5", True),
                                      ("a", False), (".hidden", False), ("-x.h5", False), ("a/b.h5", False),
                                      ("..", False), ("ev.h5\n", False), ("ev\u2215x.h5", False),
                                      ("e" * 251, True), ("e" * 252, False)])
def test_lfn_rule(name, ok):
    assert is_lfn(name) is ok


@pytest.mark.parametrize("key, reason", [("a/b.h5", ""), ("../b.h5", "'..'"), ("a/./b.h5", "'.'"),
                                         ("/etc/b.h5", "absolute"), ("a\x00b.h5", "NUL"),
                                         ("a\\..\\b.h5", "backslash"), ("a\uff0fb.h5", "non-ASCII")])
def test_hostile_keys(key, reason):
    assert (reason in hostile_reason(key)) if reason else hostile_reason(key) == ""


def test_part_names_fit_the_filesystem():
    assert part_path(Path("/j/ev.h5")) == Path("/j/ev.h5.part")
    long = part_path(Path("/j") / ("e" * 251))
    assert len(long.name) + 9 <= 255 and long.name.endswith(".part")


def test_checksum_suffix():
    assert split_checksum("s3://b/ev.h5#ad:1A2B3C4D") == ("s3://b/ev.h5", Expected(adler32="1a2b3c4d"))
    assert split_checksum("ev.h5#adler32:abc") == ("ev.h5", Expected(adler32="00000abc"))
    assert split_checksum("https://h/ev.h5#frag") == ("https://h/ev.h5#frag", Expected())


def test_catalog_entries_by_lfn():
    entries = parse_catalog(CATALOG.encode())
    assert set(entries) == {"a.h5", "b.h5"}
    assert entries["a.h5"].pfns == ("s3://events/run1/a.h5",) and entries["a.h5"].guid == "6f1c"
    assert entries["b.h5"].expected == Expected(size=1234, adler32="0a0b0c0d")


@pytest.mark.parametrize("text", [
    '<!DOCTYPE POOLFILECATALOG SYSTEM "file:///etc/passwd"><POOLFILECATALOG/>',
    '<!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]><POOLFILECATALOG>&b;</POOLFILECATALOG>',
    '<!DOCTYPE POOLFILECATALOG SYSTEM "InMemory" [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>',
    '<POOLFILECATALOG><File ID="x"><physical>',
])
def test_catalog_refuses_entities_foreign_doctypes_and_bad_xml(text):
    with pytest.raises(InputFileError) as info:
        parse_catalog(text.encode())
    assert info.value.cause == "corrupt" and info.value.exit_code == 9


def test_pfc_skips_unreadable_turls_and_maps_davs(clean_env, http_server, workdir, options):
    http_server.add("/x/b.h5", b"b" * 1234)
    webdav = http_server.url("").replace("http://", "dav://")
    (workdir / "PoolFileCatalog.xml").write_text(CATALOG.replace("davs://se.example:2880", webdav))
    with pytest.raises(InputFileError) as info:
        stage_inputs(["b.h5"], options)
    assert info.value.cause == "checksum-mismatch" and "(pfc)" in info.value.message
    assert [r.path for r in http_server.records] == ["/x/b.h5", "/x/b.h5"]


def test_hostile_catalogue_fails_staging(clean_env, workdir, options):
    (workdir / "PoolFileCatalog.xml").write_text('<!DOCTYPE x [<!ENTITY e "boom">]><POOLFILECATALOG/>')
    with pytest.raises(InputFileError) as info:
        stage_inputs(["ev.h5"], options)
    assert info.value.cause == "corrupt"


def test_missing_lfn_says_where_it_looked(clean_env, workdir, options):
    with pytest.raises(InputFileError) as info:
        stage_inputs(["ev.h5"], options)
    assert info.value.cause == "not-found"
    assert "not in the job directory, not in PoolFileCatalog.xml" in info.value.message
