@echo off
setlocal
rem Double-click to install xl_addin for Excel (Windows).
powershell.exe -NoProfile -ExecutionPolicy Bypass -File "%~dp0install.ps1" %*
set "XL_ADDIN_RC=%ERRORLEVEL%"
pause
exit /b %XL_ADDIN_RC%
