"""Sweeps: validation before work, local processes, resume after a kill, a worker dying,
Parquet output, and a real Dask cluster (LocalCluster with worker processes)."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from distalloc import ValidationError
from distalloc.cli import main
from distalloc.sweep import load_sweep, run_sweep

from cli_helpers import rows, write_file

HERE = Path(__file__).parent


QUEUE = """
[sweep]
target = "queue.approx"
seeds = 2
[fixed]
servers = 6
needed = 3
speeds = [1.0, 3.0]
powers = [1.0, 6.0]
[grid]
rate = [0.5, 1.0, 1.5]
probs = [[0.5, 0.5], [0.2, 0.8]]
"""


@pytest.mark.parametrize("text, needle", [
    ("[sweep]\ntarget = 'queue.teleport'\n", "Unknown sweep target"),
    ("[sweep]\ntarget = 'queue.approx'\n[grid]\nrate = []\n", "non-empty list"),
    ("[sweep]\ntarget = 'queue.approx'\n[grid]\nrate = 1.0\n", "non-empty list"),
    ("[sweep]\ntarget = 'queue.approx'\n[fixed]\nservrs = 3\n", "Unknown parameter 'servrs'"),
    ("[sweep]\ntarget = 'queue.approx'\n[fixed]\nrate = 1\n[grid]\nrate = [1]\n", "both fixed"),
    ("[sweep]\ntarget = 'queue.approx'\nseeds = 0\n", "'seeds'"),
    ("[sweep]\ntarget = 'queue.approx'\n[extra]\nx = 1\n", "Unknown key 'extra'"),
    ("[sweep]\ntarget = 'nosuchmodule:f'\n", "cannot be imported"),
    ("[sweep]\ntarget = 'sgd.run'\n[grid]\nseed = [1, 2]\n", "'seed' is set by the sweep"),
])
def test_bad_sweep_files_fail_before_work(tmp_path, text, needle):
    with pytest.raises(ValidationError, match=needle):
        load_sweep(write_file(tmp_path, text))
    out = subprocess.run([sys.executable, "-m", "distalloc.cli", "sweep",
                          str(tmp_path / "s.toml"), "--out", str(tmp_path / "o.csv")],
                         capture_output=True, text=True)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o.csv").exists()


def test_local_sweep_rows_and_resume(tmp_path):
    cfg = load_sweep(write_file(tmp_path, QUEUE))
    out = tmp_path / "r.csv"
    s1 = run_sweep(cfg, out, n_jobs=2, progress=False)
    assert s1 == {**s1, "tasks": 12, "skipped": 0, "written": 12}
    r = rows(out)
    assert len(r) == 12
    assert list(r[0])[:3] == ["rate", "probs", "seed"] and "mean_jobs" in r[0]
    # the same metric as the API for one row
    from distalloc.queueing import ForkJoin, approximate
    want = approximate(ForkJoin(6, 3, 1.0, [1.0, 3.0], [1.0, 6.0], [0.2, 0.8])).mean_jobs
    got = [x for x in r if x["rate"] == "1.0" and x["probs"] == "[0.2, 0.8]"]
    assert len(got) == 2 and all(float(x["mean_jobs"]) == pytest.approx(want) for x in got)
    # a rerun writes nothing; a cut-off last line is dropped and recomputed
    assert run_sweep(cfg, out, n_jobs=2, progress=False)["written"] == 0
    text = out.read_text()
    out.write_text(text[: text.rfind("\n", 0, len(text) - 1) + 1] + "1.5,\"[0.2, 0")
    s3 = run_sweep(cfg, out, n_jobs=1, progress=False)
    assert s3["written"] == 1 and len(rows(out)) == 12
    keys = [(x["rate"], x["probs"], x["seed"]) for x in rows(out)]
    assert len(set(keys)) == 12


def test_killed_sweep_resumes_without_loss_or_duplicates(tmp_path):
    cfg = write_file(tmp_path, """
[sweep]
target = "sweep_helpers:slow_square"
seeds = 2
[fixed]
delay = 0.05
[grid]
x = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]
""")
    out = tmp_path / "k.csv"
    env = {**os.environ, "PYTHONPATH": str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-m", "distalloc.cli", "sweep", str(cfg), "--out", str(out),
           "--n-jobs", "2", "--chunk-size", "2", "--quiet"]
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline and (not out.exists() or len(rows(out)) < 6):
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = len(rows(out))
    assert 6 <= partial < 40
    subprocess.run(cmd, env=env, check=True)
    r = rows(out)
    keys = [(x["x"], x["seed"]) for x in r]
    assert len(r) == 40 and len(set(keys)) == 40
    assert all(int(x["value"]) == int(x["x"]) ** 2 + int(x["seed"]) for x in r)


def test_worker_death_is_retried(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    marker = tmp_path / "died"
    cfg = load_sweep({"sweep": {"target": "sweep_helpers:die_once", "seeds": 1},
                      "fixed": {"marker": str(marker)}, "grid": {"x": list(range(8))}})
    summary = run_sweep(cfg, tmp_path / "d.csv", n_jobs=2, chunk_size=1, progress=False)
    assert marker.exists() and summary["restarts"] >= 1
    r = rows(tmp_path / "d.csv")
    assert sorted(int(x["value"]) for x in r) == [10 * x for x in range(8)]


def test_parquet_output_and_resume(tmp_path):
    pa = pytest.importorskip("pyarrow.parquet", reason="Parquet output needs pyarrow")
    cfg = load_sweep(write_file(tmp_path, QUEUE))
    out = tmp_path / "r.parquet"
    assert run_sweep(cfg, out, n_jobs=1, progress=False)["written"] == 12
    assert run_sweep(cfg, out, n_jobs=1, progress=False)["written"] == 0
    table = pa.read_table(out)
    assert table.num_rows == 12 and "mean_jobs" in table.column_names
    got = sorted((r["rate"], tuple(r["probs"]), r["seed"]) for r in table.to_pylist())
    assert got == sorted((rate, tuple(p), seed) for rate in (0.5, 1.0, 1.5)
                         for p in ([0.5, 0.5], [0.2, 0.8]) for seed in (0, 1))


def test_dask_local_cluster(tmp_path):
    distributed = pytest.importorskip("distributed", reason="Dask sweeps need distributed")
    cfg = load_sweep(write_file(tmp_path, QUEUE))
    local = tmp_path / "local.csv"
    run_sweep(cfg, local, n_jobs=1, progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        out = tmp_path / "dask.csv"
        s = run_sweep(cfg, out, scheduler=cluster.scheduler_address, progress=False)
        assert s["written"] == 12
        # the CLI, through the environment variable
        env_out = tmp_path / "env.csv"
        os.environ["DASK_SCHEDULER_ADDRESS"] = cluster.scheduler_address
        try:
            assert main(["sweep", str(tmp_path / "s.toml"), "--out", str(env_out), "--quiet"]) == 0
        finally:
            del os.environ["DASK_SCHEDULER_ADDRESS"]
    key = lambda x: (x["rate"], x["probs"], x["seed"])  # noqa: E731

    def same(a, b):     # the batched approx path (chunks > 1) equals the scalar one to 1e-12
        assert len(a) == len(b)
        for x, y in zip(sorted(a, key=key), sorted(b, key=key)):
            assert x.keys() == y.keys()
            for k in x:
                try:
                    assert float(x[k]) == pytest.approx(float(y[k]), rel=1e-12), k
                except ValueError:
                    assert x[k] == y[k], k
    same(rows(out), rows(local))
    same(rows(env_out), rows(local))


def test_every_builtin_target_runs(tmp_path):
    for target, fixed, grid in [
        ("queue.exact", {"servers": 3, "needed": 2}, {"rate": [0.5]}),
        ("queue.simulate", {"servers": 3, "needed": 2, "jobs": 2000}, {"rate": [0.5]}),
        ("llm.plan", {"scenario": "clustered"}, {"method": ["cg-bprr", "petals"]}),
        ("llm.simulate", {"scenario": "clustered", "rate": 0.2, "num_requests": 20},
         {"method": ["cg-bprr"]}),
        ("sgd.run", {"workers": 10, "horizon": 50}, {"policy": ["fixed:5"]}),
    ]:
        cfg = load_sweep({"sweep": {"target": target}, "fixed": fixed, "grid": grid})
        out = tmp_path / f"{target}.csv"
        assert run_sweep(cfg, out, n_jobs=1, progress=False)["written"] == len(cfg.tasks())
        assert rows(out)


def test_demo_runs(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "CG-BP + WS-RR" in out and "Fastest-k SGD" in out and "fork-join" in out
    for name in ("llm_token_cdf.png", "sgd_error.png", "forkjoin_tradeoff.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
