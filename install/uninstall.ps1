#Requires -Version 5.1
<#
.SYNOPSIS
    Remove xl_addin from this PC: the ribbon add-in, the xlwings add-in, their settings,
    the token, the cache and the private Python environment. Workbooks are not touched.
.PARAMETER KeepToken
    Leave the Lixinger token in Windows Credential Manager.
#>
[CmdletBinding()]
param([switch]$KeepToken)
$ErrorActionPreference = 'Stop'
$AppDir = Join-Path $env:LOCALAPPDATA 'xl_addin'
$Venv = Join-Path $AppDir 'venv'
$LxAddin = Join-Path $Venv 'Scripts\lx-addin.exe'
$Xlwings = Join-Path $Venv 'Scripts\xlwings.exe'

if (Test-Path $LxAddin) {
    $uninstallArgs = @('uninstall')
    if ($KeepToken) { $uninstallArgs += '--keep-token' }
    & $LxAddin @uninstallArgs
    if (Test-Path $Xlwings) { & $Xlwings addin remove }
}
$xlstart = Join-Path $env:APPDATA 'Microsoft\Excel\XLSTART\xl_addin.xlam'
if (Test-Path $xlstart) { Remove-Item -Force $xlstart }
if (Test-Path $AppDir) { Remove-Item -Recurse -Force $AppDir }
Write-Host 'xl_addin is removed. Restart Excel to drop the Lixinger tab.' -ForegroundColor Green
Write-Host 'If you turned on "Trust access to the VBA project object model" for the install, you may turn it off again.'
