"""A model behind an OpenAI-compatible HTTP endpoint (a vLLM or llama.cpp server, a hosted API), as
a LanguageModel for sampling: the paper's Codex role, a teacher that writes puzzles.

Why its own retry loop: a teacher run makes thousands of requests, and one timeout, 429 or 5xx,
or a body that is not the JSON the API promises must cost that request a retry (with back-off,
honouring Retry-After), never the run. A request that still fails after the retries comes back
as a Completion with finish_reason "error"; every failure is counted by kind in `errors`.

The key is sent in the Authorization header only: it is never part of a name, a message, a log
line or repr.
"""
from __future__ import annotations

import base64
import json
import math
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from engine.lm.generation import CancelToken, Completion, Prompt, SamplingParams

RETRYABLE = {408, 409, 425, 429, 500, 502, 503, 504}


class EndpointError(RuntimeError):
    def __init__(self, kind: str, detail: str, retry_after: float | None = None):
        super().__init__(f"{kind}: {detail}")
        self.kind, self.retry_after = kind, retry_after


@dataclass(frozen=True)
class Endpoint:
    url: str  # the API base, e.g. http://127.0.0.1:8080/v1
    model: str = ""  # the served model's name ("" = whatever the server serves)
    api_key: str = ""
    timeout_s: float = 120.0
    retries: int = 4
    backoff_s: float = 0.5  # first wait; doubles each retry
    parallel: int = 4  # requests in flight at once

    def __repr__(self) -> str:  # never the key, nor credentials in the URL
        return f"Endpoint(url={self.shown_url!r}, model={self.model!r}, key={'set' if self.api_key else 'none'})"

    @property
    def shown_url(self) -> str:
        parts = urlsplit(self.url)
        if parts.username is None and parts.password is None:
            return self.url
        return parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()

    @property
    def base(self) -> str:
        base = self.shown_url.rstrip("/")
        return base if base.endswith("/v1") else base + "/v1"

    def headers(self) -> dict:
        """JSON, and the key as a bearer token, or else the URL's user and password (a proxy's
        basic auth): never in the URL a request is sent to, where errors and logs would show it."""
        headers = {"Content-Type": "application/json"}
        parts = urlsplit(self.url)
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        elif parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        return headers


class EndpointModel:
    """Samples from an OpenAI-compatible endpoint; counts failures in `errors` (kind -> n) and
    retries in `retried`."""

    backend = "openai-endpoint"
    precision = "unknown (served by the endpoint)"
    tokenizer = None  # prompts are sent as text or as chat messages; the server applies its template

    def __init__(self, endpoint: Endpoint):
        self.endpoint = endpoint
        self.errors: Counter = Counter()
        self.retried = 0
        self._lock = threading.Lock()
        self._tokenize_works: bool | None = None
        host = urlsplit(endpoint.shown_url).netloc or endpoint.shown_url
        self.name = f"{endpoint.model or 'served model'} @ {host}"
        self.load_seconds = 0.0

    def __repr__(self) -> str:
        return f"EndpointModel({self.endpoint!r})"

    # -- HTTP ------------------------------------------------------------------------------------
    def _post(self, path: str, body: dict, timeout: float | None = None) -> dict:
        request = urllib.request.Request(self.endpoint.base + path, json.dumps(body).encode(), self.endpoint.headers(),
                                         method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.endpoint.timeout_s) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            retry_after = exc.headers.get("Retry-After") if exc.headers else None
            kind = "http-429" if exc.code == 429 else f"http-{exc.code // 100}xx" if exc.code >= 500 else f"http-{exc.code}"
            raise EndpointError(kind, f"the server answered {exc.code}",
                                float(retry_after) if retry_after and retry_after.replace(".", "", 1).isdigit() else None) \
                from None
        except TimeoutError:
            raise EndpointError("timeout", f"no answer within {timeout or self.endpoint.timeout_s:g} s") from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, (TimeoutError, socket.timeout)):
                raise EndpointError("timeout", f"no answer within {timeout or self.endpoint.timeout_s:g} s") from None
            raise EndpointError("connection", str(exc.reason)) from None
        except (ConnectionError, OSError) as exc:
            raise EndpointError("connection", type(exc).__name__) from None
        try:
            return json.loads(raw)
        except ValueError:
            shown = raw[:60].decode(errors="replace")
            if self.endpoint.api_key:  # a proxy that echoes the request must not put the key in a message
                shown = shown.replace(self.endpoint.api_key, "***")
            raise EndpointError("bad-json", f"the body is not JSON ({shown!r})") from None

    def _with_retries(self, call, cancel: CancelToken | None):
        wait = self.endpoint.backoff_s
        for attempt in range(self.endpoint.retries + 1):
            try:
                return call()
            except EndpointError as exc:
                with self._lock:
                    self.errors[exc.kind] += 1
                retryable = exc.kind in ("timeout", "connection", "bad-json", "http-429", "http-5xx")
                if not retryable or attempt == self.endpoint.retries or (cancel is not None and cancel.cancelled):
                    raise
                with self._lock:
                    self.retried += 1
                time.sleep(min(exc.retry_after if exc.retry_after is not None else wait, 30.0))
                wait *= 2
        raise AssertionError("unreachable")

    # -- the LanguageModel surface -----------------------------------------------------------------
    def encode(self, prompt: Prompt) -> list[int]:
        """Token ids from the server's tokenizer where it has one (llama.cpp's and vLLM's do), else a
        count-only estimate (3 characters a token): used to fit prompts to the context."""
        text = prompt if isinstance(prompt, str) else "\n".join(str(m.get("content", "")) for m in prompt)
        if self._tokenize_works is not False:
            root = self.endpoint.base[: -len("/v1")]
            for url, body in ((root + "/extras/tokenize", {"input": text}), (root + "/tokenize", {"prompt": text})):
                try:
                    request = urllib.request.Request(url, json.dumps(body).encode(), self.endpoint.headers(),
                                                     method="POST")
                    with urllib.request.urlopen(request, timeout=10) as response:
                        tokens = json.loads(response.read()).get("tokens")
                    if isinstance(tokens, list):
                        self._tokenize_works = True
                        return tokens
                except (OSError, ValueError, urllib.error.URLError):
                    continue
            self._tokenize_works = False
        return [0] * math.ceil(len(text) / 3)

    def _one(self, prompt: Prompt, params: SamplingParams, seed: int | None,
             cancel: CancelToken | None) -> Completion:
        body = {"max_tokens": params.max_new_tokens, "temperature": params.temperature, "top_p": params.top_p}
        if self.endpoint.model:
            body["model"] = self.endpoint.model
        if params.top_k:
            body["top_k"] = params.top_k  # not in OpenAI's API; vLLM and llama.cpp read it, others ignore it
        if params.stop:
            body["stop"] = list(params.stop)[:4]  # OpenAI's limit
        if seed is not None:
            body["seed"] = seed
        chat = not isinstance(prompt, str)
        path = "/chat/completions" if chat else "/completions"
        body["messages" if chat else "prompt"] = prompt

        def call() -> Completion:
            answer = self._post(path, body)
            try:
                choice = answer["choices"][0]
                text = choice["message"]["content"] if chat else choice["text"]
                if not isinstance(text, str):
                    raise TypeError
            except (KeyError, IndexError, TypeError):
                raise EndpointError("bad-json", "no completion text in the answer") from None
            usage = answer.get("usage") or {}
            tokens = int(usage.get("completion_tokens") or 0) or max(1, len(text) // 3)
            finish = {"length": "length", "stop": "stop" if params.stop else "eos"}.get(choice.get("finish_reason"), "eos")
            return Completion(text, tokens, finish)

        try:
            return self._with_retries(call, cancel)
        except EndpointError as exc:
            return Completion("", 0, "error:" + exc.kind)

    def sample(self, prompt: Prompt, n: int, params: SamplingParams,
               cancel: CancelToken | None = None) -> list[Completion]:
        return self.sample_many([prompt], n, params, cancel)[0]

    def sample_many(self, prompts: list[Prompt], n: int, params: SamplingParams,
                    cancel: CancelToken | None = None) -> list[list[Completion]]:
        """n completions of each prompt, `parallel` requests at a time; sample i of a prompt is
        seeded params.seed + i, so a rerun asks for the same samples."""
        jobs = [(p, i) for p in range(len(prompts)) for i in range(n)]

        def run(job):
            p, i = job
            if cancel is not None and cancel.cancelled:
                return Completion("", 0, "cancelled")
            return self._one(prompts[p], params, None if params.seed is None else params.seed + i, cancel)

        with ThreadPoolExecutor(max_workers=max(1, self.endpoint.parallel)) as pool:
            results = list(pool.map(run, jobs))
        return [results[p * n:(p + 1) * n] for p in range(len(prompts))]

    def complete(self, prompt: Prompt, params: SamplingParams, cancel: CancelToken | None = None) -> Completion:
        return self._one(prompt, params, params.seed, cancel)

    def close(self) -> None:
        pass
