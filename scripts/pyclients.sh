#!/usr/bin/env bash
# Installs the official OpenAI Python client for the gateway's tests (a
# real client over the gateway, as users run it) and prints
#   export SKYWARD_TEST_PYTHON=…
# for `eval`. Packages come from PyPI.
set -euo pipefail
PY=${PYTHON:-python3}
if ! "$PY" -c 'import openai' >/dev/null 2>&1; then
  "$PY" -m pip install -q --disable-pip-version-check 'openai>=1.50,<3' >&2
fi
"$PY" -c 'import openai' >&2
echo "export SKYWARD_TEST_PYTHON=$("$PY" -c 'import sys; print(sys.executable)')"
