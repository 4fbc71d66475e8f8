"""The extensions' layering: genio below genetics and variance, and no genetics <-> variance cycle.

Imports are read from the source (every ``import`` statement, deferred ones
inside functions included), so a cycle hidden behind a function-level import
is found too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import mixedmodels

ROOT = Path(mixedmodels.__file__).parent


def _imports(path: Path, package: str) -> set[str]:
    """Modules of ``mixedmodels`` imported anywhere in ``path`` (absolute names)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.add(name)
            found |= {f"{name}.{a.name}" for a in node.names}
    return {m for m in found if m.startswith("mixedmodels")}


def _subpackage_imports(sub: str) -> set[str]:
    """Every mixedmodels module imported by the modules of ``mixedmodels.<sub>``."""
    out: set[str] = set()
    for path in (ROOT / sub).glob("*.py"):
        out |= _imports(path, f"mixedmodels.{sub}")  # the package a relative import starts from
    return out


def _uses(sub: str, other: str) -> set[str]:
    """The modules of ``mixedmodels.<other>`` that ``mixedmodels.<sub>`` imports."""
    target = f"mixedmodels.{other}"
    return {m for m in _subpackage_imports(sub) if m == target or m.startswith(target + ".")}


def test_the_import_reader_sees_deferred_and_relative_imports(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from ..genetics import kinship\n    import mixedmodels.lmm\n")
    assert {"mixedmodels.genetics", "mixedmodels.lmm"} <= _imports(source, "mixedmodels.variance")


def test_no_import_cycle_between_genetics_and_variance():
    one_way = _uses("genetics", "variance")
    other_way = _uses("variance", "genetics")
    assert not (one_way and other_way), (sorted(one_way), sorted(other_way))
    assert not other_way  # variance reads genotypes through genio, never through genetics


def test_genotype_io_depends_on_neither_extension():
    assert not _uses("genio", "genetics") and not _uses("genio", "variance")
    assert _uses("genetics", "genio") and _uses("variance", "genio")
