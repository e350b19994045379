"""The web app reaches the sandbox through one seam (webapp/core/verification.py), whose hidden folders
are a property of the settings: the headless self-play command, started the way a person would start
it (no AUTODIDACT_DATA_DIR), runs puzzles whose solutions cannot read the database or the data folder."""
import ast
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.support import OUTPUT_DIR, ROOT

WEBAPP = ROOT / "webapp"
SEAM = WEBAPP / "core" / "verification.py"
# engine.sandbox's modules that run code; its pure helpers (verdict texts, static analysis, answer
# types, limits, codecs) may be imported anywhere.
RUNNERS = {"engine.sandbox", "engine.sandbox.pool", "engine.sandbox.zygote", "engine.sandbox.child",
           "engine.sandbox.jobs", "engine.sandbox.isolation", "engine.sandbox.linux", "engine.sandbox.framing",
           "engine.sandbox.__main__", "engine.verify"}


def sandbox_imports(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name in RUNNERS]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module in RUNNERS:
                found.append((node.lineno, node.module))
            elif node.module == "engine" and any(alias.name in ("sandbox", "verify") for alias in node.names):
                found.append((node.lineno, "engine.sandbox"))
    return found


def test_only_the_seam_reaches_the_sandbox():
    offences = [f"{path.relative_to(ROOT)}:{line} imports {module}"
                for path in sorted(WEBAPP.rglob("*.py")) if path != SEAM
                for line, module in sandbox_imports(ast.parse(path.read_text(), str(path)))]
    assert offences == []
    assert sandbox_imports(ast.parse(SEAM.read_text()))  # the seam itself does


def test_the_checker_catches_each_form():
    source = ("from engine.sandbox import verify_many\nimport engine.sandbox.pool\nfrom engine import sandbox\n"
              "def later():\n    from engine.sandbox.isolation import probe\n"
              "from engine.sandbox.verdict import short\nfrom engine.sandbox.analysis import analyse_puzzle\n")
    assert sorted(module for _, module in sandbox_imports(ast.parse(source))) == [
        "engine.sandbox", "engine.sandbox", "engine.sandbox.isolation", "engine.sandbox.pool"]


def p3_folder(root: Path, database: Path, data_dir: Path) -> Path:
    """A P3 data folder whose train puzzles are solved only by reading what must stay hidden."""
    puzzles = [
        {"name": "ReadTheDatabase:0", "ans_type": "str", "sat": "def sat(s: str):\n    return s.startswith('SQLite')",
         "sol_header": "def sol():", "sol_bodies": [f"    return open({str(database)!r}, 'rb').read(16).decode('latin-1')"]},
        {"name": "ListTheDataFolder:0", "ans_type": "List[str]",
         "sat": "def sat(names: List[str]):\n    return 'secret_key' in names",
         "sol_header": "def sol():", "sol_bodies": [f"    import os\n    return os.listdir({str(data_dir)!r})"]},
        {"name": "ListTheSourceCode:0", "ans_type": "List[str]",  # the control: the code folder is visible
         "sat": "def sat(names: List[str]):\n    return 'manage.py' in names",
         "sol_header": "def sol():", "sol_bodies": [f"    import os\n    return os.listdir({str(ROOT)!r})"]},
    ]
    folder = root / "p3"
    folder.mkdir(parents=True)
    (folder / "puzzles.json").write_text(json.dumps(puzzles))
    (folder / "split.json").write_text(json.dumps({"train": ["ReadTheDatabase", "ListTheDataFolder", "ListTheSourceCode"],
                                                   "test": []}))
    return root


def test_the_selfplay_command_hides_the_database_and_the_data_folder(tmp_path):
    # The database outside /tmp (the sandbox has its own /tmp, which would hide it for another reason).
    db_dir = OUTPUT_DIR / "sandbox-seam"
    shutil.rmtree(db_dir, ignore_errors=True)
    db_dir.mkdir(parents=True)
    database, data_dir = db_dir / "autodidact.sqlite3", ROOT / "var"  # var/: the data folder by default
    bench = p3_folder(tmp_path / "bench", database, data_dir)
    env = {k: v for k, v in os.environ.items() if k not in ("AUTODIDACT_DATA_DIR", "SECRET_KEY", "REDIS_URL",
                                                            "AUTODIDACT_SANDBOX_HIDE")}
    env.update(DATABASE_URL=f"sqlite:///{database}", AUTODIDACT_BENCHMARK_DATA=str(bench))
    done = subprocess.run([sys.executable, "manage.py", "selfplay", "--rounds", "0", "--report", str(tmp_path / "r")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert (data_dir / "secret_key").is_file() and database.stat().st_mode & 0o044  # there, and readable to others
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT p.name, a.status, a.verdict FROM puzzles_attempt a JOIN puzzles_puzzle p "
                          "ON p.id = a.puzzle_id WHERE p.source = 'p3-train'").fetchall()
    verdicts = {name: (status, json.loads(verdict)["detail"]) for name, status, verdict in rows}
    assert verdicts["ListTheSourceCode:0"][0] == "passed", verdicts  # the sandbox ran them, and sees the code
    assert verdicts["ReadTheDatabase:0"][0] == "error" and "FileNotFoundError" in verdicts["ReadTheDatabase:0"][1]
    assert verdicts["ListTheDataFolder:0"][0] == "failed", verdicts  # an empty folder: no secret_key in it
