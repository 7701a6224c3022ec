"""Import rules of the package: one direction of data flow, private modules stay private."""

import ast
from pathlib import Path

import explainaug

PACKAGE = Path(explainaug.__file__).parent


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_nothing_outside_explain_imports_its_private_base():
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.parent.name != "explain" and "explainaug.explain._base" in imported_modules(path)
    ]
    assert offenders == []
