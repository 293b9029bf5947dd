"""The real PanDA stack for tests/panda (marker `panda_server`: `pytest -m panda_server tests`).

PostgreSQL with the upstream schema, panda-server 1.0.4 and JEDI from PyPI (scripts/panda_local),
all on 127.0.0.1. The session's campaign (campaign.py) starts in the background as soon as
collection ends, when any test here is selected, so its pilots overlap the other test areas;
each test waits for it. The stack stops, by PID, when the session ends.
"""
from __future__ import annotations

import threading
from concurrent.futures import Future
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
_CAMPAIGN: dict = {}
_LOCK = threading.Lock()


def pytest_configure(config):
    config.addinivalue_line("markers", "panda_server: runs against the real PanDA server and JEDI "
                                       "(tests/panda: scripts/panda_local)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if Path(str(item.fspath)).resolve().is_relative_to(HERE):
            item.add_marker(pytest.mark.panda_server)


def _start(base: Path) -> Future:
    from tests.panda import campaign

    future: Future = Future()

    def work():
        try:
            future.set_result(campaign.run(base))
        except BaseException as exc:  # the tests that wait for it report it
            future.set_exception(exc)

    threading.Thread(target=work, name="panda-campaign", daemon=True).start()
    return future


def pytest_collection_finish(session):
    """Start the campaign now, in the background, if a test here was selected."""
    if session.config.option.collectonly:
        return
    if any(Path(str(item.fspath)).resolve().is_relative_to(HERE) for item in session.items):
        with _LOCK:
            if "future" not in _CAMPAIGN:
                _CAMPAIGN["future"] = _start(session.config._tmp_path_factory.mktemp("panda-campaign"))


@pytest.fixture(scope="session")
def campaign(request):
    """The finished campaign (campaign.Campaign); its stack stops when the session ends."""
    from scripts.panda_local import stack

    result = _CAMPAIGN["future"].result()
    request.addfinalizer(lambda: stack.stop(result.stack))
    return result
