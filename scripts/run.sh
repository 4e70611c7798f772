#!/usr/bin/env bash
# The main job on a new machine, as far as kubemoe goes today: set up and build, write the tiny
# random DeepSeek-V2 checkpoint, and inspect it (and the released DeepSeek-V2 config).
# Later issues turn this into generating text, then into the local router + workers cluster.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash scripts/setup.sh
out=${MODEL_DIR:-$root/build/models/tiny}
build/kubemoe make-model --preset tiny --out "$out" --seed 1
build/kubemoe inspect "$out"
echo
build/kubemoe inspect tests/data/configs/deepseek-v2.json --vs-deepseek-67b
