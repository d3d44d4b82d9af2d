#Requires -Version 5.1
<#
.SYNOPSIS
    Install xl_addin for Excel on Windows: run once (double-click install.cmd).
.DESCRIPTION
    Finds (or offers to install) Python 3.11+, creates a private environment under
    %LOCALAPPDATA%\xl_addin, installs xl_addin and the xlwings add-in, builds the
    Lixinger ribbon add-in into XLSTART, imports the =LX_MMAH functions into it so they
    work in every workbook, and asks for your Lixinger token (kept in Windows
    Credential Manager). Runs on Windows PowerShell 5.1 with no extra modules.
.PARAMETER NoToken
    Do not ask for the token now (run "lx-addin token set" later).
.PARAMETER TrustVBA
    Turn on "Trust access to the VBA project object model" without asking.
#>
[CmdletBinding()]
param(
    [switch]$NoToken,
    [switch]$TrustVBA
)
$ErrorActionPreference = 'Stop'
$Source = Split-Path -Parent $PSScriptRoot
$AppDir = Join-Path $env:LOCALAPPDATA 'xl_addin'
$Venv = Join-Path $AppDir 'venv'
$VenvPython = Join-Path $Venv 'Scripts\python.exe'
$LxAddin = Join-Path $Venv 'Scripts\lx-addin.exe'
$Xlwings = Join-Path $Venv 'Scripts\xlwings.exe'

function Say([string]$Text) { Write-Host ''; Write-Host "==> $Text" -ForegroundColor Cyan }

function Invoke-Checked([string]$Exe, [string[]]$Arguments, [string]$What) {
    & $Exe @Arguments
    if ($LASTEXITCODE -ne 0) { throw "$What failed (exit code $LASTEXITCODE)" }
}

function Test-Python([string]$Exe, [string[]]$Prefix) {
    try {
        & $Exe @Prefix -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>$null | Out-Null
        return ($LASTEXITCODE -eq 0)
    } catch { return $false }
}

function Find-Python {
    foreach ($v in @('3.13', '3.12', '3.11')) {
        if ((Get-Command py -ErrorAction SilentlyContinue) -and (Test-Python 'py' @("-$v"))) {
            $exe = & py "-$v" -c 'import sys; print(sys.executable)'
            return $exe.Trim()
        }
    }
    $python = Get-Command python -ErrorAction SilentlyContinue
    # the Microsoft Store stub under WindowsApps is not a Python
    if ($python -and ($python.Source -notlike '*WindowsApps*') -and (Test-Python $python.Source @())) {
        return $python.Source
    }
    return $null
}

Say 'Looking for Python 3.11 or newer'
$Python = Find-Python
if (-not $Python) {
    Write-Host 'Python 3.11+ was not found.'
    if (Get-Command winget -ErrorAction SilentlyContinue) {
        $answer = Read-Host 'Install Python 3.12 for this user with winget now? [y/N]'
        if ($answer -eq 'y' -or $answer -eq 'Y') {
            Invoke-Checked 'winget' @('install', '--id', 'Python.Python.3.12', '--scope', 'user', '-e',
                '--accept-package-agreements', '--accept-source-agreements') 'winget install'
            $env:Path = [Environment]::GetEnvironmentVariable('Path', 'User') + ';' + $env:Path
            $Python = Find-Python
        }
    }
    if (-not $Python) {
        throw 'Install Python 3.11+ from https://www.python.org/downloads/windows/ (tick "Add python.exe to PATH"), then run this again.'
    }
}
Write-Host "using $Python"

Say "Creating a private environment in $Venv"
New-Item -ItemType Directory -Force -Path $AppDir | Out-Null
Invoke-Checked $Python @('-m', 'venv', $Venv) 'creating the environment'
Invoke-Checked $VenvPython @('-m', 'pip', 'install', '--quiet', '--upgrade', 'pip') 'upgrading pip'
Invoke-Checked $VenvPython @('-m', 'pip', 'install', '--quiet', $Source) 'installing xl_addin'

Say 'Installing the xlwings add-in'
Invoke-Checked $Xlwings @('addin', 'install') 'xlwings addin install'

Say 'Trust access to the VBA project object model'
$ImportUdfs = $false
$officeKeys = Get-ChildItem 'HKCU:\Software\Microsoft\Office' -ErrorAction SilentlyContinue |
    Where-Object { $_.PSChildName -match '^\d+\.\d+$' -and (Test-Path (Join-Path $_.PSPath 'Excel')) }
if (-not $officeKeys) {
    Write-Host 'Excel settings not found (has Excel been started once?); skipping the function import.'
} else {
    $trusted = $true
    foreach ($k in $officeKeys) {
        $sec = Join-Path $k.PSPath 'Excel\Security'
        $value = (Get-ItemProperty -Path $sec -Name AccessVBOM -ErrorAction SilentlyContinue).AccessVBOM
        if ($value -ne 1) { $trusted = $false }
    }
    if (-not $trusted -and -not $TrustVBA) {
        Write-Host 'To put =LX_MMAH into every workbook, Excel must allow access to the VBA project object model'
        Write-Host '(File > Options > Trust Center > Trust Center Settings > Macro Settings). It can be turned off again afterwards.'
        $answer = Read-Host 'Turn it on now? [y/N]'
        $TrustVBA = ($answer -eq 'y' -or $answer -eq 'Y')
    }
    if ($trusted -or $TrustVBA) {
        foreach ($k in $officeKeys) {
            $sec = Join-Path $k.PSPath 'Excel\Security'
            New-Item -Path $sec -Force | Out-Null
            Set-ItemProperty -Path $sec -Name AccessVBOM -Value 1 -Type DWord
        }
        $ImportUdfs = $true
    } else {
        Write-Host 'Skipped: the Refresh button works; for the formulas, turn the setting on and run this again.'
    }
}

Say 'Setting up Excel: config, the Lixinger ribbon add-in, your token'
$installArgs = @('install')
if ($ImportUdfs) { $installArgs += '--import-udfs' }
if ($NoToken) { $installArgs += '--no-token' }
Invoke-Checked $LxAddin $installArgs 'lx-addin install'

Write-Host ''
Write-Host 'Done. Restart Excel: the Lixinger tab is on the ribbon, and =LX_MMAH(A2:A50,"mm_sh_nba_d20") works in any workbook.' -ForegroundColor Green
Write-Host "Open $Source\templates\mm_ah.xlsx and click Lixinger > Refresh."
Write-Host "To remove everything: $Source\install\uninstall.cmd"
