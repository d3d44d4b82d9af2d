"""Settings Excel can see: a TOML file in the user's config folder, the environment over it,
`lx-addin config`, and one clear line for every bad value (file, key, what is allowed)."""

import os
from pathlib import Path

import pytest

import excel_harness as xh
from conftest import run_cli
from xl_addin.config import Settings, config_path, resolve
from xl_addin.exceptions import ConfigError


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    path = tmp_path / "conf" / "settings.toml"
    monkeypatch.setenv("XL_ADDIN_CONFIG", str(path))
    for var in ("LIXINGER_TIMEOUT", "LIXINGER_BUDGET", "XL_ADDIN_MAX_AGE", "XL_ADDIN_CACHE_DIR"):
        monkeypatch.delenv(var, raising=False)
    return path


def test_default_path_is_the_user_config_folder(monkeypatch):
    from platformdirs import user_config_path

    monkeypatch.delenv("XL_ADDIN_CONFIG")
    assert config_path() == user_config_path("xl_addin", appauthor=False) / "settings.toml"


def test_environment_over_file_over_default(cfg, monkeypatch, tmp_path):
    assert Settings.load().timeout == 30.0
    cfg.parent.mkdir()
    cfg.write_text('timeout = 20\nbudget = 45.5\ncache_dir = "~/lx"\nprofile = "team"\n', "utf-8")
    s = Settings.from_env()  # the old name still works
    assert (s.timeout, s.budget, s.profile) == (20.0, 45.5, "team")
    assert s.cache_dir == Path("~/lx").expanduser()
    monkeypatch.setenv("LIXINGER_TIMEOUT", "25")
    sources = {k: (v, src) for k, v, src in resolve()}
    assert sources["timeout"] == (25.0, "environment LIXINGER_TIMEOUT")
    assert sources["budget"] == (45.5, f"file {cfg}")
    assert sources["max_age"] == (3600.0, "default")
    assert Settings.load(timeout=3.0).timeout == 3.0  # an explicit option wins over both


@pytest.mark.parametrize("text, words", [
    ("timeout = ", ["not valid TOML"]),
    ("timout = 20", ["key 'timout'", "unknown setting", "timeout"]),
    ('timeout = "soon"', ["key 'timeout'", "'soon'", "number of seconds above 0"]),
    ("budget = 0", ["key 'budget'", "too small", "above 0"]),
    ("budget = inf", ["key 'budget'", "not a usable number"]),
    ("max_age = -1", ["key 'max_age'", "0 or more"]),
    ('base_url = "http://example.com/api"', ["key 'base_url'", "plain http"]),
    ('profile = "a b"', ["key 'profile'", "profile name"]),
])
def test_bad_file_is_one_line_naming_file_key_and_rule(cfg, text, words):
    cfg.parent.mkdir()
    cfg.write_text(text + "\n", "utf-8")
    with pytest.raises(ConfigError) as err:
        Settings.load()
    msg = str(err.value)
    assert "\n" not in msg and str(cfg) in msg
    for w in words:
        assert w in msg, msg


@pytest.mark.parametrize("var, raw, words", [
    ("LIXINGER_TIMEOUT", "inf", ["not a usable number"]),
    ("LIXINGER_BUDGET", "inf", ["not a usable number"]),
    ("LIXINGER_BUDGET", "1e400", ["not a usable number"]),
    ("LIXINGER_BUDGET", "0", ["too small", "above 0"]),
    ("LIXINGER_TIMEOUT", "nan", ["not a usable number"]),
    ("XL_ADDIN_MAX_AGE", "soon", ["not a number"]),
])
def test_bad_environment_values_through_the_cli(cfg, var, raw, words):
    """Used to be an OverflowError (inf) or a silent 60 s (LIXINGER_BUDGET=0)."""
    r = run_cli("fetch", "700", env={var: raw, "LIXINGER_TOKEN": "x" * 20})
    assert r.returncode == 1 and r.stdout == ""
    line = r.stderr.strip()
    assert len(line.splitlines()) == 1 and var in line and "Overflow" not in line, line
    for w in words:
        assert w in line, line


def test_config_cli_set_show_unset_path(cfg):
    env = {"XL_ADDIN_CONFIG": str(cfg)}
    r = run_cli("config", "path", env=env)
    assert r.returncode == 0 and str(cfg) in r.stdout and "not created yet" in r.stdout
    r = run_cli("config", "set", "timeout", "12", env=env)
    assert r.returncode == 0 and cfg.exists(), r.stderr
    r = run_cli("config", "set", "LIXINGER_BUDGET", "40", env=env)  # the variable's name works too
    assert r.returncode == 0
    r = run_cli("config", "show", env=dict(env, XL_ADDIN_MAX_AGE="10"))
    rows = {line.split()[0]: line for line in r.stdout.splitlines()[2:8]}
    assert "12.0" in rows["timeout"] and f"file {cfg}" in rows["timeout"]
    assert "40.0" in rows["budget"] and "file" in rows["budget"]
    assert "10.0" in rows["max_age"] and "environment XL_ADDIN_MAX_AGE" in rows["max_age"]
    assert rows["profile"].split()[1:] == ["default", "default"]
    before = cfg.read_bytes()
    for bad in (["set", "timeout", "inf"], ["set", "timeout", "0"], ["set", "colour", "red"], ["set", "timeout"]):
        r = run_cli("config", *bad, env=env)
        assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, (bad, r.stderr)
        assert cfg.read_bytes() == before, "a refused value changes nothing"
    r = run_cli("config", "unset", "timeout", env=env)
    assert r.returncode == 0 and "timeout" not in cfg.read_text()
    assert Settings.load({"XL_ADDIN_CONFIG": str(cfg)}).budget == 40.0


def test_config_set_refuses_a_malformed_file_without_touching_it(cfg):
    cfg.parent.mkdir()
    cfg.write_text("timeout = [\n", "utf-8")
    r = run_cli("config", "set", "budget", "20", env={"XL_ADDIN_CONFIG": str(cfg)})
    assert r.returncode == 1 and str(cfg) in r.stderr and "not valid TOML" in r.stderr
    assert cfg.read_text() == "timeout = [\n"


@pytest.fixture
def udfs(sandbox, monkeypatch):
    module = xh.load()
    monkeypatch.setenv("LIXINGER_BASE_URL", sandbox.url)
    monkeypatch.setenv("LIXINGER_TOKEN", sandbox.token)
    module.reset()
    yield module
    module.reset()


def test_formulas_see_the_file_and_show_a_bad_one_in_one_cell(udfs, cfg, monkeypatch):
    cfg.parent.mkdir()
    cfg.write_text("max_age = 120\n", "utf-8")
    info = dict(map(tuple, xh.call(udfs.LX_MMAH_INFO)))
    assert info[f"max_age (file {cfg})"] == 120.0
    assert info["timeout (default)"] == 30.0 and info["settings file"] == str(cfg)
    assert any(k.startswith("base_url (environment") for k in info)

    cfg.write_text("budget = 0\n", "utf-8")
    udfs.reset()
    out = xh.call(udfs.LX_MMAH, ((700.0,), (5.0,)), "mm_sh")
    assert len(out) == 1 and len(out[0]) == 1
    cell = out[0][0]
    assert cell.startswith("#N/A Setup Error: ") and str(cfg) in cell and "'budget'" in cell and "\n" not in cell
    info = xh.call(udfs.LX_MMAH_INFO)
    assert info[0][0] == "version" and info[1][0] == "error" and "'budget'" in info[1][1] and len(info) == 2


def test_profile_setting_reaches_the_token_commands(cfg):
    env = {"XL_ADDIN_CONFIG": str(cfg)}
    assert run_cli("config", "set", "profile", "team", env=env).returncode == 0
    r = run_cli("token", "status", env=env)
    assert r.returncode == 1 and "for profile 'team'" in r.stderr
    r = run_cli("--profile", "solo", "token", "status", env=env)  # the option wins
    assert "for profile 'solo'" in r.stderr
