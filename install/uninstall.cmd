@echo off
rem Double-click to remove xl_addin (Windows).
powershell.exe -NoProfile -ExecutionPolicy Bypass -File "%~dp0uninstall.ps1" %*
pause
