"""Helpers shared by the tests that drive the CLI in-process and read what it wrote."""
import csv
from pathlib import Path

from distalloc.cli import main


def cli(capsys, *argv):
    """Run ``distalloc ARGV`` in-process: (exit status, stdout, stderr lines)."""
    status = main(list(argv))
    out = capsys.readouterr()
    return status, out.out, out.err.strip().splitlines()


def assert_one_line_error(capsys, *argv, needle=""):
    """Run the CLI and demand exit 2, nothing on stdout and one 'distalloc: error:' line."""
    status, out, err = cli(capsys, *argv)
    assert status == 2 and out == "", (status, out, err)
    assert len(err) == 1 and err[0].startswith("distalloc: error: "), err
    assert needle in err[0], err[0]
    assert "Traceback" not in err[0]
    return err[0]


def one_error_line(capsys, needle=""):
    """What a command already run printed: exactly one 'distalloc: error:' line on stderr."""
    cap = capsys.readouterr()
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("distalloc: error: "), cap.err
    assert needle in lines[0], lines[0]
    return cap


def rows(path):
    """The rows of a CSV file as dicts."""
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def write_file(tmp_path, text, name="s.toml") -> Path:
    p = Path(tmp_path) / name
    p.write_text(text)
    return p


# A queue.approx sweep whose last two rates are unstable (capacity n mu / k = 2): they must
# become status rows while the stable points complete.
UNSTABLE_SWEEP = """
[sweep]
target = "queue.approx"
[fixed]
servers = 4
needed = 2
[grid]
rate = [1.0, 1.5, 1.9, 2.0, 2.5]
"""
