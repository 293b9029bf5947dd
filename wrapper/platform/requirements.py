"""The third-party packages a job needs, checked before it does any work.

The single-file trf (dune-payload.pyz) carries only `wrapper/` and `payload/`: numpy, h5py, the
framework and the transfer libraries come from the node's environment or container. A node that
lacks one must fail at once with exit 69 naming the package, not with an ImportError traceback
halfway through staging. Checking imports no framework (`find_spec` only); numpy and h5py, which
every run imports anyway, are imported so that a broken build (h5py against another numpy) is
caught here too.
"""
from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from typing import Iterable, Optional

from wrapper.errors import SetupError


@dataclass(frozen=True)
class Requirement:
    """A module the job imports, the distribution that provides it, and what it is needed for."""

    module: str
    distribution: str
    purpose: str
    import_now: bool = False


NUMPY = Requirement("numpy", "numpy", "arrays", import_now=True)
H5PY = Requirement("h5py", "h5py", "HDF5 event and prediction files", import_now=True)
KERAS = Requirement("keras", "keras", "the network")
BACKENDS = {
    "tensorflow": Requirement("tensorflow", "tensorflow (or tensorflow-cpu)", "the Keras backend"),
    "jax": Requirement("jax", "jax", "the Keras backend"),
    "torch": Requirement("torch", "torch", "the Keras backend"),
}
BOTO3 = Requirement("boto3", "boto3", "s3:// transfers")
REQUESTS = Requirement("requests", "requests", "https:// transfers")
MATPLOTLIB = Requirement("matplotlib", "matplotlib", "plots")
TRITON = Requirement("tritonclient.grpc", "tritonclient[grpc]", "the inference server's client")

FRAMEWORK_MODES = ("train", "infer", "evaluate")


def requirements(mode: Optional[str], *, uris: Iterable[str] = (), plots: bool = False,
                 backend: Optional[str] = None, server: bool = False,
                 fallback: bool = False) -> tuple[Requirement, ...]:
    """What a job in `mode` needs: numpy and h5py always; Keras and its backend to run the
    network, unless an inference server runs it (`server`: tritonclient instead; both with a
    local `fallback`); boto3 / requests when an input or output URI uses s3:// / https://;
    matplotlib for plots. `backend` defaults to the one Keras will load (KERAS_BACKEND or keras.json)."""
    needed = [NUMPY, H5PY]
    if server:
        needed.append(TRITON)
    if mode in FRAMEWORK_MODES and (fallback or not server):
        from wrapper.platform.framework import keras_backend

        needed += [KERAS, BACKENDS.get(backend or keras_backend(), BACKENDS["tensorflow"])]
    schemes = {uri.split("://", 1)[0].lower() for uri in uris if "://" in uri}
    if "s3" in schemes:
        needed.append(BOTO3)
    if schemes & {"http", "https"}:
        needed.append(REQUESTS)
    if plots:
        needed.append(MATPLOTLIB)
    return tuple(needed)


def installed(req: Requirement) -> bool:
    """Whether `req`'s module can be found (nothing is imported)."""
    try:
        return importlib.util.find_spec(req.module) is not None
    except (ImportError, ValueError):
        return False


def import_problem(req: Requirement) -> Optional[str]:
    """Why an installed `req` that every run imports anyway cannot be imported, or None."""
    if not req.import_now:
        return None
    try:
        importlib.import_module(req.module)
    except Exception as err:  # a broken build raises whatever its C extension raises
        return f"{type(err).__name__}: {str(err)[:80]}"
    return None


def check_requirements(mode: Optional[str], *, uris: Iterable[str] = (), plots: bool = False,
                       server: bool = False, fallback: bool = False) -> None:
    """Raise SetupError (exit 69) naming every missing or broken package the job needs
    (`requirements` says which).

    The message leads with the package names: the PanDA server keeps only its start.
    """
    needed = requirements(mode, uris=uris, plots=plots, server=server, fallback=fallback)
    missing = [req for req in needed if not installed(req)]
    broken = [f"{req.module} cannot be imported ({problem})" for req in needed
              if req not in missing and (problem := import_problem(req))]
    if not (missing or broken):
        return
    parts = []
    if missing:
        parts.append("missing Python packages: " + ", ".join(req.module for req in missing)
                     + " (" + ", ".join(f"{req.module} for {req.purpose}" for req in missing) + ")")
    parts.extend(broken)
    install = " ".join(req.distribution.split()[0] for req in missing)
    hint = f"pip install {install} or use" if install else "repair the environment or use"
    raise SetupError("; ".join(parts), extra=f"{hint} the project's container")
