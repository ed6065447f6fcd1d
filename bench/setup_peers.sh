#!/usr/bin/env bash
# Installs the peer model server(s) for bench.compare into their OWN virtualenvs under
# bench/ (gitignored), so their pins never touch requirements.txt. Idempotent.
#   bash bench/setup_peers.sh            # KServe's Python model server
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
# Same ONNX Runtime as the service, so the comparison measures the servers, not the runtime.
ORT="$(grep -E '^onnxruntime==' ../requirements.txt | head -1)"
VENV=.venv-kserve
if [ ! -x "$VENV/bin/python" ] || [ ! -f "$VENV/.installed" ]; then
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet "kserve==0.21.0" "$ORT"
  touch "$VENV/.installed"
fi
"$VENV/bin/python" -c 'import kserve, onnxruntime; print("kserve", kserve.__version__ if hasattr(kserve, "__version__") else "?", "onnxruntime", onnxruntime.__version__)'
