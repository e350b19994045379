"""The model store: where sealed model versions are published so that any host can load them.

A store is a folder (a plain path: the data dir's `models/` on one host, a shared mount across
several) or an fsspec URL (`file://…` always; `s3://…`, `gs://…`, … where that protocol's package,
s3fs or gcsfs, is installed). A version is a folder under a key such as `round-3/model`, named in
model specs as `store:round-3/model`, and is whole or absent to its readers:

- `manifest.json` (every file's size and SHA-256) is what makes a version published. A folder
  store copies the version under a temporary name and renames it into place with its manifest
  already inside; an object store uploads the files first and the manifest last.
- `fetch` checks the files against the manifest before handing out a local folder, so a
  half-published or damaged version is refused with a `StoreError`, never loaded. From a URL store
  it downloads into this host's cache (under its own data dir), one process per version at a time
  (a file lock), and renames the checked copy into place.

    python -m engine.lm.model_store fetch round-3/model --store s3://bucket/models --cache var/model-cache
"""
from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import re
import shutil
import sys
import threading
import uuid
from contextlib import contextmanager
from pathlib import Path

from engine.durable import fsync_path, fsync_tree

PREFIX = "store:"
MANIFEST = "manifest.json"
_KEY = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[A-Za-z0-9][\w.\-]*)*$")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


class StoreError(RuntimeError):
    """A version is missing from the store, only half published, or does not match its manifest."""


def spec_of(key: str) -> str:
    return PREFIX + check_key(key)


def key_of(spec: str) -> str | None:
    """The store key a model spec names, or None for any other spec (a local path, a hub id, "")."""
    spec = (spec or "").strip()
    return check_key(spec[len(PREFIX):]) if spec.startswith(PREFIX) else None


def check_key(key: str) -> str:
    if not _KEY.match(key) or ".." in key.split("/"):
        raise StoreError(f"{key!r} is not a model store key (letters, digits, . _ - and / between parts)")
    return key


def is_url(location: str) -> bool:
    return bool(_URL.match(location))


# -- manifests -------------------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def manifest_of(folder: Path) -> dict:
    """{"files": {relative path: {"size", "sha256"}}} of every file under `folder` but the manifest."""
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        if relative != MANIFEST:
            files[relative] = {"size": path.stat().st_size, "sha256": _sha256(path)}
    if not files:
        raise StoreError(f"{folder} holds no files to publish")
    return {"format": 1, "files": files}


def _parse_manifest(raw: bytes, where: str) -> dict:
    try:
        manifest = json.loads(raw)
        files = manifest["files"]
        sound = isinstance(files, dict) and bool(files) and all(
            isinstance(entry["size"], int) and len(entry["sha256"]) == 64 and check_key(relative)
            for relative, entry in files.items())
    except (ValueError, KeyError, TypeError, StoreError):
        sound = False
    if not sound:
        raise StoreError(f"{where}: its {MANIFEST} is unreadable, so the version is not loaded (publish it again)")
    return manifest


def verify(folder: Path, manifest: dict, spec: str) -> None:
    """Every file of the manifest in `folder`, with its size and SHA-256; StoreError naming the first that is not."""
    for relative, entry in manifest["files"].items():
        path = folder / relative
        if not path.is_file():
            raise StoreError(f"{spec}: {relative} is missing; the version is damaged or half published, "
                             "so it is not loaded (publish it again)")
        size = path.stat().st_size
        if size != entry["size"]:
            raise StoreError(f"{spec}: {relative} has {size} bytes, its manifest says {entry['size']}; "
                             "the version is damaged or half published, so it is not loaded (publish it again)")
        if _sha256(path) != entry["sha256"]:
            raise StoreError(f"{spec}: {relative} does not match its SHA-256 in the manifest; the version is "
                             "damaged, so it is not loaded (publish it again)")


def _write_manifest(folder: Path, manifest: dict) -> None:
    """Written last and renamed into place: a manifest is either whole or absent."""
    partial = folder / f".{MANIFEST}.{uuid.uuid4().hex}"
    partial.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    fsync_path(partial)
    os.replace(partial, folder / MANIFEST)
    fsync_path(folder)


# -- stores ----------------------------------------------------------------------------------------
class ModelStore:
    """Publish sealed version folders under keys; hand out checked local copies of them."""

    location: str

    def put(self, local_dir: str | Path, key: str) -> str:
        """Publish `local_dir` as `key` (again is a no-op when its files are the same); its spec."""
        raise NotImplementedError

    def fetch(self, key: str) -> Path:
        """A local folder holding version `key`, checked against its manifest."""
        raise NotImplementedError

    def published(self, key: str) -> bool:
        """Whether `key` has a manifest (cheap: nothing is read but that)."""
        raise NotImplementedError


class FolderStore(ModelStore):
    """A plain folder, local or a shared mount: versions are loaded where they lie, once checked."""

    def __init__(self, location: str | Path):
        self.root = Path(location).expanduser().resolve()
        self.location = str(self.root)
        self._checked: dict[str, tuple] = {}  # key -> what its files looked like when they were last checked
        self._lock = threading.Lock()

    def put(self, local_dir, key):
        local, target = Path(local_dir).resolve(), self.root / check_key(key)
        manifest = manifest_of(local)
        if local == target:  # the default store: the round sealed its model in place already
            _write_manifest(target, manifest)
            return spec_of(key)
        if self._manifest(target) == manifest:
            return spec_of(key)
        incoming = self.root / ".incoming" / uuid.uuid4().hex
        try:
            shutil.copytree(local, incoming, ignore=shutil.ignore_patterns(MANIFEST))
            _write_manifest(incoming, manifest)
            fsync_tree(incoming)
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():  # a different version under the same key: swap it whole
                old = incoming.with_name(incoming.name + ".old")
                os.replace(target, old)
                os.replace(incoming, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(incoming, target)
            fsync_path(target.parent)
        finally:
            shutil.rmtree(incoming, ignore_errors=True)
        return spec_of(key)

    def fetch(self, key):
        folder, spec = self.root / check_key(key), spec_of(key)
        manifest = self._manifest(folder)
        if manifest is None:
            raise StoreError(f"{spec} is not published in the model store {self.location} (no {MANIFEST}: "
                             "never published, or its publication did not finish), so it is not loaded")
        seen = self._signature(folder, manifest)
        with self._lock:
            if self._checked.get(key) == seen:
                return folder
        verify(folder, manifest, spec)
        with self._lock:
            self._checked[key] = seen
        return folder

    def published(self, key):
        return (self.root / check_key(key) / MANIFEST).is_file()

    @staticmethod
    def _manifest(folder: Path) -> dict | None:
        try:
            raw = (folder / MANIFEST).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return _parse_manifest(raw, str(folder))

    @staticmethod
    def _signature(folder: Path, manifest: dict) -> tuple:
        """Sizes and modification times: a file changed since its check is checked again."""
        stats = []
        for relative in manifest["files"]:
            try:
                stat = (folder / relative).stat()
                stats.append((relative, stat.st_size, stat.st_mtime_ns, stat.st_ino))
            except FileNotFoundError:
                stats.append((relative, None))
        return (json.dumps(manifest, sort_keys=True), tuple(stats))


class FsspecStore(ModelStore):
    """An fsspec URL (file://, s3://, gs://, …): versions are copied into this host's cache to load."""

    def __init__(self, location: str, cache_dir: str | Path, **storage_options):
        from fsspec.core import url_to_fs

        self.location = location
        self.fs, root = url_to_fs(location, **storage_options)
        self.root = root.rstrip("/")
        self.cache = Path(cache_dir).expanduser().resolve()

    def _remote(self, key: str, relative: str = "") -> str:
        return "/".join(part for part in (self.root, key, relative) if part)

    def put(self, local_dir, key):
        local = Path(local_dir).resolve()
        manifest = manifest_of(local)
        if self._remote_manifest(key) != manifest:
            manifest_path = self._remote(check_key(key), MANIFEST)
            if self.fs.exists(manifest_path):  # readers must never pair the old manifest with new files
                self.fs.rm(manifest_path)
            for relative in manifest["files"]:
                remote = self._remote(key, relative)
                self.fs.makedirs(remote.rsplit("/", 1)[0], exist_ok=True)
                self.fs.put_file(str(local / relative), remote)
            self.fs.pipe_file(manifest_path, json.dumps(manifest, indent=1, sort_keys=True).encode())
        self._seed_cache(local, key, manifest)
        return spec_of(key)

    def fetch(self, key):
        cached = self.cache / check_key(key)
        if (cached / MANIFEST).is_file():  # it was checked on its way into the cache
            return cached
        with self._locked(key):
            if (cached / MANIFEST).is_file():  # another process fetched it while this one waited
                return cached
            manifest = self._remote_manifest(key)
            if manifest is None:
                raise StoreError(f"{spec_of(key)} is not published in the model store {self.location} "
                                 f"(no {MANIFEST}: never published, or its upload did not finish), so it is not loaded")
            partial = self.cache / ".partial" / uuid.uuid4().hex
            try:
                for relative in manifest["files"]:
                    (partial / relative).parent.mkdir(parents=True, exist_ok=True)
                    try:
                        self.fs.get_file(self._remote(key, relative), str(partial / relative))
                    except FileNotFoundError:
                        pass  # verify names it
                verify(partial, manifest, spec_of(key))
                self._install(partial, cached, manifest)
            finally:
                shutil.rmtree(partial, ignore_errors=True)
        return cached

    def published(self, key):
        return self.fs.exists(self._remote(check_key(key), MANIFEST))

    def _remote_manifest(self, key: str) -> dict | None:
        path = self._remote(check_key(key), MANIFEST)
        try:
            raw = self.fs.cat_file(path)
        except FileNotFoundError:
            return None
        return _parse_manifest(raw, f"{self.location}/{key}")

    def _seed_cache(self, local: Path, key: str, manifest: dict) -> None:
        """The publishing host loads its own version from the cache without downloading it back
        (hard links where the cache shares a filesystem with the version, else copies)."""
        cached = self.cache / key
        if (cached / MANIFEST).is_file():
            return
        with self._locked(key):
            partial = self.cache / ".partial" / uuid.uuid4().hex
            try:
                for relative in manifest["files"]:
                    (partial / relative).parent.mkdir(parents=True, exist_ok=True)
                    try:
                        os.link(local / relative, partial / relative)
                    except OSError:
                        shutil.copy2(local / relative, partial / relative)
                if not (cached / MANIFEST).is_file():
                    self._install(partial, cached, manifest)
            finally:
                shutil.rmtree(partial, ignore_errors=True)

    @staticmethod
    def _install(partial: Path, cached: Path, manifest: dict) -> None:
        _write_manifest(partial, manifest)
        fsync_tree(partial)
        cached.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(cached, ignore_errors=True)  # debris without a manifest: never whole, never loaded
        os.replace(partial, cached)
        fsync_path(cached.parent)

    @contextmanager
    def _locked(self, key: str):
        """One process per host fetches a version at a time; the others wait and then find it cached."""
        locks = self.cache / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / (key.replace("/", "__") + ".lock"), "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def open_store(location: str, cache_dir: str | Path) -> ModelStore:
    """The store at `location`: a URL goes through fsspec, a plain path is a folder store."""
    location = (location or "").strip()
    if not location:
        raise StoreError("no model store given: a folder or an fsspec URL (file://, s3://, gs://, ...)")
    if is_url(location):
        return FsspecStore(location, cache_dir)
    return FolderStore(location)


def local_folder(location: str) -> Path | None:
    """The folder on this host that a store location names (a plain path or file://), else None."""
    if not is_url(location):
        return Path(location).expanduser()
    return Path(location[len("file://"):]) if location.startswith("file://") else None


def check_location(location: str) -> str | None:
    """Why `location` cannot be a store here (an unknown protocol, its package not installed), or None."""
    if not is_url(location):
        return None
    import fsspec

    protocol = location.split("://", 1)[0]
    try:
        fsspec.get_filesystem_class(protocol)
    except ValueError:
        return f"{protocol}:// is not a protocol fsspec knows"
    except ImportError as exc:
        return f"{protocol}:// needs a package that is not installed here: {exc}"
    return None


def main(argv: list[str] | None = None) -> int:
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--store", default=os.environ.get("AUTODIDACT_MODEL_STORE", ""),
                       help="a folder or an fsspec URL (default: AUTODIDACT_MODEL_STORE)")
    where.add_argument("--cache", default=os.path.join(os.environ.get("AUTODIDACT_DATA_DIR") or "var", "model-cache"),
                       help="where a URL store's versions are copied to (default: the data dir's model-cache)")
    parser = argparse.ArgumentParser(description="Publish a sealed model folder to a model store, or fetch one.")
    commands = parser.add_subparsers(dest="command", required=True)
    put = commands.add_parser("put", parents=[where], help="publish FOLDER as KEY")
    put.add_argument("folder")
    put.add_argument("key")
    fetch = commands.add_parser("fetch", parents=[where], help="print a checked local folder holding KEY")
    fetch.add_argument("key")
    args = parser.parse_args(argv)
    try:
        store = open_store(args.store, args.cache)
        print(store.put(args.folder, args.key) if args.command == "put" else store.fetch(args.key))
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
