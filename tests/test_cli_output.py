"""What a newcomer sees (issue 14): help that explains every option and shows its default,
one name per meaning, headers and summaries that say what they computed, warnings that
never precede the one-line error, output files checked before any work, and plots that say
their setting."""
import argparse
import json
import re
import warnings

import numpy as np
import pytest

from distalloc.cli import build_parser, main


def _walk(parser, path=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, path + (name,))
    yield path, parser


def _commands():
    return [(path, p) for path, p in _walk(build_parser())
            if not any(isinstance(a, argparse._SubParsersAction) for a in p._actions)]


def test_every_option_has_help_and_shows_its_default():
    commands = _commands()
    assert len(commands) >= 13
    for path, parser in commands:
        text = parser.format_help()
        assert "SPEC" not in text, (path, "help refers to SPEC sections not in the repository")
        for action in parser._actions:
            if action.dest == "help":
                continue
            where = (path, action.option_strings or action.dest)
            assert action.help, f"{where} has no help text"
            if action.option_strings and action.default not in (None, False):
                text = parser._get_formatter()._expand_help(action).lower()
                assert "default" in text, f"{where}: the default is not shown"


def test_help_exits_zero_in_process(capsys):
    assert main(["queue", "approx", "--help"]) == 0
    assert "--max-seconds" in capsys.readouterr().out


def test_the_formatter_adds_defaults_the_help_does_not_say():
    from distalloc.cli._common import Parser
    p = Parser(prog="x")
    p.add_argument("--a", type=float, default=0.0, help="zero is a default too")
    p.add_argument("--b", type=int, default=3, help="three (default 3)")
    p.add_argument("--c", default=None, help="no default to show")
    text = " ".join(p.format_help().split())
    assert "zero is a default too" in text and "(default: 0.0)" not in text
    p = Parser(prog="x")
    p.add_argument("--a", type=float, default=0.0, help="zero")
    p.add_argument("--b", type=int, default=3, help="three (default 3)")
    text = " ".join(p.format_help().split())
    assert "zero (default: 0.0)" in text and "three (default 3)" in text
    assert "(default: 3)" not in text


@pytest.mark.parametrize("flag", ["--scenario-seed", "--seed"])
def test_scenario_seed_has_one_name_everywhere(flag, capsys):
    """`llm scenario` takes --scenario-seed like plan and simulate; --seed stays an alias."""
    assert main(["llm", "scenario", "topology:Abvt", "--servers", "5", flag, "3", "--json"]) == 0
    a = json.loads(capsys.readouterr().out)
    assert main(["llm", "scenario", "topology:Abvt", "--servers", "5", "--json"]) == 0
    b = json.loads(capsys.readouterr().out)
    assert a != b
    from distalloc.llm import resolve_scenario
    assert a == resolve_scenario("topology:Abvt", num_servers=5, seed=3).to_dict()


def test_simulate_header_tells_requested_from_realised_rate(capsys):
    assert main(["llm", "simulate", "clustered", "--rate", "0.5", "--num-requests", "30"]) == 0
    head = capsys.readouterr().out.splitlines()[0]
    m = re.search(r"30 requests \(poisson, realised ([0-9.]+) req/s\)", head)
    assert m, head
    from distalloc.llm import clustered
    from distalloc.llm.workload import poisson_workload
    realised = poisson_workload(clustered(), 0.5, 30, seed=0).rate_per_s
    assert float(m.group(1)) == pytest.approx(realised, rel=1e-2) and realised != 0.5


def test_compare_says_lower_or_higher(capsys):
    assert main(["llm", "compare", "clustered", "--seeds", "2", "--num-requests", "40",
                 "--methods", "cg-bprr,petals"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^cg-bprr: mean per-token time \d+% lower than petals", out, re.M), out
    assert "(cut)" not in out and "+" not in out.splitlines()[-1]
    # the other way round: a large set-up delay on cg-bprr only
    assert main(["llm", "compare", "clustered", "--seeds", "1", "--num-requests", "20",
                 "--methods", "petals,cg-bprr", "--allocation-delay",
                 "petals=0,cg-bprr=500"]) == 0
    assert re.search(r"^cg-bprr: mean per-token time \d+% higher than petals",
                     capsys.readouterr().out, re.M)


def test_sgd_run_lists_k_changes_with_an_ellipsis(capsys):
    from distalloc.sgd import run
    assert main(["sgd", "run", "--policy", "dbw", "--k-max", "40", "--horizon", "1000"]) == 0
    out = capsys.readouterr().out
    res = run("synthetic", 50, "dbw", horizon=1000, k_max=40, seed=0)
    steps = np.flatnonzero(np.diff(res.k)) + 1
    assert steps.size > 12
    line = next(x for x in out.splitlines() if "k steps" in x)
    assert line.endswith(f", ... ({steps.size} in all)"), line


# ------------------------------------------------------------------------------------------
# warnings and errors
# ------------------------------------------------------------------------------------------
def test_warnings_never_precede_the_error_nor_reach_stdout(monkeypatch, capsys):
    from distalloc import ValidationError
    from distalloc.cli import queue

    def warn_then(kind):
        def cmd(args):
            warnings.warn("overflow encountered in exp", RuntimeWarning)
            np.exp(np.array([1000.0]))                      # a real numpy RuntimeWarning
            import scipy.integrate
            scipy.integrate.quad(lambda x: np.sin(1 / x) if x else 0, 0, 1, limit=3)
            if kind == "error":
                raise ValidationError("The 'rate' parameter must be positive. Got -1 instead.")
            print(json.dumps({"mean_jobs": 1.0}))
            return 0
        return cmd

    monkeypatch.setattr(queue, "_cmd_queue", warn_then("error"))
    assert main(["queue", "approx", "--servers", "2", "--needed", "1", "--rate", "1"]) == 2
    cap = capsys.readouterr()
    assert cap.out == ""
    assert cap.err == "distalloc: error: The 'rate' parameter must be positive. Got -1 instead.\n"
    monkeypatch.setattr(queue, "_cmd_queue", warn_then("ok"))
    assert main(["queue", "approx", "--servers", "2", "--needed", "1", "--rate", "1",
                 "--json"]) == 0
    cap = capsys.readouterr()
    assert json.loads(cap.out) == {"mean_jobs": 1.0}
    err = cap.err.splitlines()
    assert all(x.startswith("distalloc: warning: ") for x in err) and len(err) == len(set(err))
    assert any("RuntimeWarning: overflow encountered in exp" in x for x in err)
    assert any("IntegrationWarning" in x for x in err)


def test_an_unexpected_exception_is_one_line_exit_1(monkeypatch, capsys):
    from distalloc.cli import queue

    def broken(args):
        raise KeyError("boom")

    monkeypatch.setattr(queue, "_cmd_queue", broken)
    assert main(["queue", "approx", "--servers", "2", "--needed", "1", "--rate", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "internal error" in err[0] and "KeyError" in err[0]


# ------------------------------------------------------------------------------------------
# output files checked before any work
# ------------------------------------------------------------------------------------------
def _readonly(tmp_path):
    from test_sweep_faults import _readonly_dir
    return _readonly_dir(tmp_path)


PLOTTING = [
    ["llm", "plan", "clustered"],
    ["llm", "compare", "clustered", "--seeds", "1", "--num-requests", "10"],
    ["sgd", "run", "--horizon", "10"],
    ["queue", "tradeoff", "--servers", "4", "--needed", "2", "--rate", "1"],
]


@pytest.mark.parametrize("command", PLOTTING, ids=lambda c: " ".join(c[:2]))
@pytest.mark.parametrize("target, needle", [
    ("plot.xyz", "must be a file ending in .png"),
    ("plot", "must be a file ending in .png"),
    ("missing/plot.png", "does not exist"),
    ("folder.png", "names a folder"),
    ("READONLY/plot.png", "Cannot write"),
])
def test_plot_paths_are_checked_before_computing(tmp_path, capsys, monkeypatch, command, target,
                                                 needle):
    (tmp_path / "folder.png").mkdir()
    path = (str(_readonly(tmp_path)) + "/plot.png" if target.startswith("READONLY")
            else str(tmp_path / target))
    import distalloc.llm.methods
    import distalloc.queueing
    import distalloc.sgd

    def forbidden(*a, **k):
        raise AssertionError("computed before checking --plot")
    for mod, name in [(distalloc.llm.methods, "plan"), (distalloc.sgd, "run"),
                      (distalloc.queueing, "tradeoff")]:
        monkeypatch.setattr(mod, name, forbidden)
    monkeypatch.setattr("distalloc.llm.simulation.simulate", forbidden)
    assert main([*command, "--plot", path]) == 2
    cap = capsys.readouterr()
    assert cap.out == "" and cap.err.count("\n") == 1 and needle in cap.err, cap.err


def test_demo_out_onto_a_file_or_a_readonly_folder(tmp_path, capsys):
    f = tmp_path / "afile"
    f.write_text("keep me")
    assert main(["demo", "--out", str(f)]) == 2
    cap = capsys.readouterr()
    assert cap.out == "" and "exists and is a file" in cap.err and cap.err.count("\n") == 1
    assert f.read_text() == "keep me"
    assert main(["demo", "--out", str(_readonly(tmp_path) / "sub")]) == 2
    cap = capsys.readouterr()
    assert cap.out == "" and cap.err.count("\n") == 1


# ------------------------------------------------------------------------------------------
# plots
# ------------------------------------------------------------------------------------------
@pytest.fixture
def figures(monkeypatch):
    """The figures the commands save, captured (already drawn) before they are closed."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    saved = []
    original = Figure.savefig

    def savefig(self, *args, **kwargs):
        original(self, *args, **kwargs)
        saved.append(self)
    monkeypatch.setattr(Figure, "savefig", savefig)
    return saved


def _tick_labels(ax, which="x"):
    axis = ax.xaxis if which == "x" else ax.yaxis
    return [t.get_text() for t in axis.get_ticklabels() if t.get_text()]


def test_log_axes_are_labelled_in_plain_decimals(tmp_path, figures):
    assert main(["llm", "compare", "clustered", "--seeds", "2", "--num-requests", "40",
                 "--plot", str(tmp_path / "c.png")]) == 0
    assert main(["queue", "tradeoff", "--servers", "10", "--needed", "5", "--rate", "2",
                 "--speeds", "1,3", "--powers", "1,6", "--plot", str(tmp_path / "t.png")]) == 0
    cdf, trade = figures[0].axes[0], figures[1].axes[0]
    for labels in (_tick_labels(cdf, "x"), _tick_labels(trade, "y")):
        assert labels and all(re.fullmatch(r"\d+(\.\d+)?", x) for x in labels), labels
    assert "0.6" in _tick_labels(cdf, "x")
    title = cdf.get_title()
    assert "0.5 req/s" in title and "2 seeds" in title and "allocation delay 0 s" in title
    assert "rate 2" in trade.get_title() and "speeds 1,3" in trade.get_title()


def test_sgd_plot_axis_and_legend(tmp_path, figures):
    assert main(["sgd", "run", "--policy", "pflug", "--k-max", "40", "--horizon", "500",
                 "--plot", str(tmp_path / "s.png")]) == 0
    top, bottom = figures[0].axes
    assert "simulated time" in bottom.get_xlabel() and "wall" not in bottom.get_xlabel()
    assert [t.get_text() for t in top.get_legend().get_texts()] == ["pflug, k ≤ 40"]
    assert "n = 50" in top.get_title() and "seed 0" in top.get_title()


def test_placement_map_has_a_legend_and_a_bounded_size(tmp_path, figures, data_dir):
    from PIL import Image
    png = tmp_path / "gts.png"
    assert main(["llm", "plan", "topology:GtsCe", "--plot", str(png)]) == 0
    fig = figures[0]
    width, height = Image.open(png).size
    assert height <= 1000 and width <= 1200
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        "on client 0's route", "other servers holding blocks"]
    assert "60 servers" in fig._suptitle.get_text() and "|R| = 20" in fig._suptitle.get_text()


def test_llm_simulate_is_exported():
    import distalloc.llm as llm
    from distalloc.llm.simulation import simulate
    assert llm.simulate is simulate and "simulate" in llm.__all__
