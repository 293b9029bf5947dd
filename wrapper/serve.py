"""`dune-payload-serve`: serve one trained model on a Triton inference server for CPU grid jobs.

    dune-payload-serve --modelFile s3://models/dune.model.v3.keras --address 10.1.2.3 --grpcPort 8001
    python -m wrapper.serve --modelFile model.keras --tokenFile /etc/dune/serve.token

The model file comes from any source a job takes it from (wrapper.staging), and the build, device
and precision are chosen by the code that chooses them for a job (wrapper.flow's
`detect_and_select_build`), so a server runs the network exactly as a job on its node would. When
the model is ready it prints one line to stdout; SIGTERM or SIGINT stops it (exit 0). Failures end
with one line naming the problem and what to do, and an exit code of wrapper.exitcodes (9: the
model file, 69: the server's setup). `--help` and argument errors import no framework.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence, TextIO

from wrapper import exitcodes as ec
from wrapper.args.argdefs import BY_NAME, MODEL_CONFIGS
from wrapper.errors import ArgumentError, PayloadCrashed, SetupError, TrfError

PROG = "dune-payload-serve"
# Quiet the framework's C++ logging before anything can import it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class _Parser(argparse.ArgumentParser):
    """argparse that raises ArgumentError (exit 7) instead of exiting 2, which the table forbids."""

    def error(self, message: str):
        raise ArgumentError(f"{message} (see {PROG} --help)")


def _port(text: str) -> int:
    try:
        port = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (1-65535)")
    return port


def _count(minimum: int):
    def convert(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below the minimum {minimum}")
        return value
    return convert


def parser() -> argparse.ArgumentParser:
    """The command's options."""
    p = _Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    model = p.add_argument_group("model")
    model.add_argument("--modelFile", metavar="URI", help="the trained model (.keras): a local path, "
                       "s3://, https://, or reference:NAME, as a job's --modelFile")
    model.add_argument("--modelConfig", choices=MODEL_CONFIGS, help="the network (default: the model file's)")
    model.add_argument("--modelName", help="the name clients ask for (default: dune-<network>)")
    model.add_argument("--modelVersion", type=_count(1), default=1, help="its version (default: 1)")
    build = p.add_argument_group("platform and build (as for a job)")
    for name in ("buildManifest", "build", "device", "precision"):
        arg = BY_NAME[name]
        build.add_argument(f"--{name}", choices=arg.choices, default=arg.default, help=arg.help)
    batching = p.add_argument_group("batching")
    batching.add_argument("--maxBatchSize", type=_count(1), default=16,
                          help="the most events the network runs at once (default: 16)")
    batching.add_argument("--maxQueueDelayUs", type=_count(0), default=0, metavar="US",
                          help="how long a request may wait for others to fill a batch (default: 0)")
    batching.add_argument("--maxQueueSize", type=_count(0), default=0,
                          help="requests queued at most; more are refused as UNAVAILABLE (default 0: unbounded)")
    net = p.add_argument_group("network")
    net.add_argument("--address", default="127.0.0.1",
                     help="the address every listener binds (default: 127.0.0.1; a site gives its own)")
    net.add_argument("--grpcPort", type=_port, default=8001, help="gRPC port, what jobs use (default: 8001)")
    net.add_argument("--httpPort", type=_port, default=8000, help="HTTP port (default: 8000)")
    net.add_argument("--metricsPort", type=_port, help="Prometheus metrics port (default: no metrics)")
    net.add_argument("--tlsCert", type=Path, metavar="PEM", help="gRPC TLS: the server certificate")
    net.add_argument("--tlsKey", type=Path, metavar="PEM", help="gRPC TLS: its private key")
    net.add_argument("--tokenFile", type=Path, metavar="FILE",
                     help="a file holding the token clients must send (inference, metadata and model "
                          "config are refused without it; health stays open)")
    return p


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """The validated options; raises ArgumentError (exit 7)."""
    args = parser().parse_args(argv)
    if not args.modelFile and not args.buildManifest:
        raise ArgumentError("--modelFile is missing: give the model to serve (or a --buildManifest "
                            "naming its weights)")
    if (args.tlsCert is None) != (args.tlsKey is None):
        raise ArgumentError("--tlsCert and --tlsKey go together: give both or neither")
    ports = [p for p in (args.grpcPort, args.httpPort, args.metricsPort) if p is not None]
    if len(set(ports)) != len(ports):
        raise ArgumentError("--grpcPort, --httpPort and --metricsPort must differ")
    return args


def serve_config(args: argparse.Namespace, workdir: Path):
    """The payload's ServeConfig: the model staged into `workdir` and the build a job on this node
    would get. Raises TrfError (9 for the model file, 69 for no usable build)."""
    from payload.api import ServeConfig
    from wrapper.args.spec import JobSpec
    from wrapper.flow import detect_and_select_build, staging_options
    from wrapper.staging import resolve_one

    spec = JobSpec(mode="infer", model_file=args.modelFile, model_config=args.modelConfig,
                   build_manifest=args.buildManifest, build=args.build, device=args.device,
                   precision=args.precision, batch_size=args.maxBatchSize)
    _, selection = detect_and_select_build(spec, workdir)
    build = selection.build
    weights = build.weights_uri if spec.build_manifest else spec.model_file
    model = resolve_one(weights, staging_options(spec, workdir)).local_path
    return ServeConfig(
        model_path=Path(model), model_config=build.model_config, model_name=args.modelName,
        model_version=args.modelVersion,
        precision=build.precision if spec.precision == "auto" else spec.precision,
        gpus=len(selection.gpus), build=build.name, device=selection.device,
        max_batch_size=args.maxBatchSize, max_queue_delay_us=args.maxQueueDelayUs,
        max_queue_size=args.maxQueueSize, address=args.address, grpc_port=args.grpcPort,
        http_port=args.httpPort, metrics_port=args.metricsPort, tls_cert=args.tlsCert,
        tls_key=args.tlsKey, token_file=args.tokenFile)


def ready_line(served, config) -> str:
    """The one line a site (or a test) waits for."""
    return (f"{PROG}: serving {served.name} version {served.version} (network {served.network}, "
            f"build {config.build}, {config.device}, {config.precision}) on {served.grpc_url}")


def run(config, stop: list, ready_to: TextIO) -> None:
    """Serve until a signal lands in `stop`, the ready line to `ready_to`; raises TrfError (the
    server's setup, or its death)."""
    from payload import api
    from wrapper.step.request import payload_errors

    try:
        with payload_errors(), api.serving(config) as served:
            print(ready_line(served, config), file=ready_to, flush=True)
            # A signal ends the sleep at once; waking each second notices a tritonserver that died.
            while not stop:
                time.sleep(1.0)
                if not stop and not served.alive():
                    raise PayloadCrashed("tritonserver exited while serving; see its log above and restart")
    except api.ServerStartError as err:
        raise SetupError(str(err)) from None
    except ImportError as err:
        raise SetupError(f"the framework cannot be imported ({err}); run {PROG} in the serve venv "
                         "(python -m scripts.tools.serve_venv) or the project's container") from None


def _stop_on_signals() -> list:
    """A list that holds the first stop signal once one arrives. The handler only appends: one
    that took a lock (threading.Event.set) could deadlock on the lock its own thread holds."""
    received: list = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda number, _frame: received.append(number))
    return received


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Serve until stopped; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    ready_to = sys.stdout
    try:
        args = parse(argv)
        stop = _stop_on_signals()
        # stdout holds the ready line alone: PyTriton prints tritonserver's log there, so
        # everything printed from here on goes to stderr.
        sys.stdout = sys.stderr
        with tempfile.TemporaryDirectory(prefix="dune-serve-") as workdir:
            config = serve_config(args, Path(workdir))
            if not stop:
                run(config, stop, ready_to)
    except TrfError as err:
        print(f"{PROG}: error: {err.message}", file=sys.stderr, flush=True)
        return ec.safe(err.exit_code)
    finally:
        sys.stdout = ready_to
    return ec.OK


def cli() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    cli()
