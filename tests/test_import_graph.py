"""tools/import_graph.py: the unit-level import graph and its cycles (fast, standard library only)."""
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "tools" / "import_graph.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["import_graph"] = module
    spec.loader.exec_module(module)
    return module


def _package(tmp_path, files):
    pkg = tmp_path / "pkg"
    for rel, text in files.items():
        path = pkg / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return pkg


def test_cycle_found_through_lazy_and_relative_imports(tool, tmp_path, capsys):
    pkg = _package(tmp_path, {
        "__init__.py": "from pkg import a\n",
        "a/__init__.py": "from .inner import x\n",
        "a/inner.py": "def f():\n    from ..b import y\n",  # lazy, relative: still an edge a -> b
        "b.py": "import pkg.a.inner\n",
        "c.py": "from pkg import b\nimport os\n",
    })
    graph = tool.import_graph(pkg)
    assert {u: sorted(t) for u, t in graph.items()} == {"a": ["b"], "b": ["a"], "c": ["b"]}
    assert tool.cycles(graph) == [["a", "b"]]
    assert tool.main([str(pkg), "--why"]) == 1
    out = capsys.readouterr().out
    assert "cycle: a <-> b" in out
    assert "pkg/a/inner.py" in out
    assert "3 units, 3 edges, 1 cycle(s)" in out


def test_acyclic_package_exits_zero(tool, tmp_path):
    pkg = _package(tmp_path, {"__init__.py": "", "low.py": "", "high.py": "from pkg.low import x\n"})
    assert tool.cycles(tool.import_graph(pkg)) == []
    assert tool.main([str(pkg)]) == 0


def test_not_a_package_is_one_line_error(tool, tmp_path, capsys):
    assert tool.main([str(tmp_path)]) == 2
    assert "no __init__.py" in capsys.readouterr().err


def test_edgekd_has_no_cycle_between_units(tool):
    graph = tool.import_graph(ROOT / "edgekd")
    assert tool.cycles(graph) == [], tool.render(graph)
