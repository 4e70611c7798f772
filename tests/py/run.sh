#!/bin/sh
# Runs one Python-client test with the test venv's Python: tests/py/run.sh PYTHON SCRIPT [ARGS].
# When that Python is missing (a build configured before `bash scripts/setup.sh` made the venv)
# the test is skipped, exit status 77 (ctest's SKIP_RETURN_CODE), with a message saying why.
python=$1
shift
if [ ! -x "$python" ]; then
  echo "SKIPPED: the test venv's Python $python is missing; make it with: bash scripts/setup.sh"
  exit 77
fi
exec "$python" "$@"
