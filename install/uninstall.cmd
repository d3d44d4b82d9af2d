@echo off
setlocal
rem Double-click to remove xl_addin (Windows).
powershell.exe -NoProfile -ExecutionPolicy Bypass -File "%~dp0uninstall.ps1" %*
set "XL_ADDIN_RC=%ERRORLEVEL%"
pause
exit /b %XL_ADDIN_RC%
