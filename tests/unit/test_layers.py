"""The package's layering: core at the bottom (no gymnasium, no transformers, no trainer),
no import circles, and the method table as the one place a method is described."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import ppokit
from ppokit.core import advantages, losses
from ppokit.methods import METHODS

SRC = Path(ppokit.__file__).parent


def test_importing_core_imports_neither_gymnasium_nor_transformers() -> None:
    """Nothing but ``ppokit.core``, the package root and its exceptions (plain Python)."""
    modules = [f"ppokit.core.{m.name}" for m in pkgutil.iter_modules([str(SRC / "core")])]
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('gymnasium', 'transformers', 'ppokit') "
        "and not m.startswith('ppokit.core') and m not in ('ppokit', 'ppokit.errors'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert len(modules) >= 8
    assert out == "", f"ppokit.core pulled in: {out}"


def _imports(path: Path) -> set[str]:
    """The ppokit modules a file imports at module level (not inside functions or TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ppokit"):
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("ppokit")}
    return found


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_import_circles() -> None:
    files = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph = {name: {m for m in _imports(p) if m in files and m != name} for name, p in files.items()}

    def visit(node: str, stack: list[str], done: set[str]) -> None:
        if node in stack:
            pytest.fail(f"import circle: {' -> '.join([*stack[stack.index(node) :], node])}")
        if node in done:
            return
        for nxt in graph[node]:
            visit(nxt, [*stack, node], done)
        done.add(node)

    done: set[str] = set()
    for name in graph:
        visit(name, [], done)


def test_core_imports_only_core() -> None:
    for path in (SRC / "core").glob("*.py"):
        outside = {m for m in _imports(path) if not m.startswith("ppokit.core")}
        assert not outside, f"{path.name} imports {outside}"


def test_trainers_do_not_import_each_other() -> None:
    """``classic`` and ``lm`` both consume ``core``; neither imports the other."""
    for trainer, other in (("classic", "ppokit.lm"), ("lm", "ppokit.classic")):
        for path in (SRC / trainer).glob("*.py"):
            assert not {m for m in _imports(path) if m.startswith(other)}, f"{trainer}/{path.name} imports {other}"


def test_every_method_names_functions_of_core() -> None:
    for name, method in METHODS.items():
        assert method.advantages.__module__ == advantages.__name__, name
        assert method.policy_loss.__module__ == losses.__name__, name
        assert method.collects in ("steps", "episodes"), name
        # A method that clips must report a clip indicator; one that does not, none.
        import torch

        terms = method.policy_loss(torch.zeros(2), torch.zeros(2), torch.ones(2), losses.Coefs(0.0, 0.2, 0.2, 1.0))
        assert (terms.clipped is not None) == method.clips, name


def test_no_module_branches_on_a_method_name() -> None:
    """The table is the one place a method is described: no code compares ``method`` to a name."""
    names = set(METHODS)
    for path in SRC.rglob("*.py"):
        if path.name == "methods.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare) and any(
                isinstance(c, ast.Constant) and c.value in names for c in [node.left, *node.comparators]
            ):
                pytest.fail(f"{path.relative_to(SRC)}:{node.lineno} compares with a method name")


def test_the_command_line_loads_transformers_only_for_lm_work() -> None:
    """Every ``ppokit`` call builds the whole parser; importing transformers there would cost
    each classic command a second or more."""
    code = "import sys, ppokit.cli; ppokit.cli.build_parser(); print('transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
