#!/usr/bin/env bash
# One-command set-up for a new Debian machine: system packages, the Python test-tool venv, and the
# build. Idempotent: re-running only installs what is missing and rebuilds what changed.
#   scripts/setup.sh            packages + venv + build
#   SKIP_BUILD=1 scripts/setup.sh   packages + venv only
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

debian_packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  libyaml-cpp-dev libcpprest-dev libssl-dev libopenblas-dev nlohmann-json3-dev libpcre2-dev
  libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev
  clang libclang-rt-14-dev
  openssl  # the CLI makes throw-away certificates for the mutual-TLS tests
  python3 python3-venv kubectl
  # Images and the container tests (scripts/build_images.sh, tests/py/containers_e2e_test.py):
  # podman with runc (crun fails on hybrid-cgroup hosts), its bridge network (netavark needs
  # iptables; aardvark-dns gives pods their Service DNS names), debootstrap for the base image.
  podman runc netavark aardvark-dns iptables debootstrap
)

missing=()
for p in "${debian_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo_cmd=(); [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Python tools for tests only (parsers and clients we did not write), pinned.
venv="$root/.venv"
python=${PYTHON:-python3}
if [[ ! -x $venv/bin/python ]]; then
  "$python" -m venv "$venv"
fi
if ! cmp -s tools/requirements-test.txt "$venv/.requirements-test.txt"; then
  "$venv/bin/pip" install -q --disable-pip-version-check -r tools/requirements-test.txt
  cp tools/requirements-test.txt "$venv/.requirements-test.txt"
fi

# lm-evaluation-harness, the evaluation client tests/py/lm_eval_test.py drives, in its own venv:
# its pins (transformers needs huggingface_hub < 1) would fight the test venv's.
lm_eval_venv="$root/.venv-lm-eval"
if [[ ! -x $lm_eval_venv/bin/python ]]; then
  "$python" -m venv "$lm_eval_venv"
fi
if ! cmp -s tools/requirements-lm-eval.txt "$lm_eval_venv/.requirements-lm-eval.txt"; then
  "$lm_eval_venv/bin/pip" install -q --disable-pip-version-check -r tools/requirements-lm-eval.txt
  cp tools/requirements-lm-eval.txt "$lm_eval_venv/.requirements-lm-eval.txt"
fi

# checkov, the Kubernetes manifest scanner tests/py/checkov_test.py runs, in its own venv too: it
# pins packaging, jsonschema, boto3 and more that would fight the test venv's.
checkov_venv="$root/.venv-checkov"
if [[ ! -x $checkov_venv/bin/python ]]; then
  "$python" -m venv "$checkov_venv"
fi
if ! cmp -s tools/requirements-checkov.txt "$checkov_venv/.requirements-checkov.txt"; then
  "$checkov_venv/bin/pip" install -q --disable-pip-version-check -r tools/requirements-checkov.txt
  cp tools/requirements-checkov.txt "$checkov_venv/.requirements-checkov.txt"
fi

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  build=${BUILD_DIR:-build}
  # ccache then keys on paths relative to the checkout, so clones at other paths share its cache.
  export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$root}
  # Release, as users and the images build it, so CI tests what ships; warnings are errors here
  # (developers and CI), unlike a user's plain Release configure.
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-Release} \
    -DKUBEMOE_WERROR=${KUBEMOE_WERROR:-ON} -DKUBEMOE_PYTHON="$venv/bin/python"
  cmake --build "$build" -j"$(nproc)"
fi
