#!/usr/bin/env bash
# Install xl_addin for Excel on macOS (on Linux: the command line only): run once.
#   ./install.sh [--no-token] [--schedule | --no-schedule]
# Finds Python, asks xl_addin whether Excel is closed and where the private environment goes
# (~/.xl_addin/venv: a path without spaces, which xlwings' AppleScript needs), creates it,
# installs xl_addin, and runs `lx-addin install`, which does the rest (the ribbon add-in,
# RunPython's AppleScript, your token in the Keychain); then `lx-addin schedule offer`, which
# asks whether to take a snapshot every day (--schedule: yes without asking, --no-schedule: no).
set -euo pipefail

SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=install/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
TOKEN_ARG=""
SCHEDULE_ARG=""
for arg in "$@"; do
  case "$arg" in
    --no-token) TOKEN_ARG="--no-token" ;;
    --schedule) SCHEDULE_ARG="--yes" ;;
    --no-schedule) SCHEDULE_ARG="--no" ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "unknown option: $arg" >&2; exit 2 ;;
  esac
done

say() { printf '\n==> %s\n' "$*"; }

say "Looking for Python 3.11 or newer"
if ! PYTHON="$(find_python)"; then
  echo "Python 3.11+ was not found."
  if command -v brew >/dev/null 2>&1; then
    read -r -p "Install it with Homebrew now (brew install python@3.12)? [y/N] " answer
    if [ "${answer:-N}" = "y" ] || [ "${answer:-N}" = "Y" ]; then
      brew install python@3.12
      PYTHON="$(find_python)" || { echo "Python still not found; open a new Terminal and run this again." >&2; exit 1; }
    else
      exit 1
    fi
  else
    echo "Install it from https://www.python.org/downloads/macos/ and run this script again." >&2
    exit 1
  fi
fi
echo "using $PYTHON ($("$PYTHON" --version))"

VENV="$(preflight install)" || exit 1

say "Creating a private environment in $VENV"
mkdir -p "$(dirname "$VENV")"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "$SOURCE"

say "Setting up Excel: the Lixinger ribbon add-in, your token"
# shellcheck disable=SC2086  # TOKEN_ARG is empty or one word
"$VENV/bin/lx-addin" install $TOKEN_ARG

say "History: a snapshot every day, without opening Excel"
# Python decides (already registered? a terminal to ask in?); the install is done either way
# shellcheck disable=SC2086  # SCHEDULE_ARG is empty or one word
"$VENV/bin/lx-addin" schedule offer $SCHEDULE_ARG ||
  echo "The install is done; to take a snapshot every day later: \"$VENV/bin/lx-addin\" schedule on" >&2

cat <<MSG

Done. Start Excel: the Lixinger tab is on the ribbon. Open templates/mm_ah.xlsx from
$SOURCE and click Lixinger > Refresh.
Note: macOS Excel has no Python formulas (=LX_MMAH is Windows only); use Refresh.
From a terminal:  "$VENV/bin/lx-addin" fetch 700
To remove everything:  $SOURCE/install/uninstall.sh
MSG
