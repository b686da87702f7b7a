"""No ``assert`` in the package: ``python -O`` removes them, so a check that guards a production path
must raise (tests keep their asserts)."""

from __future__ import annotations

import ast
from pathlib import Path

import selective_autonomy

PACKAGE = Path(selective_autonomy.__file__).parent


def test_the_package_holds_no_assert_statement() -> None:
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
        if isinstance(node, ast.Assert)
    ]
    assert found == [], f"assert statements vanish under python -O; raise instead: {found}"
