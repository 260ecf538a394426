"""A small client for OpenAI-compatible chat endpoints (vLLM, Ollama, llama.cpp server, hosted APIs).

Only ``POST {base_url}/chat/completions`` is used, with the standard library's HTTP client (no extra
dependency). The base URL is the one OpenAI clients take, ending in ``/v1`` for most servers::

    client = ChatClient.from_env(base_url="http://localhost:8000/v1", model="google/gemma-3-12b-it",
                                 cache_dir="~/.cache/momentkit/llm", concurrency=8)
    answer = client.chat([{"role": "user", "content": "Say hi"}])
    answers = client.map(lambda m: client.chat(m), list_of_message_lists)

Endpoint settings come from the arguments, else the environment: ``MOMENTKIT_LLM_BASE_URL`` (else
``OPENAI_BASE_URL``), ``MOMENTKIT_LLM_MODEL``, ``MOMENTKIT_LLM_API_KEY`` (else ``OPENAI_API_KEY``;
no key is sent when there is none, as local servers expect).

- **Retries**: connection errors, time-outs, HTTP 408, 409, 429 and 5xx, and 200 answers whose body
  is not a chat completion are retried up to ``max_retries`` times, waiting ``backoff * 2**attempt``
  seconds (at most ``max_backoff``, plus up to ``jitter`` of it at random), or the server's
  ``Retry-After`` when it sends one. Other HTTP errors (400, 401, 404, ...) fail at once.
  A call that still fails raises :class:`LLMError` (an :class:`~momentkit.errors.InputError`: the
  command line prints one line naming the endpoint).
- **Concurrency**: at most ``concurrency`` requests are in flight at once, whichever threads make
  them; :meth:`ChatClient.map` runs a function over items on a pool of that many threads and stops
  at the first failure.
- **Cache**: with ``cache_dir``, each answer is stored in ``cache_dir/ab/abcdef....json`` under the
  SHA-256 of (base URL, model, messages, parameters), written atomically as soon as it arrives. A
  cached request is never sent again, so an interrupted or repeated run costs nothing twice. The
  API key is not part of the key. Unreadable cache files count as misses and are rewritten.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, TypeVar

from momentkit.errors import InputError
from momentkit.io import write_json

ENV_BASE_URL = ("MOMENTKIT_LLM_BASE_URL", "OPENAI_BASE_URL")
ENV_MODEL = ("MOMENTKIT_LLM_MODEL",)
ENV_API_KEY = ("MOMENTKIT_LLM_API_KEY", "OPENAI_API_KEY")
RETRY_STATUS = frozenset({408, 409, 429}) | frozenset(range(500, 600))
CACHE_VERSION = 1

Message = dict[str, str]
T = TypeVar("T")
R = TypeVar("R")


class LLMError(InputError):
    """A chat request that failed for good (after the retries, or at once for a non-retryable error)."""


@dataclass
class ClientStats:
    """Counters of one client (thread-safe through the client's lock)."""

    calls: int = 0  # chat() calls
    cache_hits: int = 0  # calls answered from the cache
    requests: int = 0  # HTTP requests sent (retries included)
    retries: int = 0  # requests that were repeats of a failed one

    def as_dict(self) -> dict[str, int]:
        return {"calls": self.calls, "cache_hits": self.cache_hits, "requests": self.requests,
                "retries": self.retries}


def _first_env(names: Sequence[str]) -> str | None:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def cache_key(base_url: str, model: str, messages: Sequence[Message], params: dict[str, Any]) -> str:
    """SHA-256 (hex) of the request as the cache sees it."""
    blob = json.dumps({"v": CACHE_VERSION, "base_url": base_url, "model": model, "messages": list(messages),
                       "params": params}, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (a number of seconds or an HTTP date), or None."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class _Retryable(Exception):
    def __init__(self, message: str, wait: float | None = None) -> None:
        super().__init__(message)
        self.wait = wait


@dataclass
class ChatClient:
    """Chat completions from one OpenAI-compatible endpoint, with retries, a concurrency limit and a cache.

    ``params`` are sent with every request (e.g. ``{"temperature": 0}``) and are part of the cache key.
    """

    base_url: str
    model: str
    api_key: str | None = None
    params: dict[str, Any] = field(default_factory=lambda: {"temperature": 0.0})
    cache_dir: str | os.PathLike | None = None
    concurrency: int = 4
    max_retries: int = 5
    backoff: float = 1.0
    max_backoff: float = 60.0
    jitter: float = 0.1
    timeout: float = 120.0
    sleep: Callable[[float], None] = time.sleep
    stats: ClientStats = field(default_factory=ClientStats)

    def __post_init__(self) -> None:
        if not isinstance(self.base_url, str) or not self.base_url.strip():
            raise InputError("no LLM endpoint: pass --base-url or set " + " or ".join(ENV_BASE_URL),
                             field="base_url")
        self.base_url = self.base_url.strip().rstrip("/")
        if not self.base_url.startswith(("http://", "https://")):
            raise InputError(f"the LLM base URL must start with http:// or https://, got {self.base_url!r}",
                             field="base_url")
        if not isinstance(self.model, str) or not self.model.strip():
            raise InputError("no LLM model: pass --model or set " + " or ".join(ENV_MODEL), field="model")
        self.model = self.model.strip()
        if isinstance(self.concurrency, bool) or not isinstance(self.concurrency, int) or self.concurrency < 1:
            raise InputError(f"must be a positive integer, got {self.concurrency!r}", field="concurrency")
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise InputError(f"must be an integer >= 0, got {self.max_retries!r}", field="max_retries")
        if self.cache_dir is not None:
            self.cache_dir = Path(self.cache_dir).expanduser()
            if self.cache_dir.exists() and not self.cache_dir.is_dir():
                raise InputError("the LLM cache must be a folder", path=self.cache_dir)
        self.params = dict(self.params)
        self._slots = threading.BoundedSemaphore(self.concurrency)
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, base_url: str | None = None, model: str | None = None, api_key: str | None = None,
                 **kwargs: Any) -> ChatClient:
        """A client whose missing endpoint settings come from the environment (see the module doc)."""
        return cls(base_url=base_url or _first_env(ENV_BASE_URL) or "",
                   model=model or _first_env(ENV_MODEL) or "",
                   api_key=api_key or _first_env(ENV_API_KEY), **kwargs)

    @property
    def url(self) -> str:
        return f"{self.base_url}/chat/completions"

    # -- the cache ---------------------------------------------------------------------------------

    def _cache_path(self, key: str) -> Path | None:
        return None if self.cache_dir is None else Path(self.cache_dir) / key[:2] / f"{key}.json"

    @staticmethod
    def _read_cache(path: Path | None) -> str | None:
        if path is None or not path.is_file():
            return None
        try:
            answer = json.loads(path.read_text(encoding="utf-8"))["answer"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return answer if isinstance(answer, str) else None

    def cached(self, messages: Sequence[Message]) -> str | None:
        """The cached answer to ``messages``, or None."""
        messages = [{"role": str(m["role"]), "content": str(m["content"])} for m in messages]
        return self._read_cache(self._cache_path(cache_key(self.base_url, self.model, messages, self.params)))

    # -- one call ----------------------------------------------------------------------------------

    def chat(self, messages: Sequence[Message]) -> str:
        """The assistant's answer (text) to ``messages``, from the cache or the endpoint."""
        messages = [{"role": str(m["role"]), "content": str(m["content"])} for m in messages]
        with self._lock:
            self.stats.calls += 1
        path = self._cache_path(cache_key(self.base_url, self.model, messages, self.params))
        answer = self._read_cache(path)
        if answer is not None:
            with self._lock:
                self.stats.cache_hits += 1
            return answer
        answer = self._request(messages)
        if path is not None:
            write_json(path, {"model": self.model, "base_url": self.base_url, "params": self.params,
                              "messages": messages, "answer": answer}, indent=None)
        return answer

    def _request(self, messages: list[Message]) -> str:
        body = json.dumps({"model": self.model, "messages": messages, **self.params}).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                with self._lock:
                    self.stats.retries += 1
            try:
                with self._slots:
                    with self._lock:
                        self.stats.requests += 1
                    return self._post(body, headers)
            except _Retryable as e:
                last = str(e)
                if attempt == self.max_retries:
                    break
                delay = e.wait if e.wait is not None else min(self.max_backoff, self.backoff * 2 ** attempt)
                delay = min(delay, self.max_backoff)
                if e.wait is None and self.jitter:
                    delay += random.uniform(0.0, self.jitter * delay)
                self.sleep(delay)
        raise LLMError(f"{self.url}: {last} (gave up after {self.max_retries + 1} attempts)")

    def _post(self, body: bytes, headers: dict[str, str]) -> str:
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as e:
            detail = _error_detail(e)
            message = f"HTTP {e.code}{': ' + detail if detail else ''}"
            if e.code in RETRY_STATUS:
                raise _Retryable(message, _retry_after(e.headers.get("Retry-After") if e.headers else None)) \
                    from None
            raise LLMError(f"{self.url}: {message}") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
            reason = getattr(e, "reason", e)
            raise _Retryable(f"cannot reach the endpoint ({reason})") from None
        try:
            data = json.loads(raw.decode("utf-8"))
            content = data["choices"][0]["message"].get("content")
        except (UnicodeDecodeError, ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise _Retryable(f"the answer is not a chat completion: {raw[:200]!r}") from None
        return "" if content is None else str(content)

    # -- many calls --------------------------------------------------------------------------------

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``[fn(x) for x in items]`` on ``concurrency`` threads, in order.

        The first exception cancels the calls not yet started and is raised once the running ones
        end (their answers are cached, so a re-run does not pay for them again).
        """
        items = list(items)
        if not items:
            return []
        if self.concurrency == 1 or len(items) == 1:
            return [fn(x) for x in items]
        pool = ThreadPoolExecutor(max_workers=min(self.concurrency, len(items)), thread_name_prefix="momentkit-llm")
        try:
            futures = [pool.submit(fn, x) for x in items]
            wait(futures, return_when=FIRST_EXCEPTION)
            for f in futures:
                if f.done() and not f.cancelled() and f.exception() is not None:
                    raise f.exception()
            return [f.result() for f in futures]
        finally:
            # on a failure or Ctrl-C: drop what has not started, let the running calls end (and be cached)
            pool.shutdown(wait=True, cancel_futures=True)


def _error_detail(e: urllib.error.HTTPError) -> str:
    """A short message from an HTTP error body (OpenAI-style ``{"error": {"message": ...}}`` or text)."""
    try:
        raw = e.read()[:2000].decode("utf-8", errors="replace")
    except Exception:  # noqa: BLE001 - best effort only
        return ""
    try:
        err = json.loads(raw).get("error")
        message = err.get("message") if isinstance(err, dict) else err
        if message:
            return str(message)[:300]
    except (ValueError, AttributeError):
        pass
    return " ".join(raw.split())[:300]
