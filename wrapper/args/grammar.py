"""The trf argument grammar: words as the pilot passes them → {argName: [values]} (see
docs/design.md, 'Arguments and exit codes').

Handles `--k=v`, `--k v`, several words or commas for lists, JEDI compact lists
`prefix[001,002]suffix`, old-style `k=v` words, `--argJSON=FILE`, and base64-encoded jobPars.
Types, ranges and choices are checked later, in wrapper.args.spec.
"""
from __future__ import annotations

import base64
import binascii
import difflib
import json
import re
import shlex
from pathlib import Path
from typing import Mapping, Sequence

from wrapper.args.argdefs import BOOL, BY_NAME, FLOATLIST, LIST
from wrapper.errors import ArgumentError

_PLACEHOLDER = re.compile(r"\$\{[^}]*\}|\$(IN|OUT|SN|RNDMSEED|MAXEVENTS|SKIPEVENTS|FIRSTEVENT)\b")
_OLD_STYLE = re.compile(r"^([A-Za-z][A-Za-z0-9_]*)=(.*)$", re.S)
_COMPACT = re.compile(r"^(?P<pre>[^\[\]]*)\[(?P<items>[^\[\]]+)\](?P<post>[^\[\]]*)$")
_BASE64 = re.compile(r"^[A-Za-z0-9+/]{8,}={0,2}$")
LIST_KINDS = (LIST, FLOATLIST)  # take several words and repeat
_BOOL_WORDS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
MAX_ARG_CHARS = 1 << 20


def decode_jobpars(argv: Sequence[str]) -> list[str]:
    """Words to parse: `argv` itself, or the words of a base64-encoded jobPars (encJobParams tasks)."""
    if len(argv) == 1 and _BASE64.match(argv[0]) and len(argv[0]) % 4 == 0:
        try:
            text = base64.b64decode(argv[0], validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return list(argv)
        if text.lstrip().startswith("-") or "=" in text:
            try:
                return shlex.split(text)
            except ValueError as err:
                raise ArgumentError(f"base64-encoded job parameters do not split into words: {err}; "
                                    "check the task's encJobParams") from None
    return list(argv)


def split_list(value: str) -> list[str]:
    """Split a comma list, keeping commas inside JEDI `[...]` groups, and expand compact lists."""
    return [name for item in split_top_level(value) if item for name in expand_compact(item)]


def split_top_level(text: str, *, strict: bool = False) -> list[str]:
    """The items of `text` split at the commas outside `[...]`, as written (empty ones kept): the
    one splitter for JEDI's compact lists here and Slurm's host lists (wrapper.cluster.workers).

    With `strict`, a bracket without its partner raises ValueError("an unmatched ']'") or
    ValueError("an unmatched '['"); without it, the depth count simply carries on.
    """
    items, depth, current = [], 0, []
    for char in text:
        depth += (char == "[") - (char == "]")
        if strict and depth < 0:
            raise ValueError("an unmatched ']'")
        if char == "," and depth == 0:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    if strict and depth:
        raise ValueError("an unmatched '['")
    items.append("".join(current))
    return items


def expand_compact(item: str) -> list[str]:
    """`ev.[001,002].h5` → `ev.001.h5`, `ev.002.h5`; anything else unchanged."""
    match = _COMPACT.match(item)
    if not match:
        return [item]
    return [match["pre"] + part.strip() + match["post"] for part in match["items"].split(",")]


def _unknown(name: str) -> ArgumentError:
    lowered = {n.lower(): n for n in BY_NAME}
    hint = lowered.get(name.lower().replace("-", "").replace("_", ""))
    if not hint:
        close = difflib.get_close_matches(name, list(BY_NAME), n=1, cutoff=0.75)
        hint = close[0] if close else None
    suggestion = f"; did you mean --{hint}?" if hint else "; see --help for the arguments"
    return ArgumentError(f"unknown argument --{name}{suggestion}")


def _check_placeholders(name: str, values: Sequence[str]) -> None:
    for value in values:
        found = _PLACEHOLDER.search(value)
        if found:
            raise ArgumentError(
                f"--{name} holds the placeholder {found.group(0)}, which JEDI should have replaced: "
                "a task-definition error; check the job parameter template of the task")


def parse_words(argv: Sequence[str]) -> dict[str, list[str]]:
    """Turn the command-line words into {argName: [raw values]}; flags get [] (meaning true)."""
    words = decode_jobpars(argv)
    total = sum(len(w) for w in words)
    if total > MAX_ARG_CHARS:
        raise ArgumentError(f"job parameters are {total} characters long, over the limit of "
                            f"{MAX_ARG_CHARS}; use --argJSON=FILE for long lists")
    found: dict[str, list[str]] = {}
    current: str | None = None

    def add(name: str, values: list[str], explicit: bool) -> None:
        nonlocal current
        if name not in BY_NAME:
            raise _unknown(name)
        _check_placeholders(name, values)
        if name in found and BY_NAME[name].kind not in LIST_KINDS:
            raise ArgumentError(f"--{name} is given more than once; give it once")
        found.setdefault(name, []).extend(values)
        current = None if explicit else name

    for word in words:
        if word.startswith("--"):
            body = word[2:]
            if not body:
                raise ArgumentError("a bare '--' is not an argument; remove it")
            name, eq, value = body.partition("=")
            add(name, [value] if eq else [], explicit=bool(eq) and BY_NAME.get(name) is not None
                and BY_NAME[name].kind not in LIST_KINDS)
        elif word.startswith("-") and len(word) > 1 and not _is_number(word):
            if word in ("-h",):
                add("help", [], explicit=True)
                continue
            raise ArgumentError(f"{word!r} is not an argument: arguments start with two dashes "
                                "(--name=value); a value starting with '-' needs the --name=value form")
        elif current is not None and not _is_old_style(word):
            kind = BY_NAME[current].kind
            _check_placeholders(current, [word])
            if kind == BOOL and word.lower() not in _BOOL_WORDS:
                raise ArgumentError(f"stray word {word!r} after the flag --{current}; "
                                    "flags take no value (or true/false)")
            found[current].append(word)
            if kind not in LIST_KINDS:
                current = None
        elif _is_old_style(word):
            name, value = _OLD_STYLE.match(word).groups()
            add(name, [value], explicit=True)
        else:
            _check_placeholders("(a stray word)", [word])
            raise ArgumentError(f"stray word {word!r}: not attached to any argument; "
                                "write --name=value")
    return found


def _is_number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


_LOWER_NAMES = {n.lower() for n in BY_NAME}


def _is_old_style(word: str) -> bool:
    """An old-style `name=value` word; a known name in the wrong case counts, to be reported."""
    match = _OLD_STYLE.match(word)
    return bool(match) and match.group(1).lower() in _LOWER_NAMES


def load_arg_json(path: str) -> dict[str, list[str] | object]:
    """Read `--argJSON=FILE`: a JSON object of {argName: value}, names with or without dashes."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ArgumentError(f"--argJSON file {path!r} cannot be read ({err.strerror}); "
                            "check that the pilot staged it") from None
    except ValueError as err:  # a NUL in the name, or bytes that are not UTF-8
        raise ArgumentError(f"--argJSON file {path!r} cannot be read as UTF-8 text "
                            f"({type(err).__name__}); give a JSON file") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ArgumentError(f"--argJSON file {path!r} is not valid JSON: {err.msg} at line "
                            f"{err.lineno} column {err.colno}") from None
    except RecursionError:
        raise ArgumentError(f"--argJSON file {path!r} nests too deeply; give a flat JSON object "
                            "of {argName: value}") from None
    if not isinstance(data, dict):
        raise ArgumentError(f"--argJSON file {path!r} must hold a JSON object of "
                            "{argName: value}, not a " + type(data).__name__)
    out: dict[str, object] = {}
    for key, value in data.items():
        name = str(key).lstrip("-")
        if name not in BY_NAME:
            raise _unknown(name)
        if name == "argJSON":
            raise ArgumentError(f"--argJSON file {path!r} names another argJSON; nesting is not allowed")
        values = value if isinstance(value, list) else [value]
        _check_placeholders(name, [str(v) for v in values])
        out[name] = values
    return out


def collect(argv: Sequence[str]) -> dict[str, list]:
    """All arguments: `--argJSON` contents overlaid by the command line (the command line wins)."""
    found = parse_words(argv)
    if "argJSON" in found:
        values = found["argJSON"]
        if len(values) != 1:
            raise ArgumentError("--argJSON takes one file name")
        merged: dict[str, list] = dict(load_arg_json(values[0]))
        merged.update(found)
        return merged
    return found


def raw_values(found: Mapping[str, list], name: str) -> list:
    """The raw values of one argument, lists split and compact forms expanded."""
    values = found.get(name, [])
    if BY_NAME[name].kind in LIST_KINDS:
        return [item for v in values for item in (split_list(v) if isinstance(v, str) else [v])]
    return list(values)
