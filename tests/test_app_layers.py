"""The web apps form a stack: each imports only the apps below it, so there is no circle and a
lower app never needs a higher one to load. Project modules (settings, refusals, configuration)
sit outside the stack and every app may use them."""
import ast
from pathlib import Path

WEBAPP = Path(__file__).resolve().parent.parent / "webapp"
# Lowest first. serving: model versions and the model worker; accounts: roles; core: the site shell,
# health, the sandbox seam and run plumbing; datasets: the training-data ledger; then the features.
LAYERS = ("serving", "accounts", "core", "evaluation", "datasets", "chat", "studies", "puzzles", "distill", "training")


def app_imports(module: list[str], tree: ast.AST):
    """(line, app) for every import of a webapp app in `tree`, the module `webapp.<module...>` (lazy,
    relative and importlib imports too)."""
    package = ["webapp", *module]
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:-node.level]
                names = [".".join(base + ([node.module] if node.module else []))]
                if not node.module:
                    names = [".".join(base + [alias.name]) for alias in node.names]
            elif node.module:
                names = [node.module]
                if node.module == "webapp":
                    names = [f"webapp.{alias.name}" for alias in node.names]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            names = [node.args[0].value]
        for name in names:
            parts = name.split(".")
            if parts[0] == "webapp" and len(parts) > 1 and parts[1] in LAYERS:
                yield node.lineno, parts[1]


def upward_imports(root: Path = WEBAPP) -> list[str]:
    offences = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        if len(parts) < 2 or parts[0] not in LAYERS or "migrations" in parts:
            continue
        own = LAYERS.index(parts[0])
        module = list(path.relative_to(root).with_suffix("").parts)
        for line, app in app_imports(module, ast.parse(path.read_text(), str(path))):
            if LAYERS.index(app) > own:
                offences.append(f"webapp/{path.relative_to(root)}:{line} ({parts[0]}) imports {app}")
    return offences


def test_every_app_is_in_the_stack():
    apps = {p.parent.name for p in WEBAPP.glob("*/apps.py")}
    assert apps == set(LAYERS)


def test_no_app_imports_an_app_above_it():
    assert upward_imports() == []


def test_the_checker_catches_each_import_form(tmp_path):
    (tmp_path / "serving").mkdir()
    (tmp_path / "serving" / "bad.py").write_text(
        "import webapp.chat.models\nfrom webapp.training import rounds\nfrom webapp import puzzles\n"
        "def later():\n    from webapp.core.tasks import echo\n"
        "import importlib\nimportlib.import_module('webapp.datasets.models')\n")
    (tmp_path / "training").mkdir()
    (tmp_path / "training" / "fine.py").write_text("from webapp.serving import versions\nfrom ..chat import models\n")
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "relative.py").write_text("from ..chat import models\nfrom . import health\n")
    found = upward_imports(tmp_path)
    assert sorted(f.split(" imports ")[1] for f in found) == ["chat", "chat", "core", "datasets", "puzzles", "training"]
    assert all(f.startswith(("webapp/core/relative.py:1", "webapp/serving/bad.py:")) for f in found), found
