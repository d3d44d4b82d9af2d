# Shared by install.sh and uninstall.sh (sourced): find a Python 3.11+.
# Where the environment goes is decided in Python (python -m xl_addin.preflight).
# shellcheck shell=bash

find_python() {
  local candidate
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

# preflight install|uninstall: prints the environment's folder, or explains on stderr and fails
preflight() {
  PYTHONPATH="$SOURCE" "$PYTHON" -m xl_addin.preflight "$1"
}
