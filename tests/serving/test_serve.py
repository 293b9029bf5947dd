"""`dune-payload-serve` on a real tritonserver: what it listens on, what it answers, who it refuses.

Two servers for the whole module (a plain one, and one with TLS and a token); the failure cases
exit before a server starts.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from payload.serving_contract import IMAGES, PROBABILITIES, PROVENANCE, PROVENANCE_KEYS, TOKEN_HEADER
from tests.support.samples import ROOT
from wrapper import exitcodes as ec

EVENTS = 2                 # the tiny model's event file holds 2 events
TOKEN = "dune-test-token-0123456789abcdef"
LOOPBACK = {"127.0.0.1", "::ffff:127.0.0.1"}


@pytest.fixture(scope="module")
def plain(triton_server):
    return triton_server("--device", "cpu", "--precision", "float32", "--maxBatchSize", "4")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "server.crt", folder / "server.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


@pytest.fixture(scope="module")
def secured(triton_server, certificate, tmp_path_factory):
    token_file = tmp_path_factory.mktemp("token") / "token"
    token_file.write_text(TOKEN + "\n")
    cert, key = certificate
    return triton_server("--device", "cpu", "--precision", "float32", "--tlsCert", str(cert),
                         "--tlsKey", str(key), "--tokenFile", str(token_file))


@pytest.fixture(scope="module")
def reference(tiny_model, tmp_path_factory) -> dict:
    """The events and the probabilities the same model file gives in process (payload's own
    prediction_model, float32), computed in a child of the main venv."""
    out = tmp_path_factory.mktemp("reference") / "reference.npz"
    script = ("import sys, numpy as np; from pathlib import Path; from payload.config import InferConfig; "
              "from payload.events import iter_batches; from payload.runners import prediction_model; "
              "images = np.concatenate([b.images for b in iter_batches([Path(sys.argv[1])], 8)]); "
              "model = prediction_model(Path(sys.argv[2]), InferConfig(precision='float32')); "
              "np.savez(sys.argv[3], images=images, probabilities=np.asarray(model.predict_on_batch(images)))")
    subprocess.run([sys.executable, "-c", script, str(tiny_model.events), str(tiny_model.model), str(out)],
                   cwd=ROOT, check=True, capture_output=True, timeout=300)
    return dict(np.load(out))


def _client(server, **kwargs) -> grpcclient.InferenceServerClient:
    return grpcclient.InferenceServerClient(server.url.removeprefix("grpc://"), **kwargs)


def _infer(client, model: str, images: np.ndarray, headers=None):
    tensor = grpcclient.InferInput(IMAGES, list(images.shape), "FP32")
    tensor.set_data_from_numpy(images)
    wanted = [grpcclient.InferRequestedOutput(PROBABILITIES), grpcclient.InferRequestedOutput(PROVENANCE)]
    return client.infer(model, [tensor], outputs=wanted, headers=headers)


def _descendants(pid: int) -> set[int]:
    children = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        children.update(int(c) for c in text)
    return {pid}.union(*(_descendants(c) for c in children)) if children else {pid}


def _listening(pids: set[int]) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN state that one of `pids` holds."""
    inodes = set()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = fd.readlink().as_posix()
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:
                address, port = local.split(":")
                found.add((_address(address, width), int(port, 16)))
    return found


def _address(hex_address: str, width: int) -> str:
    import ipaddress

    raw = bytes.fromhex(hex_address)
    # /proc/net/tcp* print each 32-bit word in host (little-endian) order
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    address = ipaddress.ip_address(words)
    if width == 32 and address.ipv4_mapped:
        return f"::ffff:{address.ipv4_mapped}"
    return str(address)


def test_ready_line_names_model_build_and_url(plain):
    assert re.fullmatch(r"dune-payload-serve: serving dune-tiny version 1 \(network tiny, build [\w-]+, cpu, "
                        rf"float32\) on grpc://127\.0\.0\.1:{plain.port}", plain.ready_line)
    assert plain.model == "dune-tiny"


def test_listens_on_loopback_only(plain):
    sockets = _listening(_descendants(plain.pid))
    assert {port for _, port in sockets} == {plain.port, plain.http_port}   # metrics off by default
    assert {address for address, _ in sockets} <= LOOPBACK


def test_metadata_follows_the_contract(plain):
    client = _client(plain)
    assert client.is_model_ready("dune-tiny", "1")
    meta = client.get_model_metadata("dune-tiny", as_json=True)
    assert meta["inputs"] == [{"name": IMAGES, "datatype": "FP32", "shape": ["-1", "320", "320", "1"]}]
    assert meta["outputs"] == [{"name": PROBABILITIES, "datatype": "FP32", "shape": ["-1", "320", "320", "3"]},
                               {"name": PROVENANCE, "datatype": "BYTES", "shape": ["-1", "1"]}]
    config = client.get_model_config("dune-tiny", as_json=True)["config"]
    assert config["max_batch_size"] == 4


def test_probabilities_match_the_model_in_process(plain, reference, tiny_model):
    images = reference["images"]
    assert len(images) == EVENTS
    answer = _infer(_client(plain), "dune-tiny", images)
    probabilities = answer.as_numpy(PROBABILITIES)
    assert probabilities.dtype == np.float32 and probabilities.shape == (EVENTS, 320, 320, 3)
    np.testing.assert_allclose(probabilities, reference["probabilities"], atol=1e-5, rtol=0)
    tags = answer.as_numpy(PROVENANCE)
    assert tags.shape == (EVENTS, 1)
    provenance = [json.loads(tag[0]) for tag in tags]
    assert set(provenance[0]) == set(PROVENANCE_KEYS) and provenance[0] == provenance[1]
    assert provenance[0]["network"] == "tiny" and provenance[0]["model_file"] == tiny_model.model.name
    assert provenance[0]["precision"] == "float32" and provenance[0]["device"] == "cpu"


def test_token_is_required_for_inference_but_not_for_health(secured, certificate, reference):
    client = _client(secured, ssl=True, root_certificates=str(certificate[0]))
    assert client.is_server_ready()
    images = reference["images"][:1]
    for headers in (None, {TOKEN_HEADER: "wrong"}, {"authorization": f"Bearer {TOKEN}"}):
        with pytest.raises(InferenceServerException, match="restricted"):
            _infer(client, "dune-tiny", images, headers)
    with pytest.raises(InferenceServerException, match="restricted"):
        client.get_model_metadata("dune-tiny")
    answer = _infer(client, "dune-tiny", images, {TOKEN_HEADER: TOKEN})
    np.testing.assert_allclose(answer.as_numpy(PROBABILITIES), reference["probabilities"][:1], atol=1e-5, rtol=0)


def test_tls_server_refuses_a_plaintext_client(secured):
    with pytest.raises(InferenceServerException):
        _client(secured).is_server_ready()


def test_the_token_is_not_in_the_log(secured):
    assert TOKEN not in secured.log.read_text(errors="replace")


def _serve(serve_python, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(serve_python), "-m", "wrapper.serve", *argv], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("content", [None, b"not a keras file"], ids=["missing", "corrupt"])
def test_bad_model_file_exits_9_with_one_clear_line(serve_python, tmp_path, content):
    model = tmp_path / "broken.keras"
    if content is not None:
        model.write_bytes(content)
    done = _serve(serve_python, "--modelFile", str(model), "--device", "cpu")
    assert done.returncode == ec.INPUT_FILE_ERROR
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("dune-payload-serve: error: ") and "broken.keras" in last
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_port_in_use_exits_69_naming_it(serve_python, tiny_model):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = _serve(serve_python, "--modelFile", str(tiny_model.model), "--device", "cpu",
                      "--grpcPort", str(port), "--httpPort", "0")
        assert done.returncode == ec.ARG_ERROR   # port 0 is refused before anything starts
        done = _serve(serve_python, "--modelFile", str(tiny_model.model), "--device", "cpu",
                      "--grpcPort", str(port))
    assert done.returncode == ec.EXEC_SETUP_FAIL
    last = done.stderr.strip().splitlines()[-1]
    assert f"127.0.0.1:{port} (--grpcPort)" in last and "Traceback" not in done.stderr


@pytest.mark.parametrize("argv, code", [(["--help"], ec.OK), (["--grpcPort", "x"], ec.ARG_ERROR),
                                        (["--tlsCert", "c.pem", "--modelFile", "m.keras"], ec.ARG_ERROR)])
def test_help_and_argument_errors_import_no_framework(serve_python, argv, code):
    script = ("import sys\nfrom wrapper import serve\ntry:\n    code = serve.main(sys.argv[1:])\n"
              "except SystemExit as stop:\n    code = stop.code\n"
              "loaded = [m for m in ('tensorflow', 'keras', 'pytriton', 'numpy') if m in sys.modules]\n"
              "print('LOADED', loaded, 'CODE', code)")
    done = subprocess.run([str(serve_python), "-c", script, *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.strip().splitlines()[-1] == f"LOADED [] CODE {code}"


def test_sigterm_stops_it_cleanly(plain):
    assert plain.stop() == 0
