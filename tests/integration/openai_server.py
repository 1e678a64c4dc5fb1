"""A small OpenAI-compatible HTTP server on 127.0.0.1 for the openai backend's tests.

It speaks enough of the API for the backend: ``GET /v1/models``, ``POST /v1/completions`` and
``POST /v1/chat/completions``, with an API key check, a model check (404 ``model_not_found`` as
vLLM and OpenAI answer), ``n`` choices, stop strings applied as a server would, and usage. What
the text is comes from ``answer(body, choice_index) -> str``; ``fault(request) -> Reply | None``
lets a test fail chosen requests (500, 429 with Retry-After, ...). Every request is recorded.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float = field(default_factory=time.monotonic)  # when it arrived


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def openai_error(status: int, message: str, code: str | None = None, kind: str = "invalid_request_error") -> Reply:
    return Reply(status, {"error": {"message": message, "type": kind, "param": None, "code": code}})


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() waits for the handlers: none outlives its test
    block_on_close = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that gave up (a timeout test) closed the connection: nothing to report
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class FakeOpenAIServer:
    """``with FakeOpenAIServer(answer) as server: ... server.url ...``"""

    def __init__(
        self,
        answer: Callable[[dict, int], str] | None = None,
        *,
        models: tuple[str, ...] = ("test-model",),
        api_key: str | None = None,
        fault: Callable[[Request], Reply | None] | None = None,
        honour_n: bool = True,
    ) -> None:
        self.answer = answer or (lambda body, index: "pass\n")
        self.models = models
        self.api_key = api_key
        self.fault = fault
        self.honour_n = honour_n
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> FakeOpenAIServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode(errors="replace")
                request = Request(method, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                with server.lock:
                    server.requests.append(request)
                reply = server.handle(request)
                data = json.dumps(reply.body).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    @property
    def root(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def url(self) -> str:
        return self.root + "/v1"

    def posts(self, path: str | None = None) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.method == "POST" and (path is None or r.path == path)]

    # -- the API ---------------------------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        if self.api_key is not None and request.headers.get("authorization") != f"Bearer {self.api_key}":
            return openai_error(401, "Incorrect API key provided.", "invalid_api_key")
        if request.method == "GET" and request.path == "/v1/models":
            return Reply(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in self.models]})
        if request.method != "POST" or request.path not in ("/v1/completions", "/v1/chat/completions"):
            return Reply(404, {"detail": "Not Found"})
        if self.fault is not None and (reply := self.fault(request)) is not None:
            return reply
        body = request.body
        if body.get("model") not in self.models:
            return openai_error(404, f"The model `{body.get('model')}` does not exist.", "model_not_found")
        chat = request.path.endswith("/chat/completions")
        n = int(body.get("n", 1)) if self.honour_n else 1
        choices, tokens = [], 0
        for index in range(n):
            text = self.answer(body, index)
            cuts = [i for s in body.get("stop") or [] if (i := text.find(s)) >= 0]
            if cuts:
                text = text[: min(cuts)]
            tokens += len(text.split())
            choice: dict[str, Any] = {"index": index, "finish_reason": "stop"}
            choice.update({"message": {"role": "assistant", "content": text}} if chat else {"text": text})
            choices.append(choice)
        return Reply(
            200,
            {
                "id": "cmpl-test",
                "object": "chat.completion" if chat else "text_completion",
                "model": body["model"],
                "choices": choices,
                "usage": {"prompt_tokens": 1, "completion_tokens": tokens, "total_tokens": tokens + 1},
            },
        )
