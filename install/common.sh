# Shared by install.sh and uninstall.sh (sourced): where xl_addin lives on this machine.
# shellcheck shell=bash
if [ "$(uname -s)" = "Darwin" ]; then
  APP_DIR="$HOME/Library/Application Support/xl_addin"
else
  APP_DIR="${XDG_DATA_HOME:-$HOME/.local/share}/xl_addin"
fi
VENV="$APP_DIR/venv"
export APP_DIR VENV
