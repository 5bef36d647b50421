"""Every benchmark script answers --help: it parses its options before it loads a model or
reads data, so a moved or broken script shows here."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
PY = sorted(BENCH.glob("*/*.py"))
SH = sorted(BENCH.glob("*/*.sh"))

# Runs each script as __main__ with --help in one interpreter (torch is imported once, not
# once per script); prints {script: [exit code, stdout]} as JSON.
RUN_HELP = """
import contextlib, io, json, runpy, sys
out = {}
for script in sys.argv[1:]:
    buf = io.StringIO()
    sys.argv = [script, "--help"]
    try:
        with contextlib.redirect_stdout(buf):
            runpy.run_path(script, run_name="__main__")
        code = 0
    except SystemExit as e:
        code = e.code or 0
    except BaseException as e:
        code, buf = repr(e), io.StringIO(repr(e))
    out[script] = [code, buf.getvalue()]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def helps(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("bench-help")  # not the repository: scripts find it alone
    r = subprocess.run([sys.executable, "-c", RUN_HELP, *map(str, PY)], cwd=cwd,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert not list(cwd.iterdir())  # --help wrote nothing
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_benchmarks_are_sorted_into_folders():
    assert not list(BENCH.glob("*.py")) and not list(BENCH.glob("*.sh"))
    assert {p.parent.name for p in PY + SH} == {"speed", "experiments", "tools"}


@pytest.mark.parametrize("script", PY, ids=[f"{p.parent.name}/{p.name}" for p in PY])
def test_python_script_help(helps, script):
    code, text = helps[str(script)]
    assert code == 0, text[-2000:]
    assert text.lower().startswith("usage:")


@pytest.mark.parametrize("script", SH, ids=[f"{p.parent.name}/{p.name}" for p in SH])
def test_shell_script_help(script, tmp_path):
    r = subprocess.run(["bash", str(script), "--help"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.strip(), r.stderr
    assert not list(tmp_path.iterdir())
