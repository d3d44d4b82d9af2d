#Requires -Version 5.1
<#
.SYNOPSIS
    Install xl_addin for Excel on Windows: run once (double-click install.cmd).
.DESCRIPTION
    Finds (or offers to install) Python 3.11+, asks xl_addin (python -m xl_addin.preflight) whether
    Excel is closed and where the private environment goes (%LOCALAPPDATA%\xl_addin\venv), creates it,
    installs xl_addin, then runs "lx-addin install", which does everything else: the Lixinger ribbon
    add-in in XLSTART, the =LX_MMAH functions (asking before it turns on "Trust access to the VBA
    project object model"), and your token (kept in Windows Credential Manager); last,
    "lx-addin schedule offer" asks whether to take a snapshot every day (Task Scheduler).
    This script changes no registry value and no Excel setting itself.
    Runs on Windows PowerShell 5.1 with no extra modules.
.PARAMETER NoToken
    Do not ask for the token now (run "lx-addin token set" later).
.PARAMETER TrustVBA
    Turn on "Trust access to the VBA project object model" without asking.
.PARAMETER NoFormulas
    Do not import the =LX_MMAH functions (the Refresh button still works).
.PARAMETER Schedule
    Take a snapshot every day (lx-addin schedule on) without asking.
.PARAMETER NoSchedule
    Do not ask about the daily snapshot, and do not register it.
#>
[CmdletBinding()]
param(
    [switch]$NoToken,
    [switch]$TrustVBA,
    [switch]$NoFormulas,
    [switch]$Schedule,
    [switch]$NoSchedule
)
$ErrorActionPreference = 'Stop'
$Source = Split-Path -Parent $PSScriptRoot

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

# Python decides: is Excel closed, where does the environment go (nothing is changed before this)
$env:PYTHONPATH = $Source
$Venv = & $Python -m xl_addin.preflight install
$code = $LASTEXITCODE
Remove-Item Env:PYTHONPATH
if ($code -ne 0) { exit 1 }
$Venv = "$Venv".Trim()
$VenvPython = Join-Path $Venv 'Scripts\python.exe'
$LxAddin = Join-Path $Venv 'Scripts\lx-addin.exe'

Say "Creating a private environment in $Venv"
Invoke-Checked $Python @('-m', 'venv', $Venv) 'creating the environment'
Invoke-Checked $VenvPython @('-m', 'pip', 'install', '--quiet', '--upgrade', 'pip') 'upgrading pip'
Invoke-Checked $VenvPython @('-m', 'pip', 'install', '--quiet', $Source) 'installing xl_addin'

Say 'Setting up Excel: the Lixinger ribbon add-in, the formulas, your token'
$installArgs = @('install')
if ($TrustVBA) { $installArgs += '--trust-vba' }
if ($NoFormulas) { $installArgs += '--no-udfs' }
if ($NoToken) { $installArgs += '--no-token' }
Invoke-Checked $LxAddin $installArgs 'lx-addin install'

# Python decides (already registered? a console to ask in?); the install is done either way
Say 'History: a snapshot every day, without opening Excel'
$scheduleArgs = @('schedule', 'offer')
if ($Schedule) { $scheduleArgs += '--yes' }
if ($NoSchedule) { $scheduleArgs += '--no' }
& $LxAddin @scheduleArgs
if ($LASTEXITCODE -ne 0) {
    Write-Host "The install is done; to take a snapshot every day later: $LxAddin schedule on" -ForegroundColor Yellow
}

Write-Host ''
Write-Host 'Done. Start Excel: the Lixinger tab is on the ribbon.' -ForegroundColor Green
Write-Host "Open $Source\templates\mm_ah.xlsx and click Lixinger > Refresh."
Write-Host "To remove everything: $Source\install\uninstall.cmd"
