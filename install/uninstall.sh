#!/usr/bin/env bash
# Remove xl_addin from this Mac: the ribbon add-in, what it set up, the cache, the token
# and the private Python environment. Your workbooks are not touched.
#   ./uninstall.sh [--keep-token]
# `lx-addin uninstall` does the work and the checks (Excel must be closed; the token goes
# last); the environment folder is removed only after it succeeded.
set -euo pipefail

SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=install/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
KEEP=""
for arg in "$@"; do
  case "$arg" in
    --keep-token) KEEP="--keep-token" ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "unknown option: $arg" >&2; exit 2 ;;
  esac
done

PYTHON="$(find_python)" || { echo "Python 3.11+ was not found: it is needed to uninstall." >&2; exit 1; }
VENV="$(preflight uninstall)" || exit 1
if [ ! -x "$VENV/bin/lx-addin" ] || [ ! -f "$VENV/pyvenv.cfg" ]; then
  echo "xl_addin's environment was not found in $VENV; nothing to remove." >&2
  exit 1
fi
# shellcheck disable=SC2086  # KEEP is empty or one word
"$VENV/bin/lx-addin" uninstall $KEEP
rm -rf "$VENV"
rmdir "$(dirname "$VENV")" 2>/dev/null || true
echo "Removed $VENV. Start Excel again: the Lixinger tab is gone."
