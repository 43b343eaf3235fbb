"""Which sweep an output belongs to (issues 14/16, fresh-user review): the target is part of
every row and of the resume key, another sweep's output is refused and left byte for byte,
input files are read relative to the sweep file and their content is part of the key."""
import hashlib
import shutil
from pathlib import Path

import pytest

from distalloc import ValidationError
from distalloc.cli import main
from distalloc.sweep import load_sweep, run_sweep

from cli_helpers import UNSTABLE_SWEEP as UNSTABLE, one_error_line, rows

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def approx_sweep(target="queue.approx"):
    return (f'[sweep]\ntarget = "{target}"\n[fixed]\nservers = 4\nneeded = 2\n'
            "[grid]\nrate = [1.0, 1.5]\n")


# --- 1. the target decides whose rows they are -------------------------------------------
def test_a_changed_target_does_not_pass_old_rows_as_its_own(tmp_path, capsys):
    cfg = tmp_path / "s.toml"
    cfg.write_text(approx_sweep("queue.approx"))
    out = tmp_path / "s.csv"
    assert main(["sweep", str(cfg), "--out", str(out), "--n-jobs", "1", "--quiet"]) == 0
    written = rows(out)
    assert [r["sweep_target"] for r in written] == ["queue.approx"] * 2
    assert [r["method"] for r in written] == ["approx"] * 2
    before = out.read_bytes()
    cfg.write_text(approx_sweep("queue.exact"))
    assert main(["sweep", str(cfg), "--out", str(out), "--n-jobs", "1", "--quiet"]) == 2
    one_error_line(capsys, "its rows are of the target 'queue.approx', not 'queue.exact'")
    assert out.read_bytes() == before
    # the same through the API, and the approx sweep itself still resumes
    with pytest.raises(ValidationError, match="not the output of this sweep"):
        run_sweep(load_sweep(cfg), out, n_jobs=1, progress=False)
    cfg.write_text(approx_sweep("queue.approx"))
    summary = run_sweep(load_sweep(cfg), out, n_jobs=1, progress=False)
    assert (summary["skipped"], summary["written"]) == (2, 0)
    # to a new output, exact computes its own rows, different from approx's
    exact = tmp_path / "exact.csv"
    cfg.write_text(approx_sweep("queue.exact"))
    assert run_sweep(load_sweep(cfg), exact, n_jobs=1, progress=False)["written"] == 2
    assert [r["method"] for r in rows(exact)] == ["exact"] * 2
    assert [r["sweep_target"] for r in rows(exact)] == ["queue.exact"] * 2


def test_sweep_target_is_a_reserved_name(tmp_path):
    with pytest.raises(ValidationError, match="'sweep_target' is set by the sweep"):
        load_sweep({"sweep": {"target": "queue.approx"},
                    "fixed": {"servers": 4, "needed": 2, "sweep_target": "x"},
                    "grid": {"rate": [1.0]}})


# --- 2. another sweep's output is refused, untouched ------------------------------------
FORKJOIN = """
[sweep]
target = "queue.simulate"
seeds = 1
[fixed]
servers = 10
needed = 5
speeds = [1.0, 3.0]
powers = [1.0, 6.0]
jobs = 2000
[grid]
rate = [1.0, 2.0]
probs = [[0.5, 0.5], [0.2, 0.8]]
"""


@pytest.mark.parametrize("cut_short", [False, True])
def test_another_sweeps_csv_is_refused_byte_for_byte(tmp_path, capsys, cut_short):
    (tmp_path / "forkjoin.toml").write_text(FORKJOIN)
    (tmp_path / "unstable.toml").write_text(UNSTABLE)
    out = tmp_path / "forkjoin.csv"
    assert main(["sweep", str(tmp_path / "forkjoin.toml"), "--out", str(out), "--n-jobs", "1",
                 "--quiet"]) == 0
    if cut_short:     # as a killed sweep leaves it: the refusal must not drop that line
        with out.open("ab") as fh:
            fh.write(b"3.0,\"[0.5, 0.")
    before = out.read_bytes()
    assert main(["sweep", str(tmp_path / "unstable.toml"), "--out", str(out), "--n-jobs", "1",
                 "--quiet"]) == 2
    one_error_line(capsys, "not the output of this sweep (its rows are of the target "
                           "'queue.simulate', not 'queue.approx')")
    assert out.read_bytes() == before
    assert not (tmp_path / "forkjoin.csv.lock").exists()


def test_outputs_without_the_target_column_or_with_clashing_columns_are_refused(tmp_path,
                                                                               capsys):
    cfg = tmp_path / "s.toml"
    cfg.write_text(UNSTABLE)
    old = tmp_path / "old.csv"      # an output written before the target column existed
    old.write_bytes(b"rate,seed,method,mean_jobs,status,servers,needed\r\n"
                    b"1.0,0,approx,0.5,ok,4,2\r\n")
    assert main(["sweep", str(cfg), "--out", str(old), "--quiet"]) == 2
    one_error_line(capsys, "no 'sweep_target' column")
    assert old.read_bytes() == (b"rate,seed,method,mean_jobs,status,servers,needed\r\n"
                                b"1.0,0,approx,0.5,ok,4,2\r\n")
    clash = tmp_path / "clash.csv"  # 'servers' was a metric there, a parameter here
    text = (b"rate,seed,servers,status,sweep_target\r\n1.0,0,3,ok,queue.approx\r\n")
    clash.write_bytes(text)
    assert main(["sweep", str(cfg), "--out", str(clash), "--quiet"]) == 2
    one_error_line(capsys, "its column 'servers' holds a metric, here it is a parameter")
    assert clash.read_bytes() == text


def test_another_sweeps_parquet_output_is_refused_untouched(tmp_path, capsys):
    pytest.importorskip("pyarrow")
    (tmp_path / "a.toml").write_text(UNSTABLE)
    (tmp_path / "b.toml").write_text(UNSTABLE.replace("queue.approx", "queue.exact"))
    out = tmp_path / "o.parquet"
    assert main(["sweep", str(tmp_path / "a.toml"), "--out", str(out), "--n-jobs", "1",
                 "--quiet"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(["sweep", str(tmp_path / "b.toml"), "--out", str(out), "--n-jobs", "1",
                 "--quiet"]) == 2
    one_error_line(capsys, "not 'queue.exact'")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


# --- 3. input files: beside the sweep file, checked first, their content in the key ------
def scenario_file(path: Path, memory_gb: float = 8.8) -> None:
    import json

    from distalloc.llm import resolve_scenario
    d = resolve_scenario("synthetic:4:6").to_dict()
    for s in d["servers"]:
        s["memory_gb"] = memory_gb
    path.write_text(json.dumps(d))


PLAN = """
[sweep]
target = "llm.plan"
[fixed]
scenario = "sc.json"
num_requests = 20
[grid]
method = ["cg-bprr", "petals"]
"""


def test_input_files_are_read_beside_the_sweep_file_and_hashed(tmp_path, monkeypatch,
                                                               capsys):
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / "s.toml").write_text(PLAN)
    scenario_file(folder / "sc.json")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    out = elsewhere / "s.csv"

    def sweep():
        assert main(["sweep", str(folder / "s.toml"), "--n-jobs", "1", "--json"]) == 0
        import json
        return json.loads(capsys.readouterr().out)

    first = sweep()
    assert (first["written"], first["failed"]) == (2, 0)
    got = rows(out)
    digest = hashlib.sha256((folder / "sc.json").read_bytes()).hexdigest()
    assert [r["scenario"] for r in got] == ["sc.json"] * 2        # as written in the file
    assert [r["scenario_sha256"] for r in got] == [digest] * 2
    assert [r["status"] for r in got] == ["ok"] * 2
    assert got[0]["feasible"] == "true"
    assert sweep()["skipped"] == 2                                # unchanged: resumes
    scenario_file(folder / "sc.json", memory_gb=12.0)             # edited: computed again
    again = sweep()
    assert (again["skipped"], again["written"]) == (0, 2)
    new_digest = hashlib.sha256((folder / "sc.json").read_bytes()).hexdigest()
    assert [r["scenario_sha256"] for r in rows(out)] == [digest] * 2 + [new_digest] * 2
    assert sweep()["skipped"] == 2


@pytest.mark.parametrize("case", ["missing", "folder", "grid-missing"])
def test_a_missing_input_file_is_an_error_before_any_work(tmp_path, monkeypatch, capsys, case):
    folder = tmp_path / "study"
    folder.mkdir()
    text = PLAN
    if case == "folder":
        (folder / "sc.json").mkdir()
    if case == "grid-missing":
        scenario_file(folder / "sc.json")
        text = PLAN.replace('scenario = "sc.json"\n', "").replace(
            "[grid]\n", '[grid]\nscenario = ["sc.json", "other.json"]\n')
    (folder / "s.toml").write_text(text)
    scenario_file(tmp_path / "sc.json")   # in the current folder: must not be used
    scenario_file(tmp_path / "other.json")
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", str(folder / "s.toml"), "--n-jobs", "1"]) == 2
    needle = {"missing": "The input file of fixed.scenario ('sc.json') does not exist",
              "folder": "is a folder",
              "grid-missing": "The input file of grid.scenario[1] ('other.json') does not "
                              "exist"}[case]
    cap = one_error_line(capsys, needle)
    assert str(folder) in cap.err
    assert not (tmp_path / "s.csv").exists()


def test_a_topology_path_is_read_beside_the_sweep_file(tmp_path, monkeypatch):
    src = DATA / "topologies" / "Abvt.graph"
    if not src.exists():
        pytest.skip("shared topologies not found")
    folder = tmp_path / "study"
    folder.mkdir()
    shutil.copy(src, folder / "net.graph")
    (folder / "s.toml").write_text('[sweep]\ntarget = "llm.plan"\n[fixed]\n'
                                   'scenario = "topology:net.graph"\nservers = 6\n'
                                   'num_requests = 10\n[grid]\nmethod = ["cg-bprr"]\n')
    monkeypatch.chdir(tmp_path)
    config = load_sweep(folder / "s.toml")
    assert config.inputs["topology:net.graph"][0] == f"topology:{folder / 'net.graph'}"
    run_sweep(config, tmp_path / "o.csv", n_jobs=1, progress=False)
    (row,) = rows(tmp_path / "o.csv")
    assert row["status"] == "ok", row["status"]
    assert row["scenario"] == "topology:net.graph"
    assert row["scenario_sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    (folder / "net.graph").unlink()
    with pytest.raises(ValidationError, match="does not exist"):
        load_sweep(folder / "s.toml")


def test_builtin_scenarios_have_no_digest(tmp_path):
    config = load_sweep({"sweep": {"target": "llm.plan"},
                         "fixed": {"scenario": "synthetic:4:6", "num_requests": 10},
                         "grid": {"method": ["cg-bprr"]}}, base=tmp_path)
    assert config.inputs == {}
    run_sweep(config, tmp_path / "o.csv", n_jobs=1, progress=False)
    (row,) = rows(tmp_path / "o.csv")
    assert row["status"] == "ok" and row["scenario_sha256"] == ""
    assert run_sweep(config, tmp_path / "o.csv", n_jobs=1, progress=False)["skipped"] == 1
