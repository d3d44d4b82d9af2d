"""Excel's process model: LX_MMAH lives in the long-lived UDF server; the Refresh button runs
wherever the add-in's VBA sends RunPython — a fresh Python process unless its config says
"Use UDF Server". Whichever it is, after the button the formulas ask the service again.

Nothing here comes from our constants: the config key, the sheet and the command line are
read from the VBA of the add-in the install builds (``olevba``), the setting from its
config sheet.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest

from conftest import ROOT

TESTS = os.path.dirname(os.path.abspath(__file__))


def addin_vba(path) -> str:
    from oletools.olevba import VBA_Parser

    parser = VBA_Parser(str(path))
    try:
        return "\n".join(code for _, _, _, code in parser.extract_macros())
    finally:
        parser.close()


def vba_string(expr: str, variables: dict) -> str:
    """Evaluate a VBA string expression of literals, variables and `&`."""
    out = []
    for part in re.findall(r'"(?:[^"]|"")*"|[A-Za-z_]\w*', expr):
        out.append(part[1:-1].replace('""', '"') if part.startswith('"') else variables[part])
    return "".join(out)


def sheet_rows(path, name) -> list[dict]:
    """Cell values of sheet *name* of a workbook package (any type: .xlam too), row by row."""
    import zipfile
    from xml.etree import ElementTree as ET

    ns = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
          "r": "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
          "p": "http://schemas.openxmlformats.org/package/2006/relationships"}
    with zipfile.ZipFile(path) as z:
        wb = ET.fromstring(z.read("xl/workbook.xml"))
        rid = next(s.get(f"{{{ns['r']}}}id") for s in wb.iter(f"{{{ns['m']}}}sheet") if s.get("name") == name)
        rels = ET.fromstring(z.read("xl/_rels/workbook.xml.rels"))
        target = next(r.get("Target") for r in rels.iter(f"{{{ns['p']}}}Relationship") if r.get("Id") == rid)
        shared = []
        if "xl/sharedStrings.xml" in z.namelist():
            for si in ET.fromstring(z.read("xl/sharedStrings.xml")).iter(f"{{{ns['m']}}}si"):
                shared.append("".join(t.text or "" for t in si.iter(f"{{{ns['m']}}}t")))
        sheet = ET.fromstring(z.read("xl/" + target.lstrip("/").removeprefix("xl/")))
    rows = []
    for row in sheet.iter(f"{{{ns['m']}}}row"):
        cells = {}
        for c in row.iter(f"{{{ns['m']}}}c"):
            col = re.match(r"[A-Z]+", c.get("r")).group(0)
            v, t = c.find("m:v", ns), c.get("t")
            if t == "inlineStr":
                cells[col] = "".join(x.text or "" for x in c.iter(f"{{{ns['m']}}}t"))
            elif v is None:
                cells[col] = None
            elif t == "s":
                cells[col] = shared[int(v.text)]
            elif t == "b":
                cells[col] = v.text == "1"
            elif t in ("str", "e"):
                cells[col] = v.text
            else:
                cells[col] = float(v.text)
        rows.append(cells)
    return rows


class Addin:
    """What the built add-in's VBA does when the Refresh button is clicked."""

    def __init__(self, path):
        self.vba = addin_vba(path)
        project = re.search(r'PROJECT_NAME As String = "([^"]+)"', self.vba).group(1)
        key, default = re.search(r'OPTIMIZED_CONNECTION = GetConfig\("([^"]+)", (\w+)\)', self.vba).groups()
        # the branch the flag selects: XLPy.Exec in the server, else ExecuteWindows (a new process)
        branch = self.vba[self.vba.index("If OPTIMIZED_CONNECTION = True Then"):]
        assert branch.index("XLPy.Exec") < branch.index("Else") < branch.index("ExecuteWindows(")
        # GetConfigFromSheet: column A from A1 down (UCase) -> column B, on sheet PROJECT_NAME & ".conf"
        conf = {}
        for row in sheet_rows(path, f"{project}.conf"):
            if row.get("A") in (None, ""):
                break
            conf[str(row["A"]).upper()] = row.get("B")
        value = conf.get(key.upper(), default == "True")
        self.use_udf_server = value is True or str(value).strip().upper() == "TRUE"
        # RunMain: RunPython "import " & mymodule & ";" & mymodule & ".main()", mymodule = the file's stem
        run_main = re.search(r"Sub RunMain\(.*?\n(.*?)End Sub", self.vba, re.S).group(1)
        expr = re.search(r"RunPython (.+)", run_main).group(1)
        self.command = vba_string(expr, {"mymodule": path.stem})
        # ExecuteWindows: <interpreter> -B -c "import xlwings.utils;xlwings.utils.prepare_sys_path(...); <command>"
        assert '" -B -c ""import xlwings.utils;xlwings.utils.prepare_sys_path(' in self.vba


@pytest.fixture
def addin(tmp_path):
    from xl_addin.install import build_addin

    # built as the Windows install builds it (UDFs are Windows-only); the interpreter path is Windows'
    interpreter = r"C:\Users\analyst\.xl_addin\venv\Scripts\pythonw.exe"
    return Addin(build_addin(tmp_path / "addin" / "xl_addin.xlam", "windows", interpreter))


@pytest.fixture
def excel_env(sandbox, tmp_path):
    env = dict(os.environ, LIXINGER_BASE_URL=sandbox.url, LIXINGER_TOKEN=sandbox.token,
               XL_ADDIN_CACHE_DIR=str(tmp_path / "cache"),
               PYTHONPATH=os.pathsep.join([str(ROOT), TESTS]))
    return env


class UdfServer:
    def __init__(self, env):
        self.proc = subprocess.Popen([sys.executable, os.path.join(TESTS, "udf_server.py")], env=env, cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.pid = json.loads(self.proc.stdout.readline())["ready"]

    def ask(self, **msg):
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        out = json.loads(self.proc.stdout.readline())
        assert "error" not in out, out["error"]
        return out

    def close(self):
        self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
        self.proc.stdin.flush()
        self.proc.wait(timeout=30)


@pytest.fixture
def server(excel_env):
    srv = UdfServer(excel_env)
    yield srv
    srv.close()


BOOK = {"A1": 700.0, "A2": "0005.HK", "A3": 939.0, "B1": "mm_sh", "C1": "=LX_MMAH(A1:A3,B1)", "D1": "=LX_MMAH(A1,\"spc\")"}


FORMULAS = [a for a, v in BOOK.items() if isinstance(v, str) and v.startswith("=LX_MMAH")]


def click_refresh(addin, server, env, tmp_path, use_udf_server):
    """The Refresh button, run where the add-in's VBA runs it; Excel's Calculate (which the button
    calls) runs the formulas in the UDF server before it returns. What Excel saw, with the values
    the formulas gave in that recalculation under "recalculated"."""
    if use_udf_server:
        return server.ask(op="exec", cells=BOOK, command=addin.command)["report"]
    book, report, calc = tmp_path / "book.json", tmp_path / "report.json", tmp_path / "calculate.flag"
    book.write_text(json.dumps(BOOK), "utf-8")
    prelude = "import excel_harness; excel_harness.install_com_stubs(); excel_harness.attach_runpython_book()"
    cmd = [sys.executable, "-B", "-c", f"{prelude}; {addin.command}", f"--wb={book.name}", "--from_xl=1"]
    proc = subprocess.Popen(cmd, env=dict(env, XL_HARNESS_BOOK=str(book), XL_HARNESS_REPORT=str(report),
                                          XL_HARNESS_CALC=str(calc)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    recalculated, ends = {}, time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < ends:
        if calc.exists():  # the button called Calculate: Excel runs the formulas in the UDF server
            recalculated = {a: server.ask(op="calc", cells=BOOK, address=a)["value"] for a in FORMULAS}
            calc.unlink()
        time.sleep(0.02)
    _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 0, stderr  # non-zero: the VBA would show a traceback box
    return {**json.loads(report.read_text("utf-8")), "recalculated": recalculated}


def scenario(addin, server, excel_env, sandbox, tmp_path, use_udf_server):
    first = {a: server.ask(op="calc", cells=BOOK, address=a)["value"] for a in FORMULAS}
    assert sandbox.request_count == 1  # one batched request for the sheet (the neighbour scan)
    server.ask(op="calc", cells=BOOK, address="C1")
    server.ask(op="calc", cells=BOOK, address="D1")
    assert sandbox.request_count == 1  # fresh: the server answers from memory

    before = sandbox.request_count
    saw = click_refresh(addin, server, excel_env, tmp_path, use_udf_server)
    assert (saw["pid"] == server.pid) == use_udf_server
    assert not saw["alerts"], saw["alerts"]
    assert sorted(saw["dirty"]) == ["$C$1:$D$1"] and saw["app"] == ["Calculate"]  # this workbook's LX_MMAH only
    assert saw["status"][-1] is False  # the status bar handed back to Excel
    assert sandbox.request_count > before  # in Excel's recalculation the formulas asked the service again
    assert sorted(sandbox.seen[-1].codes) == ["00005", "00700", "00939"]
    assert saw["recalculated"] == first


def test_refresh_button_as_the_built_addin_runs_it_makes_formulas_fetch_again(addin, server, excel_env, sandbox,
                                                                               tmp_path):
    scenario(addin, server, excel_env, sandbox, tmp_path, addin.use_udf_server)


def test_refresh_button_in_the_other_process_model_too(addin, server, excel_env, sandbox, tmp_path):
    """Whatever the config sheet says, the fix holds for the other setting as well."""
    scenario(addin, server, excel_env, sandbox, tmp_path, not addin.use_udf_server)


@pytest.mark.parametrize("use_udf_server", [True, False], ids=["udf-server", "own-process"])
def test_refresh_button_during_an_outage_says_the_formulas_show_older_values(addin, excel_env, sandbox, tmp_path,
                                                                            use_udf_server):
    """A workbook of formulas only, the service down at the click: the formulas show the values kept
    from before (as they should), and the button says so rather than ending as if all were fresh;
    whichever process ran the formulas. Once the service is back, a click says nothing."""
    srv = UdfServer(dict(excel_env, LIXINGER_BUDGET="1"))  # a short budget: the 503s end in a second
    try:
        first = {a: srv.ask(op="calc", cells=BOOK, address=a)["value"] for a in FORMULAS}
        sandbox.inject("503", times=None)
        saw = click_refresh(addin, srv, excel_env, tmp_path, use_udf_server)
        assert saw["recalculated"] == first  # the kept values, not #N/A
        assert len(saw["alerts"]) == 1, saw["alerts"]
        title, text = saw["alerts"][0]
        assert title == "Lixinger refresh" and "Lixinger did not answer" in text
        assert "values kept from an earlier fetch" in text and "LX_MMAH_INFO" in text
        assert ("HTTP 503" in text) == use_udf_server  # the reason, where the formulas ran in this process
        assert sandbox.token not in text and saw["status"][-1] is False

        sandbox.clear_faults()
        saw = click_refresh(addin, srv, excel_env, tmp_path, use_udf_server)
        assert not saw["alerts"] and saw["recalculated"] == first
    finally:
        srv.close()
