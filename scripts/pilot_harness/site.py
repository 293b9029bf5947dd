"""The local site the pilot sees: queue data, storage data and a pilot configuration that names
no host but 127.0.0.1.

Queue and storage data follow the reference files in shared/pilot-local (one real pilot3 run):
a queue with the `mv` copytool for stage-in, stage-out and log, and one storage endpoint.
"""
from __future__ import annotations

import configparser
import json
import re
from pathlib import Path
from typing import Mapping, Optional

STORAGE_ENDPOINT = "LOCAL_DISK"

# Where a setting must name a server, it names a closed loopback port (discard, 9): a stray request
# fails at once on loopback instead of leaving the machine.
UNUSED_SERVER = "127.0.0.1:9"

_URL = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<host>[^/:;\s]+)(?::\d+)?")


def queue_data(queue: str, *, params: Optional[Mapping] = None, maxtime: int = 0) -> dict:
    """Queue data (schedconfig) for `queue`: `mv` everywhere, no CVMFS, no containers."""
    return {
        "nickname": queue, "panda_resource": queue, "atlas_site": "LOCAL", "state": "ACTIVE",
        "status": "online", "type": "production", "catchall": "no_token_renewal",
        "copytools": {"mv": {"setup": ""}},
        "acopytools": {"pr": ["mv"], "pw": ["mv"], "pl": ["mv"], "read_lan": ["mv"], "write_lan": ["mv"]},
        "astorages": {}, "aprotocols": {}, "maxtime": maxtime, "maxwdir": 20000, "maxrss": 4000,
        "corecount": 1, "timefloor": 0, "is_cvmfs": False, "container_type": "",
        "container_options": "", "direct_access_lan": False, "direct_access_wan": False,
        "params": dict(params or {}),
    }


def storage_data() -> dict:
    """The one storage endpoint the job's ddmEndPointIn/Out name."""
    return {STORAGE_ENDPOINT: {"name": STORAGE_ENDPOINT, "site": "LOCAL", "type": "LOCALGROUPDISK",
                               "is_deterministic": True, "state": "ACTIVE", "arprotocols": {},
                               "rprotocols": {}, "resource": {}}}


def write_queue_files(home: Path, queue: str, data: Mapping) -> None:
    """queuedata.json and cric_pandaqueues.json in the pilot home, where the pilot looks first."""
    (home / "queuedata.json").write_text(json.dumps(data, indent=1))
    (home / "cric_pandaqueues.json").write_text(json.dumps({queue: data}, indent=1))


def loopback_config(library_default: Path, overrides: Mapping[str, Mapping[str, str]]) -> str:
    """The library's default.cfg with every server rewritten to loopback, plus `overrides`.

    Raises ValueError if any setting still names another host.
    """
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(library_default)
    for section in parser.sections():
        for key, value in parser.items(section):
            parser.set(section, key, _URL.sub(lambda m: f"{m['scheme']}://{UNUSED_SERVER}", value))
    parser.set("Message_broker", "url", UNUSED_SERVER.split(":")[0])
    for section, values in overrides.items():
        for key, value in values.items():
            parser.set(section, key, value)
    check_loopback_only(parser)
    lines = []
    for section in parser.sections():
        lines.append(f"[{section}]")
        lines.extend(f"{key}: {value}" for key, value in parser.items(section))
        lines.append("")
    return "\n".join(lines)


def check_loopback_only(parser: configparser.ConfigParser) -> None:
    """ValueError naming the first setting whose URL host is not 127.0.0.1."""
    for section in parser.sections():
        for key, value in parser.items(section):
            for match in _URL.finditer(value):
                if match["host"] != "127.0.0.1":
                    raise ValueError(f"pilot setting [{section}] {key} names host {match['host']}")
    if parser.get("Message_broker", "url") != "127.0.0.1":
        raise ValueError("pilot setting [Message_broker] url is not loopback")
