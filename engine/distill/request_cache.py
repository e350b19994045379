"""A content-addressed cache of a teacher's completions, on disk: a trace run that is stopped and
run again asks the teacher only for what it has not answered yet (a hosted teacher is paid per
token, a local one costs minutes).

The key is the SHA-256 of the teacher's name, the prompt, the sampling settings and the sample's
index, so a changed prompt or temperature asks again. The file is JSON lines, appended and flushed
one answer at a time; a line cut short by a kill is skipped on reading. Failed requests
(finish_reason "error:…") are not kept, so a resumed run retries them."""
from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import asdict
from pathlib import Path

from engine.lm.generation import CancelToken, Completion, Prompt, SamplingParams


def request_key(model_name: str, prompt: Prompt, params: SamplingParams, index: int) -> str:
    body = json.dumps({"model": model_name, "prompt": prompt, "params": asdict(params), "index": index},
                      sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


class CachedSampler:
    """`sample_many` of `model`, answered from `path` where it can be; counts `hits` and `asked`."""

    def __init__(self, model, path: str | Path):
        self.model, self.path = model, Path(path)
        self.hits = self.asked = 0
        self._lock = threading.Lock()
        self._known: dict[str, Completion] = {}
        if self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                    self._known[row["key"]] = Completion(row["text"], int(row["tokens"]), row["finish"])
                except (ValueError, KeyError, TypeError):
                    continue  # the last line of a killed run

    @property
    def name(self) -> str:
        return getattr(self.model, "name", "model")

    def sample_many(self, prompts: list[Prompt], n: int, params: SamplingParams,
                    cancel: CancelToken | None = None) -> list[list[Completion]]:
        keys = [[request_key(self.name, prompt, params, i) for i in range(n)] for prompt in prompts]
        missing = [p for p, row in enumerate(keys) if any(key not in self._known for key in row)]
        self.hits += sum(1 for row in keys for key in row if key in self._known)
        fresh: dict[str, Completion] = {}
        if missing:
            answers = self.model.sample_many([prompts[p] for p in missing], n, params, cancel)
            self.asked += len(missing) * n
            fresh = {keys[p][i]: answer for p, row in zip(missing, answers) for i, answer in enumerate(row)}
            self._store(fresh)
        return [[self._known.get(key) or fresh[key] for key in row] for row in keys]

    def _store(self, answers: dict[str, Completion]) -> None:
        kept = {key: answer for key, answer in answers.items()
                if not answer.finish_reason.startswith("error") and answer.finish_reason != "cancelled"
                and key not in self._known}
        if not kept:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, self.path.open("a", encoding="utf-8") as handle:
            for key, answer in kept.items():
                handle.write(json.dumps({"key": key, "text": answer.text, "tokens": answer.tokens,
                                         "finish": answer.finish_reason}, ensure_ascii=False) + "\n")
            handle.flush()
        self._known.update(kept)
