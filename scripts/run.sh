#!/usr/bin/env bash
# The main job on a new machine, as far as kubemoe goes today: set up and build, write the tiny
# random DeepSeek-V2 checkpoint, inspect it, and generate text from it with the single-process
# CPU engine. (A later issue turns this into the local router + workers cluster.)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash scripts/setup.sh
out=${MODEL_DIR:-$root/build/models/tiny}
build/kubemoe make-model --preset tiny --out "$out" --seed 1
build/kubemoe inspect "$out"
echo
build/kubemoe inspect tests/data/configs/deepseek-v2.json --vs-deepseek-67b
echo
# Random weights: the text is gibberish, but every layer of the model runs.
build/kubemoe generate --model "$out" --prompt "${PROMPT:-Mixture-of-Experts models route each token}" \
  --max-tokens "${MAX_TOKENS:-32}" --temperature 0.8 --seed 7
