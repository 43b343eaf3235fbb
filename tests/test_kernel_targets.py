"""The hand-vectorised SGD products (kernels/fastk_gradient.h) on every instruction-set
target they are cloned for.  At run time the loader picks the clone of the machine's CPU,
so the Python tests exercise one; this builds the header once per target with the C
compiler and runs tests/c/fastk_harness.c against plain loops.  Targets the CPU cannot run
are skipped."""
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CC = shutil.which("cc") or shutil.which("gcc")
FLAGS = {"x86-64": "sse2", "x86-64-v3": "avx2", "x86-64-v4": "avx512f"}


def _cpu_has(flag):
    try:
        return flag in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


@pytest.mark.skipif(CC is None, reason="no C compiler")
@pytest.mark.parametrize("arch", list(FLAGS))
def test_vector_kernels_on_each_target(arch, tmp_path):
    if not _cpu_has(FLAGS[arch]):
        pytest.skip(f"this CPU cannot run {arch}")
    exe = tmp_path / "harness"
    build = subprocess.run([CC, "-O3", f"-march={arch}", "-DFASTK_CLONES=", "-I",
                            str(ROOT / "kernels"), str(ROOT / "tests" / "c" / "fastk_harness.c"),
                            "-o", str(exe), "-lm"], capture_output=True, text=True)
    if build.returncode and "march" in build.stderr:
        pytest.skip(f"the compiler does not know -march={arch}")
    assert build.returncode == 0, build.stderr
    out = subprocess.run([str(exe)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout
