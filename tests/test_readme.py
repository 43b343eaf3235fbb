"""README examples are executed, so they cannot drift (HELPERS.md "README conventions").

* A fenced block opened with ```` ```console ```` is run: each line starting with ``$ `` is a
  command; the lines up to the next ``$ `` line or the block's end are its expected output.
  ``distalloc ...`` runs in-process through :func:`distalloc.cli.main`; any other command
  (``head -2 out.csv``) runs in a shell.  Every console block gets a fresh temporary working
  directory, with ``DISTALLOC_DATA_DIR`` pointing at ``../shared/data`` of the checkout.
  A command that succeeds is compared on its stdout; one that fails (non-zero exit) on its
  stdout followed by its stderr, so an example of a refused input shows its one-line error,
  and a command that fails where the README shows no error is a failure.
* ```` ```console-slow ```` blocks: the same, run only with ``pytest --run-slow``.
* ```` ```python ```` blocks are executed, each in a fresh namespace, in a temporary working
  directory; a ```` ```text ```` block that follows directly is its expected stdout.
* A block whose info string has ``file=NAME`` (```` ```toml file=forkjoin.toml ````) is
  written as NAME into the working directory of every console and python block, so examples
  can read the files the README shows.
* Matching: lines compare after stripping trailing whitespace (and trailing blank lines); a
  line that is exactly ``...`` matches any number of lines (also none); ``...`` inside a
  line matches any run of characters on that line.
* The quick start (```` ```bash ````, exactly two commands) is not executed; every other
  block that shows a ``$ distalloc`` command must be a console block, and every example
  output is checked.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DATA = ROOT.parent / "shared" / "data"
FENCE = re.compile(r"^(```+)\s*(\S*)\s*(.*)$")


@dataclass
class Block:
    lang: str
    attrs: dict
    line: int                 # 1-based line of the opening fence
    lines: list[str]
    expected: list[str] | None = None      # python: the text block that follows
    follows_directly: bool = False
    extra: dict = field(default_factory=dict)


def parse_blocks(text: str) -> list[Block]:
    """Fenced blocks in order; a ```text block directly after a ```python block becomes its
    expected output."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    last_end = -10
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang, rest = m.groups()
        attrs = dict(a.split("=", 1) for a in rest.split() if "=" in a)
        start = i
        body = []
        i += 1
        while i < len(lines) and not lines[i].startswith(fence):
            body.append(lines[i])
            i += 1
        between = lines[last_end + 1:start] if last_end >= 0 else ["x"]
        block = Block(lang, attrs, start + 1, body,
                      follows_directly=all(not x.strip() for x in between))
        if (lang == "text" and blocks and blocks[-1].lang == "python"
                and block.follows_directly and blocks[-1].expected is None):
            blocks[-1].expected = body
        else:
            blocks.append(block)
        last_end = i
        i += 1
    return blocks


def _pattern(expected: list[str]) -> re.Pattern:
    parts = []
    for line in expected:
        if line == "...":
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append(".*".join(re.escape(p) for p in line.split("...")) + r"\n")
    return re.compile("".join(parts))


def _normalise(lines: list[str]) -> list[str]:
    out = [x.rstrip() for x in lines]
    while out and not out[-1]:
        out.pop()
    return out


def matches(expected: list[str], actual: str) -> bool:
    exp = _normalise(expected)
    act = _normalise(actual.splitlines())
    text = "".join(x + "\n" for x in act)
    return _pattern(exp).fullmatch(text) is not None


def console_commands(block: Block) -> list[tuple[int, str, list[str]]]:
    """(README line, command, expected output lines) of a console block."""
    cmds: list[tuple[int, str, list[str]]] = []
    for k, line in enumerate(block.lines):
        if line.startswith("$ "):
            cmds.append((block.line + 1 + k, line[2:].strip(), []))
        elif cmds:
            cmds[-1][2].append(line)
        elif line.strip():
            raise AssertionError(f"README.md:{block.line + 1 + k}: console block text before "
                                 f"the first '$ ' command: {line!r}")
    return cmds


BLOCKS = parse_blocks(README.read_text(encoding="utf-8"))
FILES = {b.attrs["file"]: "\n".join(b.lines) + "\n" for b in BLOCKS if "file" in b.attrs}


def _prepare(tmp_path, monkeypatch) -> None:
    for name, text in FILES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DISTALLOC_DATA_DIR", str(DATA))
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)


def _run_distalloc(argv: list[str]) -> tuple[int, str, str]:
    from distalloc.cli import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def _run_shell(command: str, cwd: Path) -> tuple[int, str, str]:
    env = {**os.environ, "DISTALLOC_DATA_DIR": str(DATA)}
    p = subprocess.run(["bash", "-c", command], cwd=cwd, capture_output=True, text=True,
                       env=env, timeout=600)
    return p.returncode, p.stdout, p.stderr


def _describe(expected: list[str], actual: str) -> str:
    return ("\n--- README shows:\n" + "\n".join(expected)
            + "\n--- the command printed:\n" + actual)


def run_console(block: Block, tmp_path, monkeypatch) -> None:
    _prepare(tmp_path, monkeypatch)
    for line, command, expected in console_commands(block):
        argv = shlex.split(command, comments=True)
        if argv and argv[0] == "distalloc":
            code, out, err = _run_distalloc(argv[1:])
        else:
            code, out, err = _run_shell(command, tmp_path)
        shown = out if code == 0 else out + err
        assert matches(expected, shown), (
            f"README.md:{line}: `{command}` (exit {code}) no longer prints what the README "
            f"shows{_describe(expected, shown)}" + ("" if code == 0 else f"\n(stderr: {err})"))


def _id(block: Block) -> str:
    return f"README.md:{block.line}:{block.lang}"


CONSOLE = [b for b in BLOCKS if b.lang in ("console", "console-slow")]
PYTHON = [b for b in BLOCKS if b.lang == "python"]


@pytest.mark.parametrize("block", [
    pytest.param(b, marks=[pytest.mark.slow] if b.lang == "console-slow" else [], id=_id(b))
    for b in CONSOLE])
def test_console_examples(block, tmp_path, monkeypatch):
    run_console(block, tmp_path, monkeypatch)


@pytest.mark.parametrize("block", [pytest.param(b, id=_id(b)) for b in PYTHON])
def test_python_examples(block, tmp_path, monkeypatch):
    _prepare(tmp_path, monkeypatch)
    code = compile("\n".join(block.lines) + "\n", f"README.md:{block.line}", "exec")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(code, {"__name__": "__readme__"})
    if block.expected is not None:
        assert matches(block.expected, out.getvalue()), (
            f"README.md:{block.line}: the python example no longer prints what the README "
            f"shows{_describe(block.expected, out.getvalue())}")


# ------------------------------------------------------------------------------------------
# the conventions themselves
# ------------------------------------------------------------------------------------------
def test_quick_start_is_two_commands():
    text = README.read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = parse_blocks(section)
    assert [b.lang for b in blocks][:1] == ["bash"]
    commands = [x for x in blocks[0].lines if x.strip() and not x.lstrip().startswith("#")]
    assert len(commands) == 2, commands


def test_every_shown_command_is_checked():
    """A `$ distalloc ...` line (a command shown with its output) outside a console block,
    or an untyped fence, would be an example nobody runs.  Commands to type without an
    output (templates naming the reader's own files) go in ```bash blocks, without `$ `."""
    for b in BLOCKS:
        assert b.lang, f"README.md:{b.line}: a fenced block needs a language (console, " \
                       "python, text, toml, bash, ...)"
        if b.lang not in ("console", "console-slow"):
            shown = [x for x in b.lines if re.match(r"^\$ ", x)]
            assert not shown, f"README.md:{b.line}: {shown[0]!r} belongs in a console block"
    assert CONSOLE and PYTHON


def test_every_command_is_a_known_distalloc_command():
    """Catches a README example whose command was renamed (it would fail anyway, but this
    names the problem without running anything)."""
    from distalloc.cli import build_parser
    parser = build_parser()
    for b in CONSOLE:
        for line, command, _ in console_commands(b):
            argv = shlex.split(command, comments=True)
            if argv[0] != "distalloc":
                continue
            sub = parser._subparsers._group_actions[0].choices
            assert argv[1] in sub, f"README.md:{line}: unknown command {argv[1]!r}"


# the matcher itself: it must be able to fail
@pytest.mark.parametrize("expected, actual, ok", [
    (["a", "b"], "a\nb\n", True),
    (["a", "b"], "a\nc\n", False),
    (["a", "...", "d"], "a\nb\nc\nd\n", True),
    (["a", "...", "d"], "a\nd\n", True),
    (["a", "...", "d"], "a\nb\n", False),
    (["x ... z"], "x 1.2 s z\n", True),
    (["x ... z"], "x 1\n2 z\n", False),
    (["a  "], "a\n\n\n", True),
    (["a"], "a\nb\n", False),
    (["(1.5)"], "(1x5)\n", False),
])
def test_matcher(expected, actual, ok):
    assert matches(expected, actual) is ok


def test_parser_pairs_python_with_its_output():
    blocks = parse_blocks("```python\nprint(1)\n```\n\n```text\n1\n```\n\nwords\n\n```text\nx\n```\n")
    assert [b.lang for b in blocks] == ["python", "text"]
    assert blocks[0].expected == ["1"] and blocks[1].lines == ["x"]


def test_a_drifted_example_fails(tmp_path, monkeypatch):
    block = Block("console", {}, 1, ["$ distalloc queue approx --servers 10 --needed 5 --rate 2 "
                                     "--json", '{"method": "approx", "mean_jobs": 1.28001, ...}'])
    with pytest.raises(AssertionError, match="no longer prints what the README shows"):
        run_console(block, tmp_path, monkeypatch)


if __name__ == "__main__":  # pragma: no cover - list what would run
    for b in BLOCKS:
        print(_id(b), len(b.lines), "lines", b.attrs)
    sys.exit(0)


def test_benchmark_json_folder_is_made_before_the_run(tmp_path):
    """The README's `pytest bench --benchmark-json=bench-results/all.json` used to run for
    minutes and then crash on the missing folder, losing the results."""
    import importlib.util
    import types
    spec = importlib.util.spec_from_file_location("bench_conftest", ROOT / "bench" / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    target = tmp_path / "bench-results" / "deeper" / "all.json"
    mod.pytest_configure(types.SimpleNamespace(option=types.SimpleNamespace(benchmark_json=target)))
    assert target.parent.is_dir()
    mod.pytest_configure(types.SimpleNamespace(option=types.SimpleNamespace(benchmark_json=None)))
    blocked = tmp_path / "file"
    blocked.write_text("")
    with pytest.raises(pytest.UsageError, match="cannot write"):
        mod.pytest_configure(types.SimpleNamespace(
            option=types.SimpleNamespace(benchmark_json=blocked / "all.json")))
