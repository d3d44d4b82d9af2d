#!/bin/bash
# Double-click in Finder to remove xl_addin (macOS).
cd "$(dirname "$0")" || exit 1
./uninstall.sh
echo
read -r -p "Press Return to close this window. " _
