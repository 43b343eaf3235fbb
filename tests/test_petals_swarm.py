"""The real-swarm harness (tools/petals_swarm) without PETALS: process groups are torn down
on normal exit, on failure, on timeout and on Ctrl-C/SIGTERM (no process of the swarm
survives), the relay adds its delay, and client output becomes SPEC 1.11 rows."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[1] / "tools" / "petals_swarm"
sys.path.insert(0, str(TOOLS))
import procs  # noqa: E402
import swarm  # noqa: E402

FAKE = Path(__file__).resolve().parent / "fake_petals_python.py"


def marked(marker: str) -> list[int]:
    """Live processes whose environment carries ``marker`` (inherited by every descendant)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            env = Path(f"/proc/{entry}/environ").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in env and state != "Z":
            out.append(int(entry))
    return out


@pytest.fixture
def marker(monkeypatch):
    m = f"DISTALLOC_SWARM_TEST={uuid.uuid4().hex}"
    k, v = m.split("=")
    monkeypatch.setenv(k, v)
    yield m
    for pid in marked(m):   # never leave anything behind, even when a test fails
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def standin(n=2):
    return [sys.executable, str(TOOLS / "procs.py"), "spawn", str(n)]


def wait_ready(sw, name, timeout=20):
    procs.wait_for_line(sw.log_path(name), "ready", timeout, sw, name)


def test_normal_exit_and_exception_leave_no_process(tmp_path, marker):
    for fail in (False, True):
        try:
            with procs.Swarm(tmp_path / str(fail), grace_s=2) as sw:
                for i in range(3):
                    sw.start(f"p{i}", standin(2))
                for i in range(3):
                    wait_ready(sw, f"p{i}")
                assert len(marked(marker)) == 9     # 3 leaders x (1 + 2 children)
                if fail:
                    raise RuntimeError("boom")
        except RuntimeError as e:
            assert fail and str(e) == "boom"
        assert marked(marker) == []


def test_sigterm_ignoring_group_is_killed(tmp_path, marker):
    ignore = [sys.executable, "-c",
              "import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
              "k = subprocess.Popen([sys.executable, '-c', 'import signal, time; "
              "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)']);"
              "print('ready', flush=True); time.sleep(600)"]
    t0 = time.monotonic()
    with procs.Swarm(tmp_path, grace_s=1) as sw:
        sw.start("stubborn", ignore)
        wait_ready(sw, "stubborn")
        assert len(marked(marker)) == 2
    assert marked(marker) == []
    assert time.monotonic() - t0 < 20


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_and_sigterm_to_the_orchestrator(tmp_path, marker, sig):
    """The orchestrator is a separate process (as a user runs it); SIGINT as from Ctrl-C in
    a terminal, or SIGTERM, makes it tear every group down before it exits."""
    script = (f"import sys, time; sys.path.insert(0, {str(TOOLS)!r}); import procs\n"
              f"with procs.Swarm({str(tmp_path)!r}, grace_s=2) as sw:\n"
              f"    for i in range(3): sw.start(f'p{{i}}', {standin(2)!r})\n"
              f"    for i in range(3): procs.wait_for_line(sw.log_path(f'p{{i}}'), 'ready', 20)\n"
              f"    print('all up', flush=True)\n"
              f"    time.sleep(600)\n")
    orch = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert orch.stdout.readline().strip() == "all up"
    assert len(marked(marker)) == 10
    orch.send_signal(sig)
    orch.wait(timeout=30)
    assert orch.returncode != 0
    assert marked(marker) == []


def fake_env(tmp_path) -> Path:
    env = tmp_path / "fake-env"
    (env / "bin").mkdir(parents=True)
    py = env / "bin" / "python"
    shutil.copy(FAKE, py)
    py.chmod(0o755)
    return env


def spec(n_requests=3):
    return swarm.RunSpec("t", 4, [swarm.ServerSpec("s-a", 2, (0, 2), 4.0),
                                  swarm.ServerSpec("s-b", 2, None, 10.0)],
                         swarm.workload(n_requests, [8, 32], 5))


@pytest.mark.parametrize("linger", ["0", "1"])
def test_harness_run_writes_measurements_and_leaves_no_process(tmp_path, marker, monkeypatch, linger):
    """Also when the client lingers after reporting (hivemind threads): the run goes on."""
    monkeypatch.setenv("FAKE_CLIENT", "ok")
    monkeypatch.setenv("FAKE_CLIENT_LINGER", linger)
    res = swarm.run_swarm(spec(), petals_env=str(fake_env(tmp_path)), work_dir=tmp_path / "w",
                          start_timeout_s=30, client_timeout_s=30, grace_s=2, log=lambda *_: None)
    assert marked(marker) == []
    assert res.chosen_blocks == {"s-a": (0, 2), "s-b": (0, 2)}
    assert [m.servers for m in res.rows] == [("s-a", "s-b")] * 3
    assert res.rows[0].blocks == (2, 2) and res.rows[0].rtt_ms == (4.0, 10.0)
    assert [m.input_tokens for m in res.rows] == [8, 32, 8]
    assert [m.ttft_ms for m in res.rows] == [50.0, 51.0, 52.0]
    assert all(m.token_ms == 10.0 for m in res.rows)
    out = tmp_path / "m.csv"
    swarm.write_csv(out, [res])
    from distalloc.llm.calibrate import read_measurements
    assert read_measurements(out) == res.rows


@pytest.mark.parametrize("mode,error", [("fail", RuntimeError), ("hang", TimeoutError)])
def test_harness_failure_and_timeout_leave_no_process(tmp_path, marker, monkeypatch, mode, error):
    monkeypatch.setenv("FAKE_CLIENT", mode)
    monkeypatch.setenv("FAKE_IGNORE_TERM", "1")
    with pytest.raises(error):
        swarm.run_swarm(spec(), petals_env=str(fake_env(tmp_path)), work_dir=tmp_path / "w",
                        start_timeout_s=30, client_timeout_s=3, grace_s=1, log=lambda *_: None)
    assert marked(marker) == []


def test_relay_adds_its_delay_each_way(tmp_path, marker):
    """An echo server behind the relay: a round trip gains 2 x the one-way delay."""
    echo = socket.socket()
    echo.bind(("127.0.0.1", 0))
    echo.listen()
    target = echo.getsockname()[1]

    def serve():
        conn, _ = echo.accept()
        with conn:
            while data := conn.recv(1024):
                conn.sendall(data)
    threading.Thread(target=serve, daemon=True).start()
    listen = swarm._pick_base_port(0, start=32000)
    with procs.Swarm(tmp_path, grace_s=2) as sw:
        sw.start("relay", [sys.executable, str(TOOLS / "relay.py"), f"{listen}:{target}:40"])
        procs.wait_for_line(sw.log_path("relay"), "relay ready", 20, sw, "relay")
        with socket.create_connection(("127.0.0.1", listen)) as c:
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                c.sendall(b"ping")
                assert c.recv(16) == b"ping"
                times.append(time.perf_counter() - t0)
    assert marked(marker) == []
    assert 0.080 <= min(times) < 0.5
    echo.close()
