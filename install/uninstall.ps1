#Requires -Version 5.1
<#
.SYNOPSIS
    Remove xl_addin from this PC: the ribbon add-in, the settings it changed (put back as they
    were), the cache, the token, and the private Python environment. Workbooks are not touched.
.DESCRIPTION
    "lx-addin uninstall" does the work and the checks (Excel must be closed; a file that cannot be
    removed stops it with everything as it was; the token goes last). Only then is the environment
    folder removed here.
.PARAMETER KeepToken
    Leave the Lixinger token in Windows Credential Manager.
#>
[CmdletBinding()]
param([switch]$KeepToken)
$ErrorActionPreference = 'Stop'
# where install.ps1 put the environment (xl_addin.install_paths.env_dir decides it)
$AppDir = Join-Path $env:LOCALAPPDATA 'xl_addin'
$Venv = Join-Path $AppDir 'venv'
$LxAddin = Join-Path $Venv 'Scripts\lx-addin.exe'

if (-not (Test-Path -LiteralPath $LxAddin)) {
    Write-Host "The xl_addin environment was not found in $Venv; nothing to remove."
    exit 1
}
$uninstallArgs = @('uninstall')
if ($KeepToken) { $uninstallArgs += '--keep-token' }
& $LxAddin @uninstallArgs
if ($LASTEXITCODE -ne 0) { exit 1 }

try {
    Remove-Item -Recurse -Force -LiteralPath $Venv
    if (-not (Get-ChildItem -Force -LiteralPath $AppDir)) { Remove-Item -Force -LiteralPath $AppDir }
} catch {
    Write-Host "Could not remove $Venv (a program still uses it): restart Windows and delete that folder." -ForegroundColor Yellow
    exit 1
}
Write-Host 'xl_addin is removed. Start Excel again: the Lixinger tab is gone.' -ForegroundColor Green
