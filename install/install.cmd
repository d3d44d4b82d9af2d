@echo off
rem Double-click to install xl_addin for Excel (Windows).
powershell.exe -NoProfile -ExecutionPolicy Bypass -File "%~dp0install.ps1" %*
pause
