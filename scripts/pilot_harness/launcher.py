"""Our launcher for the PyPI `panda-pilot` library, which ships `pilot/` but no `pilot.py`.

It does what a pilot launcher must do before the library's workflow can run: build the argument
namespace the workflow reads, set the environment the library expects (PILOT_HOME, PILOT_USER, …),
load the queue data through the library's own information service, run `pilot.workflow.<name>.run`,
and turn its traces into the pilot's shell exit code.

Run it only through `scripts.pilot_harness.sandbox`, inside a PID and network namespace: at the
end of a job the pilot kills the orphaned processes of its user.

One difference from a stock pilot: panda-pilot 3.7.0.36 accepts trf URLs only under two public
base URLs written into `pilot.user.generic.setup.get_valid_base_urls`; 3.8 added `--baseurls` for
this. `--baseurls` here supplies that list, so the pilot downloads our trf from loopback with its own
download code.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time

PINNED_VERSION = "3.7.0.36"

# Every attribute the 3.7.0.36 library reads from its argument namespace, with that version's
# defaults; the options below override some. Names are the library's, not ours.
LIBRARY_DEFAULTS = {
    "nopilotlog": False, "workdir": "", "debug": False, "workflow": "generic", "lifetime": 324000,
    "leasetime": 3600, "queue": "", "resource": None, "site": None, "job_label": "ptest",
    "version_tag": "PR", "update_server": True, "verify_proxy": True, "verify_payload_proxy": True,
    "getjob_requests": 2, "getjob_failures": 5, "subscribe_to_msgsvc": False, "cacert": None,
    "capath": None, "url": "", "port": 25443, "queuedata_url": "", "storagedata_url": "",
    "rucio_host": "", "redirectstdout": "", "country_group": "", "working_group": "",
    "allow_other_country": False, "allow_same_user": True, "pilot_user": "generic", "pod": False,
    "harvester_workdir": "", "harvester_datadir": "", "harvester_eventstatusdump": "",
    "harvester_workerattributes": "", "harvester_submitmode": "PULL", "resource_type": "",
    "use_https": True, "cleanup": True, "use_realtime_logging": False,
    "realtime_logging_server": None, "realtime_logname": None, "input_dir": "",
    "input_destination_dir": "", "output_dir": "", "jobtype": "", "use_rucio_traces": True,
    "hpc_resource": "", "hpc_mode": "manytoone", "executor_type": "generic",
}


def _bool(text: str) -> bool:
    if text.lower() in {"true", "yes", "1"}:
        return True
    if text.lower() in {"false", "no", "0"}:
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {text!r}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The pilot options a local Harvester PUSH run needs, spelled as pilot.py spells them."""
    parser = argparse.ArgumentParser(prog="scripts.pilot_harness.launcher", description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("-q", "--queue", required=True, help="PanDA queue name (must match the local queue data)")
    add("--pilot-user", dest="pilot_user", default="generic")
    add("-w", "--workflow", default="generic", choices=["generic"])
    add("-d", "--debug", action="store_true")
    add("-z", "--noserverupdate", dest="update_server", action="store_false",
        help="write heartbeats and the final state to files instead of a server")
    add("-t", "--noproxyverification", dest="verify_proxy", action="store_false")
    add("-u", "--verifypayloadproxy", dest="verify_payload_proxy", action="store_false")
    add("-l", "--lifetime", type=int, default=LIBRARY_DEFAULTS["lifetime"])
    add("--url", default="")
    add("-p", "--port", default=LIBRARY_DEFAULTS["port"])
    add("--queuedata-url", dest="queuedata_url", default="")
    add("--storagedata-url", dest="storagedata_url", default="")
    add("--harvester-datadir", dest="harvester_datadir", default="")
    add("--harvester-workdir", dest="harvester_workdir", default="")
    add("--harvester-submit-mode", dest="harvester_submitmode", default="PULL")
    add("--output-dir", dest="output_dir", default="")
    add("--use-https", dest="use_https", type=_bool, default=True)
    add("--use-rucio-traces", dest="use_rucio_traces", type=_bool, default=True)
    add("--cleanup", type=_bool, default=True)
    add("-g", "--baseurls", default="",
        help="comma-separated base URLs the trf may be downloaded from (pilot >= 3.8 has this option)")
    parsed = parser.parse_args(argv)
    args = argparse.Namespace(**LIBRARY_DEFAULTS)
    vars(args).update(vars(parsed))
    return args


def _add_runtime_state(args: argparse.Namespace) -> None:
    """The attributes the library's threads share through the namespace."""
    from pilot.util.constants import PILOT_MULTIJOB_START_TIME, PILOT_START_TIME
    from pilot.util.harvester import is_harvester_mode
    from pilot.util.timing import add_to_pilot_timing

    args.last_heartbeat = time.time()
    args.harvester = is_harvester_mode(args)
    args.timing = {}
    args.job_status = {}
    args.graceful_stop = threading.Event()
    args.abort_job = threading.Event()
    args.job_aborted = threading.Event()
    args.retrieve_next_job = True
    args.signal = None
    args.signal_counter = 0
    args.kill_time = 0
    args.amq = None
    args.sourcedir = os.getcwd()
    args.mainworkdir = os.getcwd()
    add_to_pilot_timing("0", PILOT_START_TIME, time.time(), args)
    add_to_pilot_timing("1", PILOT_MULTIJOB_START_TIME, time.time(), args)


def _export_environment(args: argparse.Namespace) -> None:
    """The environment the library and the payload read (PILOT_HOME, PILOT_USER, server URLs, …)."""
    from pilot.util.constants import SERVER_UPDATE_NOT_DONE, get_pilot_version
    from pilot.util.https import get_panda_server

    env = os.environ
    env["PILOT_WORK_DIR"] = args.workdir
    env["PILOT_HOME"] = args.mainworkdir
    env.setdefault("PILOT_SOURCE_DIR", args.sourcedir)
    env["PILOT_USER"] = args.pilot_user
    env["PILOT_JOB_STATE"] = "startup"
    env["PILOT_VERSION"] = get_pilot_version()
    env["PILOT_WRAP_UP"] = "NORMAL"
    env["PILOT_PROXY_VERIFICATION"] = str(args.verify_proxy)
    env["PILOT_PAYLOAD_PROXY_VERIFICATION"] = str(args.verify_payload_proxy)
    env["SERVER_UPDATE"] = SERVER_UPDATE_NOT_DONE
    env["PILOT_RESOURCE_NAME"] = args.hpc_resource
    env["PILOT_USE_RUCIO_TRACES"] = str(args.use_rucio_traces)
    env["PILOT_ES_EXECUTOR_TYPE"] = args.executor_type
    if args.output_dir:
        env["PILOT_OUTPUT_DIR"] = args.output_dir
    env["PANDA_SERVER_URL"] = get_panda_server(args.url, args.port, update_server=args.update_server)
    env["QUEUEDATA_SERVER_URL"] = args.queuedata_url
    if args.storagedata_url:
        env["STORAGEDATA_SERVER_URL"] = args.storagedata_url


def _allow_base_urls(base_urls: list[str]) -> None:
    """Make the generic user plugin accept trf URLs under `base_urls` (and only those)."""
    from pilot.user.generic import setup as generic_setup

    def valid_base_urls(order=None):
        return [order] + [u for u in base_urls if u != order] if order else list(base_urls)

    generic_setup.get_valid_base_urls = valid_base_urls


def _load_queue(args: argparse.Namespace) -> int:
    """Initialise the library's information service; 0 or the pilot error code."""
    from pilot.common.errorcodes import ErrorCodes
    from pilot.common.exception import PilotException
    from pilot.info import infosys

    try:
        infosys.init(args.queue)
    except PilotException as exc:
        logging.getLogger(__name__).fatal(exc)
        return exc.get_error_code()
    if infosys.queuedata.state != "ACTIVE":
        logging.getLogger(__name__).critical("queue %s is not ACTIVE", infosys.queuedata.name)
        return ErrorCodes.PANDAQUEUENOTACTIVE
    params = infosys.queuedata.params or {}
    args.internet_protocol_version = params.get("internet_protocol_version", "IPv6")
    os.environ["PILOT_IP_VERSION"] = args.internet_protocol_version
    os.environ["PILOT_RUCIO_SITENAME"] = os.environ.get("PILOT_RUCIO_SITENAME") or infosys.queuedata.site
    os.environ["PILOT_SITENAME"] = infosys.queuedata.resource
    return 0


def _exit_code(traces) -> int:
    """The pilot's shell exit code from the workflow traces (0 when a job was processed)."""
    from pilot.util.auxiliary import shell_exit_code

    if not hasattr(traces, "pilot"):
        return shell_exit_code(int(traces or 0))
    if traces.pilot["nr_jobs"] > 1:
        return 0
    return shell_exit_code(int(traces.pilot["error_code"]))


def main(argv: list[str] | None = None) -> int:
    """Run one pilot in the current directory (its home); returns the pilot's shell exit code."""
    # PYTHONPATH only had to find this package; the payload must see the node's plain environment.
    os.environ.pop("PYTHONPATH", None)
    args = parse_args(sys.argv[1:] if argv is None else argv)

    from pilot.util.constants import get_pilot_version
    from pilot.util.harvester import kill_worker
    from pilot.util.https import https_setup
    from pilot.util.loggingsupport import establish_logging

    if get_pilot_version() != PINNED_VERSION:
        print(f"panda-pilot {get_pilot_version()} is installed; this launcher drives {PINNED_VERSION}",
              file=sys.stderr)
        return 64
    _add_runtime_state(args)
    establish_logging(debug=args.debug, nopilotlog=args.nopilotlog, redirectstdout=args.redirectstdout)
    _export_environment(args)
    if args.baseurls:
        _allow_base_urls([u.strip() for u in args.baseurls.split(",") if u.strip()])
    if args.use_https:
        https_setup(args, get_pilot_version())
    if not args.rucio_host:
        from pilot.util.config import config

        args.rucio_host = config.Rucio.host

    code = _load_queue(args)
    if code:
        from pilot.util.auxiliary import shell_exit_code

        return shell_exit_code(code)
    logging.getLogger(__name__).info("pilot arguments: %s", args)
    workflow = __import__(f"pilot.workflow.{args.workflow}", fromlist=[args.workflow])
    traces = workflow.run(args)
    if args.harvester:
        kill_worker()
    code = _exit_code(traces)
    logging.getLogger(__name__).info("pilot finished with shell exit code %s", code)
    logging.shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
