#!/usr/bin/env bash
# Remove xl_addin from this Mac: the ribbon add-in, its settings, the token, the cache
# and the private Python environment. Your workbooks are not touched.
#   ./uninstall.sh [--keep-token]
set -euo pipefail

# shellcheck source=install/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
KEEP=""
for arg in "$@"; do
  case "$arg" in
    --keep-token) KEEP="--keep-token" ;;
    -h|--help) sed -n '2,4p' "$0"; exit 0 ;;
    *) echo "unknown option: $arg" >&2; exit 2 ;;
  esac
done

if [ -x "$VENV/bin/lx-addin" ]; then
  # shellcheck disable=SC2086  # KEEP is empty or one word
  "$VENV/bin/lx-addin" uninstall $KEEP
  if [ "$(uname -s)" = "Darwin" ]; then
    "$VENV/bin/xlwings" addin remove || true
  fi
fi
rm -rf "$APP_DIR"
echo "Removed $APP_DIR. Restart Excel to drop the Lixinger tab."
