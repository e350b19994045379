"""engine/ is the framework-free core: no module under it may import Django or the web app."""
import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parent.parent / "engine"
FORBIDDEN_ROOTS = {"django", "webapp", "channels", "celery", "daphne", "django_celery_beat"}


def imported_roots(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split(".")[0]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in {
            "import_module", "__import__"
        } and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            yield node.lineno, node.args[0].value.split(".")[0]


def test_engine_never_imports_the_web_framework():
    files = sorted(ENGINE.rglob("*.py"))
    assert files, "engine/ has no Python files"
    offences = [
        f"{path.relative_to(ENGINE.parent)}:{line} imports {root}"
        for path in files
        for line, root in imported_roots(ast.parse(path.read_text(), str(path)))
        if root in FORBIDDEN_ROOTS
    ]
    assert offences == []


def test_the_checker_catches_each_import_form():
    source = "import django\nfrom webapp.core import x\nimport importlib\nimportlib.import_module('celery.app')\n"
    assert [root for _, root in imported_roots(ast.parse(source))] == ["django", "webapp", "importlib", "celery"]
