"""The package's layers: the product core (lf_core/*.py) never imports the research code
(lf_core/lab/), and no lf_core modules import each other in a cycle."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "lf_core"
LAB = "lf_core.lab"
# The CLI's research commands import lf_core.lab inside these functions (never at import
# time, never for align / invert / predict).
CLI_RESEARCH = {"cmd_train_generator", "cmd_train_vqvae", "cmd_extract", "cmd_train",
                "_train_cnn", "_train_sources", "cmd_train_set", "cmd_evaluate", "cmd_bench",
                "_train_generator_args", "_train_set_args",
                "_train_vqvae_args", "_extract_args", "_train_args", "_evaluate_args",
                "_bench_args", "bench_config", "_engine"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path):
    """[(imported module, enclosing top-level function or None)] of every import in the
    file, function-level ones included; relative imports resolved to absolute names.
    `from X import y` yields X.y as well when X.y is a module of the package."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    out = []
    for top in tree.body:
        where = top.name if isinstance(top, (ast.FunctionDef, ast.AsyncFunctionDef)) else None
        for node in ast.walk(top):
            if isinstance(node, ast.Import):
                out += [(a.name, where) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - node.level + 1]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module
                out.append((mod, where))
                out += [(f"{mod}.{a.name}", where) for a in node.names
                        if (ROOT / Path(*f"{mod}.{a.name}".split("."))).with_suffix(".py").exists()
                        or (ROOT / Path(*f"{mod}.{a.name}".split(".")) / "__init__.py").exists()]
    return out


def core_files():
    return sorted(PKG.glob("*.py"))


def test_core_imports_no_lab_module():
    assert len(core_files()) >= 15 and (PKG / "lab" / "__init__.py").is_file()
    bad = []
    for path in core_files():
        for mod, where in imports(path):
            if mod == LAB or mod.startswith(LAB + "."):
                if path.name == "cli.py" and where in CLI_RESEARCH:
                    continue
                bad.append(f"{path.name}: {mod} (in {where or 'module scope'})")
    assert not bad, "core modules importing lf_core.lab:\n" + "\n".join(bad)


def test_import_scan_sees_function_level_imports():
    """The scan above is not vacuous: it finds the CLI's lazy lab imports."""
    found = {(mod, where) for mod, where in imports(PKG / "cli.py")}
    assert ("lf_core.lab.bench", "cmd_bench") in found
    assert ("lf_core.lab.evaluate", "cmd_evaluate") in found


CORE_VERBS = """
import sys
from lf_core import align, classify, explain, invert, load_model, reconstruct
from lf_core import detector, explainers, pipeline, quicktrain
from lf_core.cli import main
img, out = sys.argv[1], sys.argv[2]
assert main(["align", img, "-o", out + "/face.png"]) == 0
assert main(["invert", img, "--steps", "0", "-o", out + "/w.npz"]) == 0
assert main(["predict", img, "--json"]) == 0
print(sorted(m for m in sys.modules if m == "lf_core.lab" or m.startswith("lf_core.lab.")))
"""


def test_core_verbs_load_no_lab_module(data_dir, tmp_path):
    img = data_dir / "dfdc_faces" / "real" / "aabqcugcpc.jpg"
    r = subprocess.run([sys.executable, "-c", CORE_VERBS, str(img), str(tmp_path)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == "[]", r.stdout[-2000:]
    assert (tmp_path / "w.npz").is_file() and (tmp_path / "face.png").is_file()


def graph() -> dict[str, set[str]]:
    """lf_core module -> the lf_core modules it imports (at any level of the file)."""
    files = sorted(PKG.rglob("*.py"))
    names = {module_name(p) for p in files}
    return {module_name(p): {m for m, _ in imports(p) if m in names and m != module_name(p)
                             and not module_name(p).startswith(m + ".")}  # a parent package
            for p in files}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    g = graph()
    assert "lf_core.losses" in g["lf_core.inversion"]  # the graph is not empty
    assert "lf_core.lab.vqvae" in g["lf_core.lab.projectors"]
    assert cycles(g) == []
