"""Sweeps: local processes against a serial loop in the same session, and the per-task
overhead through a Dask LocalCluster."""
import time

import numpy as np
import pytest

from distalloc.sweep import evaluate_task, load_sweep, run_sweep


def _config(target, n_rates, n_probs, seeds=1, **fixed):
    return load_sweep({"sweep": {"target": target, "seeds": seeds},
                       "fixed": {"servers": 10, "needed": 5, "speeds": [1.0, 3.0],
                                 "powers": [1.0, 6.0], **fixed},
                       "grid": {"rate": list(np.round(np.linspace(0.1, 2.5, n_rates), 4)),
                                "probs": [[round(1 - p, 4), round(p, 4)]
                                          for p in np.linspace(0.3, 1.0, n_probs)]}})


def _serial(cfg):
    for point, seed in cfg.tasks():
        evaluate_task(cfg.target, {**cfg.fixed, **point}, seed)


@pytest.mark.parametrize("target, n_rates, n_probs, fixed", [
    ("queue.approx", 100, 100, {}),
    ("queue.simulate", 25, 40, {"jobs": 20_000}),
])
def test_sweep_local_vs_serial(benchmark, tmp_path, target, n_rates, n_probs, fixed):
    cfg = _config(target, n_rates, n_probs, **fixed)
    out = tmp_path / "out.csv"
    summary = benchmark.pedantic(run_sweep, args=(cfg, out), kwargs={"n_jobs": 2, "progress": False},
                                 rounds=1, iterations=1)
    assert summary["written"] == len(cfg.tasks())
    t0 = time.perf_counter()
    _serial(cfg)
    t_serial = time.perf_counter() - t0
    out.unlink()
    t0 = time.perf_counter()
    run_sweep(cfg, out, n_jobs=2, progress=False)
    t_local = time.perf_counter() - t0
    benchmark.extra_info.update(tasks=len(cfg.tasks()), serial_s=t_serial, local_2proc_s=t_local,
                                speedup=t_serial / t_local)
    print(f"\n{target}: {len(cfg.tasks())} tasks, serial {t_serial:.2f} s, 2 processes "
          f"{t_local:.2f} s, ratio {t_serial / t_local:.2f}x")


def test_dask_per_task_overhead(benchmark, tmp_path):
    distributed = pytest.importorskip("distributed")
    cfg = _config("queue.approx", 20, 10)       # 200 cheap tasks, one per chunk
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        out = tmp_path / "dask.csv"
        t0 = time.perf_counter()
        s = benchmark.pedantic(run_sweep, args=(cfg, out),
                               kwargs={"scheduler": cluster.scheduler_address, "chunk_size": 1,
                                       "progress": False}, rounds=1, iterations=1)
        t = time.perf_counter() - t0
    assert s["written"] == 200
    t0 = time.perf_counter()
    _serial(cfg)
    t_serial = time.perf_counter() - t0
    overhead = (t - t_serial / 2) / 200
    benchmark.extra_info.update(tasks=200, dask_s=t, serial_s=t_serial, overhead_ms=overhead * 1e3)
    print(f"\nDask, 200 one-task chunks on 2 workers: {t:.2f} s (serial work {t_serial:.2f} s): "
          f"~{overhead * 1e3:.1f} ms overhead per task")
