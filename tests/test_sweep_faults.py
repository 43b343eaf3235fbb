"""Sweeps under faults (issues 14 and 16): failing points recorded with a status (SPEC 4.1),
bounded work, resume keys, output checks before any work, crashed workers, orphans, locks,
untrusted files."""
import json
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from distalloc import ValidationError
from distalloc.cli import main
from distalloc.queueing import ForkJoin, approximate
from distalloc.sweep import load_sweep, run_sweep

from cli_helpers import UNSTABLE_SWEEP as UNSTABLE, one_error_line, rows, write_file

HERE = Path(__file__).parent
ENV = {**os.environ, "PYTHONPATH": str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def test_unstable_points_get_a_status_and_the_sweep_completes(tmp_path, capsys):
    cfg = write_file(tmp_path, UNSTABLE)
    out = tmp_path / "u.csv"
    assert main(["sweep", str(cfg), "--out", str(out), "--n-jobs", "1"]) == 0
    assert "5 written (2 failed: see the status column)" in capsys.readouterr().out
    r = {x["rate"]: x for x in rows(out)}
    assert list(rows(out)[0])[:3] == ["rate", "seed", "method"]
    assert sorted(r) == ["1.0", "1.5", "1.9", "2.0", "2.5"]
    for rate in ("1.0", "1.5", "1.9"):
        want = approximate(ForkJoin(4, 2, float(rate))).mean_jobs
        assert r[rate]["status"] == "ok" and float(r[rate]["mean_jobs"]) == pytest.approx(want)
        assert r[rate]["servers"] == "4" and r[rate]["needed"] == "2"   # fixed columns
    for rate in ("2.0", "2.5"):
        assert "unstable" in r[rate]["status"].lower() and "\n" not in r[rate]["status"]
        assert r[rate]["mean_jobs"] == "" and r[rate]["energy_per_job"] == ""
    # a rerun retries nothing; --retry-failed recomputes the two failed rows only
    assert main(["sweep", str(cfg), "--out", str(out), "--n-jobs", "1", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["skipped"] == 5 and s["written"] == 0
    assert main(["sweep", str(cfg), "--out", str(out), "--n-jobs", "1", "--retry-failed",
                 "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert (s["retried"], s["skipped"], s["written"], s["failed"]) == (2, 3, 2, 2)
    assert sorted(x["rate"] for x in rows(out)) == ["1.0", "1.5", "1.9", "2.0", "2.5"]


def test_fail_fast_stops_at_the_first_failure_and_keeps_the_rest(tmp_path, capsys):
    cfg = write_file(tmp_path, UNSTABLE)
    out = tmp_path / "u.csv"
    assert main(["sweep", str(cfg), "--out", str(out), "--n-jobs", "1", "--fail-fast"]) == 2
    one_error_line(capsys, "--fail-fast), rate=2.0, seed=0:")
    assert sorted(x["rate"] for x in rows(out)) == ["1.0", "1.5", "1.9"]
    assert all(x["status"] == "ok" for x in rows(out))


def test_a_raising_user_target_is_one_row_not_a_stop(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    cfg = load_sweep({"sweep": {"target": "sweep_helpers:fail_on", "seeds": 2},
                      "fixed": {"bad": 2}, "grid": {"x": [1, 2, 3]}})
    s = run_sweep(cfg, tmp_path / "f.csv", n_jobs=1, chunk_size=6, progress=False)
    assert (s["written"], s["failed"]) == (6, 2)
    got = {(x["x"], x["seed"]): x["status"] for x in rows(tmp_path / "f.csv")}
    assert got[("2", "0")] == got[("2", "1")] == "ValueError: cannot do 2"
    assert got[("1", "0")] == got[("3", "1")] == "ok"


# ------------------------------------------------------------------------------------------
# bounded work and options
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seeds, needle", [
    ("10000000000000000000", "(64 bits)"),
    ("1000000000000000000", "more than --max-tasks 10000000"),
])
def test_absurd_seed_counts_are_refused_at_once(tmp_path, capsys, seeds, needle):
    cfg = write_file(tmp_path, UNSTABLE.replace("[fixed]", f"seeds = {seeds}\n[fixed]"))
    t0 = time.perf_counter()
    assert main(["sweep", str(cfg), "--out", str(tmp_path / "o.csv")]) == 2
    assert time.perf_counter() - t0 < 5
    one_error_line(capsys, needle)
    assert not (tmp_path / "o.csv").exists()


def test_large_sweeps_stream_their_tasks(tmp_path):
    """2 * 10^6 tasks allowed by max_tasks: the task list is never built, and a sweep whose
    every row is already written walks the stream without computing."""
    cfg = load_sweep({"sweep": {"target": "queue.approx", "seeds": 1_000_000},
                      "fixed": {"servers": 4, "needed": 2}, "grid": {"rate": [0.5, 1.0]}})
    assert cfg.num_tasks == 2_000_000
    it = cfg.iter_tasks()
    assert next(it) == ({"rate": 0.5}, 0) and next(it) == ({"rate": 0.5}, 1)
    with pytest.raises(ValidationError, match="more than --max-tasks 1000000"):
        run_sweep(cfg, tmp_path / "o.csv", max_tasks=1_000_000)
    assert not (tmp_path / "o.csv").exists()


@pytest.mark.parametrize("flags, needle", [
    (["--chunk-size", "-1"], "'chunk_size' parameter must be an int in [1, inf). Got -1"),
    (["--chunk-size", "0"], "'chunk_size'"),
    (["--n-jobs", "0"], "'n_jobs' parameter must be an int in [1, inf). Got 0"),
    (["--n-jobs", "128"], "unless --oversubscribe"),
    (["--n-jobs", "100000", "--oversubscribe"], "even with --oversubscribe"),
    (["--max-tasks", "0"], "'max_tasks'"),
    (["--scheduler", "garbage"], "must be a Dask scheduler address"),
    (["--scheduler", "foo://x:1"], "must be a Dask scheduler address"),
    (["--scheduler", "tcp://127.0.0.1:1"], "Cannot reach the Dask scheduler"),
    (["--scheduler", "tcp://127.0.0.1:1", "--n-jobs", "1"], "'n_jobs' option is for local"),
])
def test_bad_options_one_line_nothing_written(tmp_path, capsys, flags, needle):
    cfg = write_file(tmp_path, UNSTABLE)
    out = tmp_path / "o.csv"
    assert main(["sweep", str(cfg), "--out", str(out), *flags]) == 2
    one_error_line(capsys, needle)
    assert not out.exists() and not (tmp_path / "o.csv.lock").exists()


def test_oversubscribe_allows_more_workers_than_cores(tmp_path):
    from distalloc._sweep_engines import usable_cores
    cfg = load_sweep({"sweep": {"target": "queue.approx"}, "fixed": {"servers": 4, "needed": 2},
                      "grid": {"rate": [0.5, 1.0, 1.5]}})
    s = run_sweep(cfg, tmp_path / "o.csv", n_jobs=usable_cores() + 1, oversubscribe=True,
                  chunk_size=1, progress=False)
    assert s["written"] == 3


# ------------------------------------------------------------------------------------------
# resume keys
# ------------------------------------------------------------------------------------------
def test_a_changed_fixed_value_is_not_already_done(tmp_path):
    out = tmp_path / "r.csv"
    base = {"sweep": {"target": "queue.approx"}, "grid": {"rate": [0.5, 1.0]}}
    a = load_sweep({**base, "fixed": {"servers": 4, "needed": 2}})
    b = load_sweep({**base, "fixed": {"servers": 4, "needed": 3}})
    c = load_sweep({**base, "fixed": {"servers": 4, "needed": 2, "idle_power": 0.5}})
    assert run_sweep(a, out, n_jobs=1, progress=False)["written"] == 2
    assert run_sweep(b, out, n_jobs=1, progress=False)["written"] == 2
    assert run_sweep(a, out, n_jobs=1, progress=False)["written"] == 0
    assert run_sweep(c, out, n_jobs=1, progress=False)["written"] == 2
    assert run_sweep(c, out, n_jobs=1, progress=False)["written"] == 0
    # a fixed value the sweep no longer sets (back to the default) is not "done" either
    assert run_sweep(a, out, n_jobs=1, progress=False)["written"] == 0
    r = rows(out)
    assert len(r) == 6
    got = {(x["rate"], x["needed"], x["idle_power"]): float(x["mean_jobs"]) for x in r}
    assert got[("1.0", "3", "")] == pytest.approx(approximate(ForkJoin(4, 3, 1.0)).mean_jobs)
    assert got[("1.0", "2", "")] == pytest.approx(approximate(ForkJoin(4, 2, 1.0)).mean_jobs)
    want = approximate(ForkJoin(4, 2, 1.0, idle_power=0.5)).mean_power
    assert float(next(x for x in r if x["idle_power"] == "0.5" and x["rate"] == "1.0")
                 ["mean_power"]) == pytest.approx(want)
    with pytest.raises(ValidationError, match="Missing parameter 'needed'"):
        load_sweep({**base, "fixed": {"servers": 4}})


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_mixed_int_and_float_grid_resumes_without_duplicates(tmp_path, suffix):
    if suffix == ".parquet":
        pq = pytest.importorskip("pyarrow.parquet", reason="Parquet output needs pyarrow")
    cfg = load_sweep({"sweep": {"target": "queue.approx", "seeds": 2},
                      "fixed": {"servers": 4, "needed": 2},
                      "grid": {"rate": [1, 1.5], "idle_power": [0, 0.25]}})
    out = tmp_path / f"m{suffix}"
    assert run_sweep(cfg, out, n_jobs=1, chunk_size=1, progress=False)["written"] == 8
    again = run_sweep(cfg, out, n_jobs=1, chunk_size=3, progress=False)
    assert (again["written"], again["skipped"]) == (0, 8)
    if suffix == ".parquet":
        table = pq.read_table(out)
        assert table.num_rows == 8
        assert sorted({r["rate"] for r in table.to_pylist()}) == [1.0, 1.5]
    else:
        assert len(rows(out)) == 8


def test_repeated_grid_values_are_refused():
    with pytest.raises(ValidationError, match="lists the value 1.0 twice"):
        load_sweep({"sweep": {"target": "queue.approx"}, "fixed": {"servers": 4, "needed": 2},
                    "grid": {"rate": [1, 1.0]}})


def test_parquet_first_chunk_failing_then_metrics(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet", reason="Parquet output needs pyarrow")
    cfg = load_sweep({"sweep": {"target": "queue.approx"}, "fixed": {"servers": 4, "needed": 2},
                      "grid": {"rate": [2.5, 1.0, 0.5]}})
    out = tmp_path / "p.parquet"
    s = run_sweep(cfg, out, n_jobs=1, chunk_size=1, progress=False)
    assert (s["written"], s["failed"]) == (3, 1)
    table = {r["rate"]: r for r in pq.read_table(out).to_pylist()}
    assert table[2.5]["mean_jobs"] is None and "unstable" in table[2.5]["status"].lower()
    assert table[1.0]["status"] == "ok"
    assert table[1.0]["mean_jobs"] == pytest.approx(approximate(ForkJoin(4, 2, 1.0)).mean_jobs)
    assert run_sweep(cfg, out, n_jobs=1, progress=False)["written"] == 0
    s = run_sweep(cfg, out, n_jobs=1, progress=False, retry_failed=True)
    assert (s["retried"], s["written"]) == (1, 1) and pq.read_table(out).num_rows == 3


# ------------------------------------------------------------------------------------------
# checks before any work
# ------------------------------------------------------------------------------------------
def _readonly_dir(tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o500)
    try:
        (d / "probe").touch()
    except OSError:
        return d
    (d / "probe").unlink()
    d.chmod(0o700)
    if Path("/sys").is_dir():     # root ignores permissions; sysfs refuses new files
        return Path("/sys")
    pytest.skip("no read-only folder available")


@pytest.mark.parametrize("case, needle", [
    ("folder.csv", "is a folder"),
    ("missing/o.csv", "does not exist"),
    ("readonly", "Cannot"),
    ("/dev/null", "must end in .csv or .parquet"),
    ("devnull.csv", "not a regular file"),
    ("file.parquet", "exists and is not a folder"),
    ("o.txt", "must end in .csv or .parquet"),
    ("other.csv", "is not the output of this sweep (no 'x' column)"),
    ("latin1.csv", "not a UTF-8 CSV file"),
])
def test_bad_output_paths_fail_before_any_task(tmp_path, capsys, case, needle):
    marker = tmp_path / "ran"
    cfg = write_file(tmp_path, f"""
[sweep]
target = "sweep_helpers:record_call"
[fixed]
marker = "{marker}"
[grid]
x = [1, 2]
""")
    (tmp_path / "folder.csv").mkdir()
    (tmp_path / "file.parquet").write_text("x")
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    (tmp_path / "latin1.csv").write_bytes(
        "x,seed,status,sweep_target\n\xe9,0,ok,sweep_helpers:record_call\n".encode("latin-1"))
    if case == "devnull.csv":
        os.symlink("/dev/null", tmp_path / "devnull.csv")
    out = (_readonly_dir(tmp_path) / "o.csv") if case == "readonly" else (
        Path(case) if case.startswith("/") else tmp_path / case)
    sys.path.insert(0, str(HERE))
    try:
        assert main(["sweep", str(cfg), "--out", str(out)]) == 2
    finally:
        sys.path.remove(str(HERE))
    one_error_line(capsys, needle)
    assert not marker.exists()
    assert (tmp_path / "other.csv").read_text() == "a,b\n1,2\n"


@pytest.mark.parametrize("text, needle", [
    ("[sweep]\ntarget = 'queue.approx'\n[fixed]\nservers = 4\nneeded = 2\n",
     "Missing parameter 'rate' for target queue.approx"),
    ("[sweep]\ntarget = 'sweep_helpers:slow_square'\n", "Missing parameter 'x'"),
    ("[sweep]\ntarget = 'os:system'\n[fixed]\ncommand = 'touch MARKER'\n",
     "must take a 'seed' keyword argument"),
    ("[sweep]\ntarget = 'os:getcwd'\n", "must take a 'seed'"),
    ("[sweep]\ntarget = 'os.path'\n", "Unknown sweep target"),
    ("[sweep]\ntarget = 'x; import os:f'\n", "Unknown sweep target"),
    ("[sweep]\ntarget = 'math:pi'\n", "is not callable"),
    ("[sweep]\ntarget = 'queue.approx'\n[fixed]\nservers = 4\nneeded = 2\nwhen = 2024-01-01\n"
     "[grid]\nrate = [1.0]\n", "must be a number, string, boolean, list or table"),
    ("[sweep]\ntarget = 'queue.approx'\n[grid]\nstatus = ['a']\n", "'status' is set by the"),
    ("[sweep]\ntarget = 'queue.approx'\nseeds = 2.0\n", "'seeds' parameter of sweep must be an int"),
])
def test_targets_are_checked_before_they_run(tmp_path, capsys, text, needle):
    marker = tmp_path / "marker"
    cfg = write_file(tmp_path, text.replace("MARKER", str(marker)))
    sys.path.insert(0, str(HERE))
    try:
        assert main(["sweep", str(cfg), "--out", str(tmp_path / "o.csv")]) == 2
    finally:
        sys.path.remove(str(HERE))
    one_error_line(capsys, needle)
    assert not marker.exists() and not (tmp_path / "o.csv").exists()


def test_unreadable_sweep_files(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"[sweep]\ntarget = '\xff\xfe'\n")
    assert main(["sweep", str(bad)]) == 2
    one_error_line(capsys, "is not UTF-8 text")
    assert main(["sweep", str(tmp_path)]) == 2
    one_error_line(capsys, "is a folder")
    (tmp_path / "t.toml").write_text("[sweep\n")
    assert main(["sweep", str(tmp_path / "t.toml")]) == 2
    one_error_line(capsys, "is not valid TOML")


def test_sweep_help_says_a_sweep_file_is_code(capsys):
    assert main(["sweep", "--help"]) == 0
    assert "A sweep file is code" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------
# crashes, kills, locks
# ------------------------------------------------------------------------------------------
def test_a_task_that_crashes_its_worker_is_recorded_and_the_rest_finish(tmp_path, capsys):
    cfg = write_file(tmp_path, """
[sweep]
target = "sweep_helpers:crash_on"
seeds = 2
[fixed]
bad = 3
[grid]
x = [1, 2, 3, 4, 5]
""")
    out = tmp_path / "c.csv"
    sys.path.insert(0, str(HERE))
    try:
        code = main(["sweep", str(cfg), "--out", str(out), "--n-jobs", "2", "--chunk-size", "4",
                     "--json"])
    finally:
        sys.path.remove(str(HERE))
    cap = capsys.readouterr()
    assert code == 1
    s = json.loads(cap.out)
    assert (s["written"], s["crashed"], s["failed"], s["restarts"]) == (10, 2, 2, 4)
    err = cap.err.strip().splitlines()
    assert len(err) == 1 and "2 task(s) of sweep_helpers:crash_on were not computed" in err[0]
    r = {(x["x"], x["seed"]): x for x in rows(out)}
    assert len(r) == 10
    for seed in ("0", "1"):
        assert "SIGSEGV" in r[("3", seed)]["status"] and r[("3", seed)]["value"] == ""
    assert all(int(x["value"]) == 10 * int(x["x"]) + int(x["seed"])
               for k, x in r.items() if k[0] != "3")


def test_dask_killed_worker_is_recorded_and_the_rest_finish(tmp_path):
    distributed = pytest.importorskip("distributed", reason="Dask sweeps need distributed")
    import dask
    cfg = load_sweep({"sweep": {"target": "sweep_helpers:crash_on"}, "fixed": {"bad": 3},
                      "grid": {"x": [1, 2, 3, 4]}})
    out = tmp_path / "k.csv"
    # the scheduler gives up on a task after one worker death (default: 3), and sends a worker
    # one task at a time so that no innocent task is queued on the worker that dies
    with dask.config.set({"distributed.scheduler.allowed-failures": 0,
                          "distributed.scheduler.worker-saturation": 1.0}):
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      host="127.0.0.1", dashboard_address=None) as cluster:
            s = run_sweep(cfg, out, scheduler=cluster.scheduler_address, chunk_size=2,
                          progress=False)
    assert (s["written"], s["crashed"]) == (4, 1)
    r = {x["x"]: x for x in rows(out)}
    assert "KilledWorker" in r["3"]["status"] and r["3"]["value"] == ""
    assert [r[x]["value"] for x in ("1", "2", "4")] == ["10", "20", "40"]


def _wait_for(cond, timeout=60.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def _slow_sweep(tmp_path, n=40, delay=0.3):
    return write_file(tmp_path, f"""
[sweep]
target = "sweep_helpers:slow_square"
[fixed]
delay = {delay}
[grid]
x = {list(range(n))}
""")


def test_killing_the_sweep_kills_its_workers(tmp_path):
    cfg = _slow_sweep(tmp_path)
    out = tmp_path / "o.csv"
    proc = subprocess.Popen([sys.executable, "-m", "distalloc.cli", "sweep", str(cfg), "--out",
                             str(out), "--n-jobs", "2", "--chunk-size", "1", "--quiet"],
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert _wait_for(lambda: out.exists() and len({x["pid"] for x in rows(out)}) == 2)
    pids = {int(x["pid"]) for x in rows(out)}
    proc.kill()                                     # the main process only, not its group
    got = {}
    reader = threading.Thread(target=lambda: got.update(out=proc.stdout.read()), daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert not reader.is_alive(), "a worker still holds the sweep's stdout"
    proc.wait()

    def gone(pid):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return Path(f"/proc/{pid}/status").exists() and "zombie" in Path(
            f"/proc/{pid}/status").read_text()
    assert _wait_for(lambda: all(gone(p) for p in pids), timeout=10)


def test_two_sweeps_on_one_output(tmp_path, capsys):
    cfg = _slow_sweep(tmp_path, n=20, delay=0.2)
    out = tmp_path / "o.csv"
    lock = tmp_path / "o.csv.lock"
    proc = subprocess.Popen([sys.executable, "-m", "distalloc.cli", "sweep", str(cfg), "--out",
                             str(out), "--n-jobs", "1", "--chunk-size", "1", "--quiet"], env=ENV)
    try:
        assert _wait_for(lambda: lock.exists() and lock.read_text().strip() == str(proc.pid))
        assert main(["sweep", str(cfg), "--out", str(out)]) == 2
        one_error_line(capsys, f"is in use by another sweep (pid {proc.pid}")
    finally:
        proc.kill()
        proc.wait()
    # the dead owner's lock file is taken over
    lock.write_text(f"{proc.pid}\n")
    sys.path.insert(0, str(HERE))
    try:
        assert main(["sweep", str(cfg), "--out", str(out), "--n-jobs", "2", "--quiet"]) == 0
    finally:
        sys.path.remove(str(HERE))
    r = rows(out)
    assert sorted(int(x["x"]) for x in r) == list(range(20))
    assert not lock.exists()


# ------------------------------------------------------------------------------------------
# warnings from tasks, metric names
# ------------------------------------------------------------------------------------------
def test_task_warnings_are_reported_once_on_stderr(tmp_path, capsys):
    cfg = write_file(tmp_path, "[sweep]\ntarget = 'sweep_helpers:warn_once'\n[grid]\nx = [1, 2, 3]\n")
    sys.path.insert(0, str(HERE))
    try:
        assert main(["sweep", str(cfg), "--out", str(tmp_path / "w.csv"), "--json",
                     "--n-jobs", "1"]) == 0
    finally:
        sys.path.remove(str(HERE))
    cap = capsys.readouterr()
    assert json.loads(cap.out)["written"] == 3
    assert cap.err.strip().splitlines() == [
        "distalloc: warning: SweepWarning: 3 task(s) of the sweep warned: RuntimeWarning: "
        "numbers got large"]


def test_llm_plan_rows_keep_the_plan_status_apart(tmp_path):
    cfg = load_sweep({"sweep": {"target": "llm.plan"}, "fixed": {"scenario": "clustered"},
                      "grid": {"num_requests": [20, 5000]}})
    run_sweep(cfg, tmp_path / "p.csv", n_jobs=1, progress=False)
    r = {x["num_requests"]: x for x in rows(tmp_path / "p.csv")}
    assert r["20"]["status"] == "ok" and r["20"]["plan_status"] == "feasible"
    assert r["5000"]["status"] == "ok" and r["5000"]["plan_status"] == "infeasible"
    assert math.isclose(float(r["20"]["mean_token_ms"]), 530.4, rel_tol=1e-3)


def _sweep_in_daemon(path, queue):
    try:
        cfg = load_sweep({"sweep": {"target": "queue.approx"},
                          "fixed": {"servers": 4, "needed": 2}, "grid": {"rate": [1.0]}})
        run_sweep(cfg, path, n_jobs=1, progress=False)
        queue.put("ran")
    except ValidationError as exc:
        queue.put(f"ValidationError: {exc}")
    except BaseException as exc:  # noqa: BLE001
        queue.put(f"{type(exc).__name__}: {exc}")


def test_a_sweep_inside_a_daemonic_process_is_a_clean_error(tmp_path):
    """Found by the fuzz suite: an AssertionError from multiprocessing before."""
    import multiprocessing as mp
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_sweep_in_daemon, args=(tmp_path / "d.csv", q), daemon=True)
    p.start()
    got = q.get(timeout=60)
    p.join()
    assert got.startswith("ValidationError: run_sweep cannot start its worker processes")
    assert not (tmp_path / "d.csv").exists()


def test_parquet_takes_table_values(tmp_path):
    """Found by the fuzz suite: a TOML table as a parameter value (`needed = {}`) made
    pyarrow fail after the work was done (a struct without fields); tables are stored as
    JSON text and the failing row is recorded like any other."""
    pq = pytest.importorskip("pyarrow.parquet", reason="Parquet output needs pyarrow")
    cfg = load_sweep({"sweep": {"target": "queue.approx"},
                      "fixed": {"servers": 4, "needed": {}, "rate": 1.0},
                      "grid": {"idle_power": [0.0, {"a": 1}]}})
    out = tmp_path / "t.parquet"
    s = run_sweep(cfg, out, n_jobs=1, chunk_size=1, progress=False)
    assert (s["written"], s["failed"]) == (2, 2)
    got = pq.read_table(out).to_pylist()
    assert sorted(r["idle_power"] for r in got) == ['0.0', '{"a": 1}']   # text, as CSV cells
    assert all(r["needed"] == "{}" and "needed" in r["status"] for r in got)
    assert run_sweep(cfg, out, n_jobs=1, progress=False)["written"] == 0


def test_unstable_points_through_the_batch_hook_become_status_rows(monkeypatch):
    """queue.approx runs a chunk through its batch hook (approximate_grid): a point the
    scalar path refuses (unstable) must come back as that exception, i.e. a status row with
    empty (NaN) metrics, and the rest of the chunk must still be computed."""
    from distalloc._sweep_run import chunk_result
    from distalloc.sweep import TARGETS
    target = TARGETS["queue.approx"]
    calls = []
    real = target.batch

    def counting(params_list):
        calls.append(len(params_list))
        return real(params_list)
    monkeypatch.setattr(target, "batch", counting)
    chunk = [({"rate": r}, seed) for r in (1.0, 2.0, 1.9, 2.5) for seed in (0, 1)]
    out = chunk_result("queue.approx", {"servers": 4, "needed": 2}, chunk)
    assert calls == [8]                                  # the whole chunk in one call
    assert len(out["rows"]) == 8
    for r in out["rows"]:
        if r["rate"] >= 2.0:
            assert "unstable" in r["status"].lower() and "\n" not in r["status"]
            assert r.get("mean_jobs") is None or math.isnan(r["mean_jobs"])
        else:
            assert r["status"] == "ok"
            assert r["mean_jobs"] == pytest.approx(
                approximate(ForkJoin(4, 2, r["rate"])).mean_jobs, rel=1e-12)


@pytest.mark.parametrize("where", ["fixed", "grid", "nested"])
@pytest.mark.parametrize("out", ["o.csv", "o.parquet"])
def test_integers_beyond_64_bits_in_a_sweep_dict_are_refused(tmp_path, where, out):
    """Fuzz finding (10^4 budget): a sweep given as a dict (TOML itself stops at 64 bits)
    with idle_power = -2^63 - 1 ran, and the Parquet writer died of OverflowError on the
    row; every value is now checked when the sweep is loaded."""
    from distalloc import ValidationError
    from distalloc.sweep import load_sweep, run_sweep
    big = -9223372036854775809
    cfg = {"sweep": {"target": "queue.approx"},
           "fixed": {"servers": 4, "needed": 2, "rate": 0.5, "idle_power": 0.1},
           "grid": {"probs": [[0.2, 0.8], [0.5, 0.5]]}}
    if where == "fixed":
        cfg["fixed"]["idle_power"] = big
    elif where == "grid":
        cfg["grid"]["rate"] = [0.5, 2 ** 64]
        del cfg["fixed"]["rate"]
    else:
        cfg["grid"]["probs"] = [[0.2, 0.8], [big, 0.5]]
    with pytest.raises(ValidationError, match="must be an integer that fits in 64 bits") as e:
        run_sweep(load_sweep(cfg), tmp_path / out, progress=False)
    assert "\n" not in str(e.value)
    assert not (tmp_path / out).exists()
    cfg["fixed"]["idle_power"] = 2 ** 63 - 1          # the largest int64 is a value like any
    cfg["grid"] = {"probs": [[0.2, 0.8]]}
    cfg["fixed"]["rate"] = 0.5
    summary = run_sweep(load_sweep(cfg), tmp_path / out, progress=False)
    assert summary["written"] == summary["tasks"] == 1


def test_builtin_targets_take_the_resource_limits(tmp_path):
    """Fuzz finding (10^4 budget): a sweep of queue.exact points could only run each point
    to exact()'s 60 s default.  The built-in targets take max_seconds / max_memory_gb under
    the API's names; a point over its limit is a status row, the others compute."""
    from distalloc.sweep import load_sweep, run_sweep
    out = tmp_path / "o.csv"
    cfg = {"sweep": {"target": "queue.exact"},
           "fixed": {"servers": 3, "needed": 3, "max_seconds": 1.0},
           "grid": {"rate": [0.2, 0.8590578506679408]}}
    t0 = time.perf_counter()
    summary = run_sweep(load_sweep(cfg), out, progress=False)
    assert time.perf_counter() - t0 < 30          # the slow point took ~20 s alone before
    got = {r["rate"]: r for r in rows(out)}
    assert summary["written"] == 2
    assert got["0.2"]["status"] == "ok" and float(got["0.2"]["mean_jobs"]) > 0
    slow = got["0.8590578506679408"]
    assert slow["status"] != "ok" and "max_seconds" in slow["status"] and slow["mean_jobs"] == ""
    assert slow["max_seconds"] == "1.0"
    cfg["fixed"] = {"servers": 3, "needed": 3, "max_memory_gb": 1e-6}
    out2 = tmp_path / "o2.csv"
    run_sweep(load_sweep(cfg), out2, progress=False)
    assert all("max_memory_gb" in r["status"] or "--max-memory-gb" in r["status"]
               for r in rows(out2)), [r["status"] for r in rows(out2)]
    for target, fixed in [("queue.simulate", {"servers": 4, "needed": 2, "rate": 1.0,
                                              "jobs": 10 ** 9, "max_seconds": 0.5}),
                          ("llm.plan", {"scenario": "synthetic:200", "method": "milp",
                                        "max_memory_gb": 0.5, "time_limit": 5.0})]:
        out3 = tmp_path / f"{target}.csv"
        run_sweep(load_sweep({"sweep": {"target": target}, "fixed": fixed,
                              "grid": {"scenario_seed" if target == "llm.plan" else "idle_power":
                                       [0] if target == "llm.plan" else [0.0]}}),
                  out3, progress=False)
        (row,) = rows(out3)
        assert row["status"] != "ok" and ("max_seconds" in row["status"] or
                                          "max-seconds" in row["status"] or
                                          "GB" in row["status"]), row["status"]


@pytest.mark.parametrize("grid, column", [
    ('max_seconds = [10.0, 20.0, inf, "x"]', "max_seconds"),          # inf read back as 'inf'
    ("rate = [0.5, 9007199254740993]", "rate"),                       # int beyond 2^53 + float
    ("idle_power = [0.5, true, 1]", "idle_power"),                    # True cast to 1
])
def test_parquet_columns_of_mixed_kinds_resume_exactly(tmp_path, grid, column):
    """Review findings: a Parquet column whose chunks mixed kinds was cast by Arrow (inf as
    'inf', True as 1, an int beyond 2^53 into a double: ArrowInvalid, exit 1 on every run);
    resume keys then missed and rows were appended again.  Mixed columns are now text made
    of each value's CSV cell; every rerun finds every row done."""
    import pyarrow.parquet as pq
    target = "queue.simulate" if column == "max_seconds" else "queue.approx"
    fixed = ("servers = 2\nneeded = 1\nrate = 0.5\njobs = 2000\n" if column == "max_seconds"
             else "servers = 4\nneeded = 2\n" + ("rate = 0.5\n" if column != "rate" else ""))
    cfg = write_file(tmp_path, f"[sweep]\ntarget = '{target}'\n[fixed]\n{fixed}[grid]\n{grid}\n")
    out = tmp_path / "o.parquet"
    argv = ["sweep", str(cfg), "--out", str(out), "--n-jobs", "1", "--chunk-size", "1"]
    assert main(argv) in (0, 1)
    first = pq.read_table(out).num_rows
    assert first == len(eval(grid.split("=", 1)[1].replace("inf", "1e999")
                             .replace("true", "True")))
    for _ in range(2):
        assert main(argv) in (0, 1)
        assert pq.read_table(out).num_rows == first
