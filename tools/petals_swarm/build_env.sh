#!/usr/bin/env bash
# Build the PETALS 2.2 virtual environment the swarm harness runs in, as
# ../shared/recipes/petals-loopback.md says.  It is its OWN venv, outside the repository:
# PETALS's pins (hivemind 1.1.10.post2, transformers<4.35, pydantic<2, torch 2.1.2) clash
# with distalloc's.  About 5.4 GB (torch from PyPI pulls the unused CUDA 12 wheels) and
# 5-15 minutes, mostly downloads.  Idempotent: an existing working venv is kept.
#
#   bash tools/petals_swarm/build_env.sh [VENV]          (default /work/petals-env)
#
# hivemind 1.1.10.post2 ships only an sdist whose setup.py downloads the p2pd binary from a
# code host that is unreachable here; the Linux x86-64 p2pd inside the hivemind 1.1.12
# wheel (same p2pd.proto) works, so it is put into the unpacked sdist and its sha256 written
# into setup.py before building.
set -euo pipefail
VENV="${1:-${PETALS_ENV:-/work/petals-env}}"
PY="$VENV/bin/python"
if [ -x "$PY" ] && "$PY" -c "import petals, hivemind, torch; assert petals.__version__.startswith('2.2')" 2>/dev/null; then
    echo "PETALS venv at $VENV is ready"; exit 0
fi
[ "$(uname -m)" = x86_64 ] || { echo "build_env.sh: only Linux x86-64 is supported (p2pd binary)" >&2; exit 2; }
python3 -m venv "$VENV"
PIP=("$PY" -m pip --disable-pip-version-check -q)
"${PIP[@]}" install --upgrade pip
"${PIP[@]}" install "setuptools<81" wheel grpcio-tools "numpy<2"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
# the sdist (its metadata step needs pkg_resources, hence --no-build-isolation) and the wheel
"${PIP[@]}" download --no-deps --no-binary :all: --no-build-isolation hivemind==1.1.10.post2 -d "$WORK"
"${PIP[@]}" download --no-deps --only-binary :all: --platform manylinux2014_x86_64 \
    --python-version 3.11 hivemind==1.1.12 -d "$WORK"
tar -xzf "$WORK"/hivemind-1.1.10.post2.tar.gz -C "$WORK"
SRC="$WORK/hivemind-1.1.10.post2"
"$PY" - "$WORK"/hivemind-1.1.12-*.whl "$SRC" <<'PYEOF'
import hashlib, os, re, sys, zipfile
wheel, src = sys.argv[1], sys.argv[2]
target = os.path.join(src, "hivemind", "hivemind_cli", "p2pd")
with zipfile.ZipFile(wheel) as z, open(target, "wb") as out:
    out.write(z.read("hivemind/hivemind_cli/p2pd"))
os.chmod(target, 0o755)
digest = hashlib.sha256(open(target, "rb").read()).hexdigest()
setup = os.path.join(src, "setup.py")
text = open(setup).read()
new, n = re.subn(r'("p2pd-linux-amd64":\s*")[0-9a-f]{64}(")', r"\g<1>" + digest + r"\g<2>", text)
assert n == 1, "p2pd-linux-amd64 hash not found in hivemind's setup.py"
open(setup, "w").write(new)
print("p2pd from", os.path.basename(wheel), "sha256", digest)
PYEOF
"${PIP[@]}" install --no-build-isolation "$SRC"
# newer torch: cannot import name '_refresh_per_optimizer_state';
# newer accelerate: cannot import name 'split_torch_state_dict_into_shards'
"${PIP[@]}" install petals==2.2.0.post1 torch==2.1.2 accelerate==0.22.0 multiaddr==0.0.9 "numpy<2"
"$PY" -c "import petals, hivemind, torch; print('petals', petals.__version__, 'hivemind', hivemind.__version__, 'torch', torch.__version__)"
