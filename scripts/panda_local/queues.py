"""The test PanDA queues: rows of `schedconfig_json`, as CRIC would publish them for a DUNE site.

panda-server builds its site list (SiteMapper, JEDI's brokerage) from these rows alone when there is
no CRIC: the row's `nickname` is the queue name the brokers use (entity_module.getSiteInfo).
Both queues are Harvester PUSH queues of one site (`atlas_site`, the site the pilot reports as
`queuedata.site`), one on CPU nodes and one on GPU nodes.

What keeps GPU work off the CPU queue is the one queue attribute GenJobBroker (the broker of every
non-ATLAS VO) reads for this: the task's `processingType` against the queue's
`allowed_processing` / `excluded_processing` (catchall words, `|`-separated; GenJobBroker.py, the
"allowed/excluded processing type check"). scripts/jedi/task.py gives GPU tasks the processing types in
its `GPU_PROCESSING_TYPES` (NVIDIA's; AMD and Intel tasks get their own); the GPU queue, an NVIDIA
one, takes only those, the CPU queue refuses every vendor's (`ALL_GPU_PROCESSING_TYPES`).

`allow_no_pilot`: GenJobBroker skips queues with no pilot requests in the last 3 hours (the
SiteData table the add_sub daemon fills from acquire_jobs). A fresh test server has had none;
a production queue served by Harvester has them all the time.
"""
from __future__ import annotations

import json

from scripts.jedi.task import ALL_GPU_PROCESSING_TYPES, GPU_PROCESSING_TYPES

SITE = "DUNE_TEST"
CPU_QUEUE = "DUNE_TEST_CPU"
GPU_QUEUE = "DUNE_TEST_GPU"


def queue(name: str, *, gpu: bool, site: str = SITE) -> dict:
    """One queue's CRIC record: Harvester PUSH, the `mv` copytool, generic VO settings."""
    rule = "allowed_processing" if gpu else "excluded_processing"
    types = GPU_PROCESSING_TYPES if gpu else ALL_GPU_PROCESSING_TYPES
    return {
        "nickname": name, "panda_resource": name, "siteid": name, "atlas_site": site,
        "site": site, "cloud": "NA", "vo_name": "dune", "state": "ACTIVE", "status": "online",
        "type": "unified", "pilot_manager": "Harvester", "harvester": "dune-local-harvester",
        "catchall": f"allow_no_pilot,{rule}={'|'.join(types)}",
        "corecount": 0, "maxrss": 16000, "maxtime": 0, "mintime": 0, "maxwdir": 20000,
        "maxinputsize": 10000, "is_cvmfs": False, "container_type": "", "container_options": "",
        "copytools": {"mv": {"setup": ""}}, "acopytools": {"pr": ["mv"], "pw": ["mv"], "pl": ["mv"], "read_lan": ["mv"], "write_lan": ["mv"]},
        "astorages": {}, "aprotocols": {}, "direct_access_lan": False, "direct_access_wan": False,
        "params": {},
    }


def standard() -> dict:
    """{queue name: record} of the two test queues."""
    return {CPU_QUEUE: queue(CPU_QUEUE, gpu=False), GPU_QUEUE: queue(GPU_QUEUE, gpu=True)}


def insert_sql(records: dict) -> str:
    """The SQL that publishes `records` in schedconfig_json (what CRIC's configurator does)."""
    rows = ", ".join(f"({_literal(name)}, {_literal(json.dumps(data))}::json, now())"
                     for name, data in records.items())
    return f"INSERT INTO doma_panda.schedconfig_json (panda_queue, data, last_update) VALUES {rows}"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
