#!/usr/bin/env python3
"""Turn one trained `.keras` model into a build manifest and publish both.

    python -m scripts.tools.make_manifest model.keras --dest /data/models/v3
    python -m scripts.tools.make_manifest model.keras --dest s3://dune-models/tiramisu/v3 \\
        --s3-endpoint https://s3.example.org

The manifest lists the standard builds of wrapper.builds.selection (gpu-bf16 for cc ≥ 8.0, gpu-fp16 for 7.x,
gpu-fp32 for older GPUs, cpu-bf16 where the CPU has AVX512-BF16/AMX, cpu-fp32), all pointing at the
published weights, and is what `dune-payload --buildManifest=<dest>/manifest.json` reads.

The weights are published first and the manifest last, so a manifest never names missing weights.
A local destination is written atomically; an s3:// destination goes through the wrapper's staging
upload (boto3 transfer manager, checksum, HEAD check), its endpoint from --s3-endpoint or
AWS_ENDPOINT_URL. Exit 0 on success, 7 on bad arguments, 9 when the weights cannot be used,
11 when publishing fails.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

from wrapper import exitcodes as ec
from wrapper.builds.selection import SCHEMA_VERSION, MODEL_NAME, Manifest, manifest_from_json, standard_builds
from wrapper.causes import Cause
from wrapper.errors import ArgumentError, InputFileError, OutputFileError, TrfError

MODEL_NAME_PREFIX = "fcdensenet_"   # payload.model names its Keras models fcdensenet_<config>
MANIFEST_NAME = "manifest.json"


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise ArgumentError(f"make_manifest: {message}")


def parse_args(argv):
    parser = _Parser(description="Make and publish a build manifest for one trained .keras model.")
    parser.add_argument("weights", type=Path, help="the trained model (.keras file)")
    parser.add_argument("--dest", required=True,
                        help="local directory or s3://bucket/prefix to publish weights and manifest to")
    parser.add_argument("--model-config", help="tiny | small | paper (default: read from the model file)")
    parser.add_argument("--batch-size", type=int, default=8, help="batch size of every build (default 8)")
    parser.add_argument("--model-version", help="version label (default: first 12 hex of the weights' sha256)")
    parser.add_argument("--s3-endpoint", help="S3 endpoint URL (default: AWS_ENDPOINT_URL)")
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        raise ArgumentError("make_manifest: --batch-size must be at least 1")
    return args


def model_config_of(weights: Path) -> str:
    """The config name stored in a `.keras` file (its model name), without loading a framework."""
    try:
        with zipfile.ZipFile(weights) as archive:
            config = json.loads(archive.read("config.json"))
    except FileNotFoundError:
        raise InputFileError(f"{weights}: no such file", cause=Cause.NOT_FOUND, source=str(weights)) from None
    except (zipfile.BadZipFile, KeyError, ValueError) as err:
        raise InputFileError(f"{weights} is not a .keras model file ({err})", cause=Cause.CORRUPT,
                             source=str(weights)) from None
    except OSError as err:
        raise InputFileError(f"{weights} cannot be read: {err.strerror or err}", cause=Cause.UNREADABLE,
                             source=str(weights)) from None
    name = str(config.get("config", {}).get("name", ""))
    if not name.startswith(MODEL_NAME_PREFIX):
        raise InputFileError(f"{weights} holds model {name!r}, not a DUNE FC-DenseNet "
                             f"({MODEL_NAME_PREFIX}<config>)", cause=Cause.CORRUPT, source=str(weights))
    return name[len(MODEL_NAME_PREFIX):]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def make_manifest(weights_uri: str, model_config: str, batch_size: int, model_version: str) -> Manifest:
    """The manifest of one set of weights; validated as load_manifest would."""
    manifest = Manifest(SCHEMA_VERSION, MODEL_NAME, model_version,
                        standard_builds(weights_uri, model_config, batch_size))
    return manifest_from_json(manifest.to_json(), origin="generated manifest")


def _atomic_copy(source: Path, target: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)


def publish_local(weights: Path, manifest_for, dest: Path) -> Path:
    """Copy the weights into `dest`, then write the manifest there; returns the manifest path."""
    try:
        dest.mkdir(parents=True, exist_ok=True)
        target = dest.resolve() / weights.name
        if target != weights.resolve():
            _atomic_copy(weights, target)
        manifest_path = dest / MANIFEST_NAME
        staged = manifest_path.with_name(f".{MANIFEST_NAME}.part")
        staged.write_text(json.dumps(manifest_for(str(target)).to_json(), indent=1) + "\n")
        os.replace(staged, manifest_path)
    except OSError as err:
        raise OutputFileError(f"cannot publish to {dest}: {err.strerror or err}") from None
    return manifest_path


def publish_s3(weights: Path, manifest_for, dest: str, endpoint) -> str:
    """Upload the weights under `dest`, then the manifest, through wrapper.staging; its URI."""
    from wrapper.staging.options import StagingOptions
    from wrapper.staging.upload import publish_outputs

    prefix = dest.rstrip("/")
    with tempfile.TemporaryDirectory(prefix="make_manifest.") as workdir:
        options = StagingOptions(workdir=Path(workdir), s3_endpoint=endpoint, output_prefix=prefix + "/")
        staged_weights = Path(workdir) / weights.name
        try:
            os.link(weights, staged_weights)
        except OSError:
            shutil.copyfile(weights, staged_weights)
        publish_outputs([staged_weights], options)
        staged_manifest = Path(workdir) / MANIFEST_NAME
        staged_manifest.write_text(
            json.dumps(manifest_for(f"{prefix}/{weights.name}").to_json(), indent=1) + "\n")
        publish_outputs([staged_manifest], options)
    return f"{prefix}/{MANIFEST_NAME}"


def main(argv: list[str]) -> int:
    """Publish the weights and their manifest; the trf's exit code for what went wrong."""
    try:
        args = parse_args(argv)
        stored = model_config_of(args.weights)
        if args.model_config and args.model_config != stored:
            raise InputFileError(f"{args.weights} holds config {stored!r}, not --model-config "
                                 f"{args.model_config!r}", cause=Cause.CORRUPT, source=str(args.weights))
        version = args.model_version or sha256_of(args.weights)[:12]

        def manifest_for(uri: str) -> Manifest:
            return make_manifest(uri, stored, args.batch_size, version)

        if args.dest.startswith("s3://"):
            where = publish_s3(args.weights, manifest_for, args.dest,
                               args.s3_endpoint or os.environ.get("AWS_ENDPOINT_URL"))
        elif "://" in args.dest:
            raise ArgumentError(f"make_manifest: --dest must be a directory or s3:// prefix, not {args.dest!r}")
        else:
            where = publish_local(args.weights, manifest_for, Path(args.dest))
    except TrfError as err:
        print(f"make_manifest: {err.message}", file=sys.stderr)
        return ec.safe(err.exit_code)
    print(f"published {where} (model config {stored}, version {version}, "
          f"builds: {', '.join(b.name for b in standard_builds(None, stored, args.batch_size))})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
