"""The server-mode supervisor stops every child and grandchild, even ones that ignore SIGTERM."""
import io
import threading
import time

import psutil
import pytest

from tests.support import still_running
from webapp.core.supervisor import Supervisor, read_procfile


def test_procfile_parsing(tmp_path):
    path = tmp_path / "Procfile"
    path.write_text("# comment\n\nweb: daphne app\nworker-gpu: celery worker --pool solo\n")
    assert read_procfile(path) == {"web": "daphne app", "worker-gpu": "celery worker --pool solo"}
    path.write_text("web daphne\n")
    with pytest.raises(ValueError, match="Procfile:1: expected 'name: command'"):
        read_procfile(path)


def test_the_project_procfile_has_the_documented_processes():
    from tests.support import ROOT
    entries = read_procfile(ROOT / "Procfile")
    assert set(entries) == {"release", "web", "worker-verify", "worker-gpu", "worker-chat", "beat"}
    assert "-Q verify" in entries["worker-verify"] and "--pool solo" in entries["worker-gpu"]
    assert "-Q chat" in entries["worker-chat"] and "--pool solo" in entries["worker-chat"]


def test_stop_kills_stubborn_children_and_their_grandchildren():
    out = io.StringIO()
    supervisor = Supervisor(
        {"polite": "sleep 300", "stubborn": "sh -c 'trap \"\" TERM; sleep 300 & sleep 300 & wait'"},
        env={"PATH": "/usr/bin:/bin"}, grace_s=1.0, out=out,
    )
    supervisor.start()
    time.sleep(0.5)
    tree = [p for c in supervisor.children.values() for p in [psutil.Process(c.pid), *psutil.Process(c.pid).children(True)]]
    assert len(tree) >= 4
    runner = threading.Thread(target=supervisor.wait)
    runner.start()
    started = time.monotonic()
    supervisor.request_stop()
    runner.join(10)
    assert not runner.is_alive()
    assert time.monotonic() - started < 5
    psutil.wait_procs(tree, timeout=2)  # SIGKILL is sent; the kernel finishes them a moment later
    assert still_running(tree) == []
    assert "did not stop within 1 s; killing it" in out.getvalue()


def test_a_crashing_child_stops_the_rest_with_its_code():
    supervisor = Supervisor({"crash": "sh -c 'exit 3'", "steady": "sleep 300"}, env={"PATH": "/usr/bin:/bin"},
                            grace_s=2.0, out=io.StringIO())
    supervisor.start()
    assert supervisor.wait() == 3
    assert all(child.poll() is not None for child in supervisor.children.values())
