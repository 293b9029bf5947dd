"""What a served network looks like on an inference server: the tensors the client and the
server agree on (docs/design.md, 'Inference as a service').

The client (payload.remote) sends a batch of images and reads back probabilities; the server
(payload.serving) answers every request with the provenance of the network that ran it, so a
predictions file written through a server names the same things as one written in process.
"""
from __future__ import annotations

# Inputs: float32 [batch, 320, 320, 1], the event images exactly as the event reader yields them.
IMAGES = "images"
# Outputs: float32 [batch, 320, 320, 3] softmax probabilities (background, beam, cosmic) ...
PROBABILITIES = "probabilities"
# ... and BYTES [batch, 1]: one UTF-8 JSON object per event, the same for every event of a model:
# {"network", "model_file", "build", "precision", "code_version", "device"}. A model served by
# someone else's Triton may lack it; the client then records only the server, model and version.
PROVENANCE = "provenance"
PROVENANCE_KEYS = ("network", "model_file", "build", "precision", "code_version", "device")
# The gRPC metadata key a server started with a token (dune-payload-serve --tokenFile) reads it
# from, the value being the token alone: Triton prefixes restricted gRPC header names with
# `triton-grpc-protocol-`, and PyTriton's restriction key is `triton-access-token`. A call
# without it is refused with UNAVAILABLE and "This protocol is restricted, expecting header ...".
TOKEN_HEADER = "triton-grpc-protocol-triton-access-token"


def parse_server_url(url: str) -> tuple[str, bool]:
    """("HOST:PORT", TLS?) of a grpc:// or grpcs:// URL; ValueError naming what is wrong."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("grpc", "grpcs"):
        raise ValueError(f"{url!r} is not a grpc://HOST:PORT or grpcs://HOST:PORT address")
    address = rest.rstrip("/")
    host, colon, port = address.rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536 or "/" in address:
        raise ValueError(f"{url!r} needs a host and a port, e.g. grpc://127.0.0.1:8001")
    return address, scheme.lower() == "grpcs"


def parse_model(text: str) -> tuple[str, str]:
    """(name, version) of NAME or NAME:VERSION (version "" : the one the server has ready)."""
    name, _, version = text.partition(":")
    if not name or (version and not version.isdigit()):
        raise ValueError(f"{text!r} is not a model NAME or NAME:VERSION (a version is a number)")
    return name, version
