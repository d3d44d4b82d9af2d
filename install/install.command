#!/bin/bash
# Double-click in Finder to install xl_addin (macOS).
cd "$(dirname "$0")" || exit 1
./install.sh
echo
read -r -p "Press Return to close this window. " _
