"""Generation through any OpenAI-compatible HTTP server (vLLM, SGLang, TGI, llama.cpp server, OpenAI).

Endpoints: completion-style prompts go to ``POST {base}/completions`` with ``prompt.text``;
chat-style prompts go to ``POST {base}/chat/completions`` with ``prompt.messages``. ``base`` is
``--base-url`` as given, or ``<url>/v1`` when the URL has no path (``http://host:8000``).

Response prefix (chat): when the prompt starts the assistant turn (evalplus's "Below is a Python
script ... ```python"), it is sent as a trailing assistant message together with vLLM's
``continue_final_message: true`` and ``add_generation_prompt: false`` (SGLang accepts them too), so
the model continues that message. Servers that ignore unknown fields still answer, but they may
start a fresh assistant turn instead of continuing the prefix; the code extractor copes with
either text. A server that *rejects* the two fields (HTTP 400 naming them, as api.openai.com does)
is asked again without them, once; later requests leave them out.

Parameters: temperature, top_p, ``max_tokens`` = max_new_tokens, seed, n, and at most
``max_stop`` (4, the OpenAI limit) stop strings, preferring code-structure strings over
special-token strings such as ``<|endoftext|>`` (the server stops at its EOS anyway); the caller
cuts the text at every stop string again. A server that returns fewer than ``n`` choices (llama.cpp,
TGI ignore ``n``) is asked again for the rest, with ``seed + round`` so the extra samples differ.
``finish_reason`` is normalised to "stop" / "length"; the usage's ``completion_tokens`` is recorded
when a response holds one choice (servers report only the total for ``n > 1``: then 0, unknown).

Why httpx rather than the ``openai`` SDK: the SDK brings its own retry policy, error classes and
request validation (``extra_body`` for every vLLM field), all of which would have to be undone to
get this module's behaviour: exact retry rules (429 / 5xx / connection errors / timeouts, honour
Retry-After, never retry other 4xx), error bodies from non-OpenAI servers (vLLM's top-level
``message``, TGI's ``error`` string, FastAPI's ``detail``) and one-line errors. ``httpx`` is a
small, well-kept dependency (the SDK itself is built on it) and is imported only when this
backend is used.

Concurrency: one ``asyncio`` event loop per :meth:`OpenAIBackend.generate` call, at most
``concurrency`` requests in flight (an ``asyncio.Semaphore`` and the client's connection pool).
The first request that fails for good cancels the others and raises one clear error.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import random
import re
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from ra3bench.backends.base import BackendSpec, Completion, GenerationBackend, GenerationParams
from ra3bench.errors import Ra3benchError, UsageError
from ra3bench.prompts import Prompt, PromptStyle

T = TypeVar("T")

RETRY_STATUS = frozenset({408, 409, 425, 429})  # plus every 5xx
PREFIX_EXTRAS = {"continue_final_message": True, "add_generation_prompt": False}
_TOKEN_LIKE = re.compile(r"^<[^<>\s]+>$")  # "<|endoftext|>", "</s>": special tokens as text
MAX_RETRY_AFTER_S = 300.0  # a longer Retry-After is cut to this
MODEL_COMPLAINTS = ("model not found", "unknown model", "invalid model", "no such model", "model does not exist")
_FINISH = {"eos": "stop", "eos_token": "stop", "stop_sequence": "stop", "stop": "stop", "length": "length"}


class GenerationError(Ra3benchError):
    """The server could not give the completions: unreachable, overloaded past the retries, or
    answering something that is not an OpenAI response."""

    exit_code = 1


class _Retryable(Exception):
    """A failure worth another try; ``final`` is what to raise when the tries run out."""

    def __init__(self, final: Ra3benchError, retry_after: float | None = None, rate_limited: bool = False) -> None:
        super().__init__(str(final))
        self.final = final
        self.retry_after = retry_after
        self.rate_limited = rate_limited


def api_base(base_url: str) -> str:
    """``http://host:8000`` -> ``http://host:8000/v1``; a URL with a path is used as given."""
    url = base_url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"--base-url must be an http(s) URL such as http://localhost:8000/v1, not {base_url!r}")
    return url if parts.path not in ("", "/") else url + "/v1"


def server_stop(stop: list[str], limit: int | None = 4) -> list[str]:
    """The stop strings to send: unique, non-empty, code-structure strings before special-token
    strings, at most ``limit`` (None: all)."""
    unique = list(dict.fromkeys(s for s in stop if s))
    ordered = [s for s in unique if not _TOKEN_LIKE.match(s)] + [s for s in unique if _TOKEN_LIKE.match(s)]
    return ordered if limit is None else ordered[:limit]


def retry_after_s(value: str | None) -> float | None:
    """A Retry-After header (seconds, or an HTTP date) in seconds; None if absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_message(body: Any, fallback: str = "") -> str:
    """The server's error text from any of the usual shapes, on one line."""
    text = ""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            text = str(error.get("message") or error.get("code") or "")
        elif isinstance(error, str):
            text = error
        text = text or str(body.get("message") or body.get("detail") or "")
    text = text or fallback
    text = " ".join(str(text).split())
    return text[:300] + ("..." if len(text) > 300 else "")


def _error_code(body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("code") or body["error"].get("type") or "")
    return str(body.get("code") or body.get("type") or "") if isinstance(body, dict) else ""


def _finish(reason: Any) -> str:
    return "" if reason is None else _FINISH.get(str(reason), str(reason))


def _run(coro_factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to the end from synchronous code, also when this thread already has a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro_factory())
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro_factory())
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name="ra3bench-openai")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


class OpenAIBackend(GenerationBackend):
    """Samples from a model behind an OpenAI-compatible server. See the module docstring."""

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        params: GenerationParams | None = None,
        prompt_style: PromptStyle | None = None,
        concurrency: int = 8,
        max_retries: int = 5,
        timeout_s: float = 600.0,
        *,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        max_stop: int | None = 4,
    ) -> None:
        super().__init__(params or GenerationParams(), prompt_style)
        if not model:
            raise UsageError("the openai backend needs --model: the model name the server serves")
        if concurrency < 1 or max_retries < 0 or timeout_s <= 0:
            raise UsageError("need --concurrency >= 1, --max-retries >= 0 and --request-timeout > 0")
        self.base_url = api_base(base_url)
        self.model = model
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.timeout_s = timeout_s
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_stop = max_stop
        # enough prompts per generate() call to keep every connection busy
        self.chunk_size = max(GenerationBackend.chunk_size, 4 * concurrency)
        self.send_prefix_extras = True  # turned off once if the server rejects the vLLM fields
        self.served_model = ""  # the "model" of the first response, for the manifest
        self.requests_sent = 0  # HTTP requests, retries included

    @classmethod
    def from_spec(cls, spec: BackendSpec) -> OpenAIBackend:
        """From a :class:`BackendSpec`: base URL, model, API key, concurrency, retries, request timeout."""
        if not spec.base_url:
            raise UsageError("the openai backend needs --base-url, e.g. http://localhost:8000/v1")
        return cls(
            spec.base_url,
            spec.model,
            api_key=spec.api_key,
            params=spec.params,
            prompt_style=PromptStyle.parse(spec.prompt_style),
            concurrency=spec.concurrency or 8,
            max_retries=spec.max_retries,
            timeout_s=spec.request_timeout or 600.0,
        )

    # -- the GenerationBackend contract ---------------------------------------------------------

    def model_name(self) -> str:
        return self.model

    def prompt_style(self) -> PromptStyle:
        """The style asked for, else chat: OpenAI-compatible servers are mostly run with instruct
        models, and the server applies the chat template."""
        return self.requested_style or PromptStyle.CHAT

    def describe(self) -> dict:
        record = {**super().describe(), "base_url": self.base_url}
        if self.served_model and self.served_model != self.model:
            record["served_model"] = self.served_model
        return record

    def check(self, suite: Any, problems: list[Any]) -> None:
        """Before the run folder is made: the server answers, the key is accepted, and the model is
        among those ``GET /models`` lists (servers without that endpoint are not held to it)."""
        httpx = _httpx()
        url = self.base_url + "/models"
        try:
            response = httpx.get(url, headers=self.headers(), timeout=min(self.timeout_s, 30.0))
        except httpx.HTTPError as exc:
            raise GenerationError(
                f"cannot reach {self.base_url} ({type(exc).__name__}); is the server running?"
            ) from None
        if response.status_code in (401, 403):
            raise UsageError(
                f"{self.base_url} refused the API key ({response.status_code}); check OPENAI_API_KEY / --api-key"
            )
        try:
            items = response.json().get("data") if response.status_code == 200 else None
        except ValueError:
            items = None
        if isinstance(items, list):
            served = [str(i["id"]) for i in items if isinstance(i, dict) and "id" in i]
            if served and self.model not in served:
                offered = ", ".join(served[:20]) + (f" (and {len(served) - 20} more)" if len(served) > 20 else "")
                raise UsageError(
                    f"model {self.model!r} is not served at {self.base_url}; it serves: {offered}"
                    " (pass one of them as --model)"
                )

    def generate(self, prompts: list[Prompt], n: int) -> list[list[Completion]]:
        if not prompts:
            return []
        return _run(lambda: self._generate_all(prompts, n))

    # -- requests --------------------------------------------------------------------------------

    def endpoint(self, prompt: Prompt) -> str:
        return "/chat/completions" if prompt.style is PromptStyle.CHAT else "/completions"

    def payload(self, prompt: Prompt, n: int, seed: int | None = None) -> dict[str, Any]:
        """The JSON body for ``n`` completions of ``prompt``."""
        p = self.params
        body: dict[str, Any] = {"model": self.model}
        if prompt.style is PromptStyle.CHAT:
            messages = [dict(m) for m in prompt.messages]
            if prompt.response_prefix:
                messages.append({"role": "assistant", "content": prompt.response_prefix})
                if self.send_prefix_extras:
                    body.update(PREFIX_EXTRAS)
            body["messages"] = messages
        else:
            body["prompt"] = prompt.text
        body.update(
            temperature=p.temperature,
            top_p=p.top_p,
            max_tokens=p.max_new_tokens,
            n=n,
            seed=p.seed if seed is None else seed,
        )
        stop = server_stop(prompt.stop, self.max_stop)
        if stop:
            body["stop"] = stop
        return body

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json"}

    async def _generate_all(self, prompts: list[Prompt], n: int) -> list[list[Completion]]:
        httpx = _httpx()
        timeout = httpx.Timeout(self.timeout_s, connect=min(self.timeout_s, 30.0))
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        semaphore = asyncio.Semaphore(self.concurrency)
        async with httpx.AsyncClient(headers=self.headers(), timeout=timeout, limits=limits) as client:
            tasks = [asyncio.ensure_future(self._complete(client, semaphore, prompt, n)) for prompt in prompts]
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
                failed = [t for t in tasks if t.done() and not t.cancelled() and t.exception() is not None]
                if failed:
                    raise failed[0].exception()  # type: ignore[misc]
                return [t.result() for t in tasks]
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _complete(self, client: Any, semaphore: asyncio.Semaphore, prompt: Prompt, n: int) -> list[Completion]:
        """``n`` completions of ``prompt``, asking again while the server returns fewer."""
        out: list[Completion] = []
        for round_ in range(n):  # a server that returns at least one choice needs n rounds at most
            want = n - len(out)
            async with semaphore:
                body = await self._post(client, prompt, want, self.params.seed + round_)
            out.extend(self._parse(body, prompt)[:want])
            if len(out) >= n:
                break
        return out

    def _parse(self, body: Any, prompt: Prompt) -> list[Completion]:
        choices = body.get("choices") if isinstance(body, dict) else None
        if not isinstance(choices, list) or not choices:
            raise GenerationError(
                f"{self.base_url}{self.endpoint(prompt)} answered without choices for {prompt.task_id}: "
                f"{error_message(body, str(body)[:200])}"
            )
        if not self.served_model and isinstance(body.get("model"), str):
            self.served_model = body["model"]
        usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
        tokens = usage.get("completion_tokens") if len(choices) == 1 else None
        completions = []
        for choice in sorted(choices, key=lambda c: c.get("index", 0) if isinstance(c, dict) else 0):
            if prompt.style is PromptStyle.CHAT:
                message = choice.get("message") or {}
                text = message.get("content") if isinstance(message, dict) else None
                text = text if text is not None else choice.get("text")
            else:
                text = choice.get("text")
            completions.append(
                Completion(
                    text=text or "",
                    finish_reason=_finish(choice.get("finish_reason")),
                    n_tokens=int(tokens) if isinstance(tokens, int) else 0,
                )
            )
        return completions

    async def _post(self, client: Any, prompt: Prompt, n: int, seed: int) -> Any:
        """One request's JSON answer, retried as the module docstring says."""
        url = self.base_url + self.endpoint(prompt)
        attempt = 0
        while True:
            try:
                return await self._post_once(client, url, prompt, n, seed)
            except _Retryable as retry:
                if attempt >= self.max_retries:
                    if retry.rate_limited:
                        raise GenerationError(
                            f"{url} still rate-limits (429) after {self.max_retries} retries; "
                            "lower --concurrency or try again later"
                        ) from None
                    raise retry.final from None
                delay = min(self.max_backoff_s, self.backoff_s * 2**attempt)
                delay = delay / 2 + random.uniform(0, delay / 2)  # jitter: requests that failed together spread out
                if retry.retry_after is not None:
                    delay = max(delay, min(retry.retry_after, MAX_RETRY_AFTER_S))
                attempt += 1
                await asyncio.sleep(delay)

    async def _post_once(self, client: Any, url: str, prompt: Prompt, n: int, seed: int) -> Any:
        httpx = _httpx()
        body = self.payload(prompt, n, seed)
        self.requests_sent += 1
        try:
            response = await client.post(url, json=body)
        except httpx.TimeoutException as exc:
            raise _Retryable(
                GenerationError(
                    f"{url} did not answer within {self.timeout_s:g}s ({type(exc).__name__}) for {prompt.task_id}; "
                    "raise --request-timeout or lower --concurrency"
                )
            ) from None
        except httpx.TransportError as exc:
            detail = " ".join(str(exc).split()) or type(exc).__name__
            raise _Retryable(
                GenerationError(
                    f"cannot reach the server at {self.base_url} ({detail}); is it running? check --base-url"
                )
            ) from None
        status = response.status_code
        try:
            data = response.json()
        except ValueError:
            data = None
        if status < 400:
            if data is None:
                raise GenerationError(f"{url} answered {status} with a body that is not JSON: {response.text[:200]!r}")
            return data
        message = error_message(data, response.text or response.reason_phrase)
        if status == 429 or status >= 500 or status in RETRY_STATUS:
            raise _Retryable(
                GenerationError(f"{url} answered {status} ({message}) {self.max_retries + 1} times ({prompt.task_id})"),
                retry_after=retry_after_s(response.headers.get("retry-after")),
                rate_limited=status == 429,
            )
        if status in (401, 403):
            raise UsageError(f"{url} refused the request ({status}: {message}); check OPENAI_API_KEY / --api-key")
        if status == 400 and any(key in body and key in message for key in PREFIX_EXTRAS):
            # sent with the vLLM fields and refused for them: leave them out from now on
            self.send_prefix_extras = False
            return await self._post_once(client, url, prompt, n, seed)
        if status == 404 or self._mentions_model(data, message):
            raise await self._model_error(client, url, status, message)
        raise UsageError(f"{url} rejected the request for {prompt.task_id} ({status}: {message})")

    def _mentions_model(self, data: Any, message: str) -> bool:
        code = _error_code(data).lower()
        lowered = message.lower()
        if "model_not_found" in code or any(w in lowered for w in MODEL_COMPLAINTS):
            return True
        return self.model.lower() in lowered and any(w in lowered for w in ("not found", "does not exist"))

    async def _model_error(self, client: Any, url: str, status: int, message: str) -> UsageError:
        """A 404 or a model complaint: name the model and, if the server lists them, the models it serves."""
        served = await self.served_models(client)
        if served is not None and self.model not in served:
            offered = ", ".join(served[:20]) + (f" (and {len(served) - 20} more)" if len(served) > 20 else "")
            return UsageError(
                f"model {self.model!r} is not served at {self.base_url}; it serves: {offered or 'no models'}"
                " (pass one of them as --model)"
            )
        return UsageError(
            f"{url} answered {status} ({message}) for model {self.model!r}; check --model and --base-url "
            "(the API root, usually ending in /v1)"
        )

    async def served_models(self, client: Any) -> list[str] | None:
        """The ids from ``GET {base}/models``, or None if the server does not answer that."""
        try:
            response = await client.get(self.base_url + "/models", timeout=min(self.timeout_s, 30.0))
            data = response.json() if response.status_code == 200 else None
        except Exception:
            return None
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list):
            return None
        return [str(item["id"]) for item in items if isinstance(item, dict) and "id" in item]


def _httpx() -> Any:
    try:
        import httpx
    except ImportError:
        raise UsageError("the openai backend needs httpx: pip install httpx") from None
    return httpx
