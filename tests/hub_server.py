"""A fake Hugging Face Hub on 127.0.0.1, for running the real ``huggingface_hub`` against it end to end.

``FakeHub(repos)`` serves, in the Hub's own URL layout and with the headers ``huggingface_hub`` 2.4 reads:

* ``HEAD``/``GET /{datasets/}{owner}/{name}/resolve/{revision}/{path}``: ``X-Repo-Commit``, ``ETag``; an LFS
  file (the default) also ``X-Linked-Etag`` (its sha256) and ``X-Linked-Size``, and, as the Hub does, a
  302 to a CDN (a second server on another port, so ``huggingface_hub`` treats it as a foreign host and
  drops the token); a file listed in ``plain`` is kept "in git": ``ETag`` is its git blob id, served directly;
* ``GET /api/{type}s/{repo}/revision/{revision}`` (``repo_info``/``dataset_info``),
  ``POST /api/{type}s/{repo}/paths-info/{revision}`` (``get_paths_info``) and
  ``GET /api/{type}s/{repo}/tree/{revision}[/{path}]`` (``list_repo_tree``, ``list_repo_files``);
* ``GET /api/agent-harnesses`` (``huggingface_hub`` asks it once per process, when building its
  user agent): an empty registry.

Errors carry the ``X-Error-Code`` header ``hf_raise_for_status`` maps to exceptions: ``RevisionNotFound``,
``EntryNotFound`` (404, with ``X-Repo-Commit``), ``RepoNotFound`` (401 without a token, 404 with one, as
the Hub answers), ``GatedRepo`` (403); a wrong token is a 401 "Invalid credentials in Authorization header".

Repositories are data: ``{repo_id: {commit_sha: {path: bytes}}}``; ``branches`` maps ``{repo_id: {name:
commit_sha}}`` (default: ``main`` is each repo's last commit) and may be changed while serving (a branch
that moves). ``token`` makes every repository private to that token; ``gated`` lists repositories whose
conditions were not accepted; ``tamper`` maps a path to other bytes served for it while headers and APIs
still describe the original (a tampering mirror). Every request is recorded in ``requests``
(server, method, path, Authorization header). Only 127.0.0.1 is ever bound.

``huggingface_hub`` reads its environment once, at import, into ``huggingface_hub.constants``; setting
``HF_ENDPOINT`` in a test is not enough. :func:`use_fake_hub` sets the variables *and* patches those
constants (``ENDPOINT``, the resolve URL template built from it, the cache, token and offline settings)
through ``monkeypatch``, so each test has its own endpoint, cache and token state.
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import pytest

HOST = "127.0.0.1"
_TYPE_PREFIXES = {"datasets": "dataset", "spaces": "space", "models": "model"}


def commit_sha(label: str) -> str:
    """A 40-hex commit id made from a label (``commit_sha("v1")``)."""
    return hashlib.sha1(label.encode()).hexdigest()


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def git_blob_id(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass(frozen=True)
class Request:
    server: str  # "hub" or "cdn"
    method: str
    path: str  # as sent, query included
    authorization: str | None


@dataclass
class _Reply:
    status: int
    headers: dict[str, str]
    body: bytes = b""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class FakeHub:
    """``with FakeHub({"org/data": {sha: {"a.jsonl": b"..."}}}) as hub: ... hub.url ...``"""

    def __init__(
        self,
        repos: dict[str, dict[str, dict[str, bytes]]],
        branches: dict[str, dict[str, str]] | None = None,
        *,
        repo_type: str = "dataset",
        token: str | None = None,
        gated: Iterable[str] = (),
        plain: Iterable[str] = (),
        tamper: dict[str, bytes] | None = None,
    ) -> None:
        self.repos = repos
        self.branches = branches if branches is not None else {r: {"main": list(c)[-1]} for r, c in repos.items()}
        self.repo_type = repo_type
        self.token = token
        self.gated = set(gated)
        self.plain = set(plain)
        self.tamper = dict(tamper or {})
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._servers: list[tuple[_Server, threading.Thread]] = []
        self.url = ""
        self.cdn_url = ""

    # -- what tests look at ----------------------------------------------------------------------

    def calls(self, method: str | None = None, contains: str = "", server: str | None = None) -> list[Request]:
        """Recorded requests, filtered by method, a substring of the path, and server ("hub"/"cdn")."""
        with self._lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method)
                and contains in r.path
                and (server is None or r.server == server)
            ]

    def file_calls(self, path: str, method: str | None = None) -> list[Request]:
        """Requests for one file's body or metadata: its resolve URL on the hub and its blob on the CDN."""
        with self._lock:
            blobs = {f"/lfs/{sha256(files[path])}" for commits in self.repos.values() for files in commits.values()
                     if path in files}  # fmt: skip
            return [
                r
                for r in self.requests
                if (method is None or r.method == method)
                and (("/resolve/" in r.path and r.path.endswith("/" + quote(path))) or r.path in blobs)
            ]

    def move_branch(self, repo_id: str, branch: str, commit: str) -> None:
        with self._lock:
            self.branches.setdefault(repo_id, {})[branch] = commit

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> FakeHub:
        hub_server = self._start("hub")
        cdn_server = self._start("cdn")
        self.url = f"http://{HOST}:{hub_server.server_address[1]}"
        self.cdn_url = f"http://{HOST}:{cdn_server.server_address[1]}"
        return self

    def __exit__(self, *exc: object) -> None:
        for server, thread in self._servers:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
        self._servers.clear()

    def _start(self, name: str) -> _Server:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_HEAD(self) -> None:
                self._serve("HEAD")

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with fake._lock:
                    fake.requests.append(Request(name, method, self.path, self.headers.get("Authorization")))
                    reply = fake._route(name, method, self.path, self.headers, body)
                self.send_response(reply.status)
                headers = {"Content-Length": str(len(reply.body)), "Connection": "close", **reply.headers}
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                if method != "HEAD" and reply.body:
                    self.wfile.write(reply.body)
                self.close_connection = True

        server = _Server((HOST, 0), Handler)
        thread = threading.Thread(target=server.serve_forever, args=(0.02,), name=f"fake-hub-{name}", daemon=True)
        thread.start()
        self._servers.append((server, thread))
        return server

    # -- routing (called with the lock held) ----------------------------------------------------

    def _route(self, server: str, method: str, raw_path: str, headers: Any, body: bytes) -> _Reply:
        path = urlsplit(raw_path).path
        segments = [unquote(s) for s in path.split("/")[1:]]
        if server == "cdn":
            if method in ("GET", "HEAD") and len(segments) == 2 and segments[0] == "lfs":
                return self._cdn_blob(segments[1])
            return _Reply(404, {})
        if path == "/api/agent-harnesses":
            return _json({"standardEnvVars": [], "harnesses": {}})
        if segments[:1] == ["api"] and len(segments) >= 6:
            kind, owner, name, action, revision, *rest = segments[1:]
            if _TYPE_PREFIXES.get(kind) != self.repo_type:
                return _error(404, "RepoNotFound", "Repository not found")
            refused = self._refuse(f"{owner}/{name}", headers)
            if refused is not None:
                return refused
            repo_id = f"{owner}/{name}"
            commit = self._commit(repo_id, revision)
            if commit is None:
                return _error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            if action == "revision" and method == "GET" and not rest:
                return self._repo_info(repo_id, commit)
            if action == "paths-info" and method == "POST" and not rest:
                form = parse_qs(body.decode())
                return _json([e for p in form.get("paths", []) if (e := self._entry(repo_id, commit, p))])
            if action == "tree" and method == "GET":
                query = parse_qs(urlsplit(raw_path).query)
                recursive = query.get("recursive", ["false"])[0].lower() == "true"
                return self._tree(repo_id, commit, "/".join(rest), recursive)
            return _Reply(404, {})
        # /{datasets/}{owner}/{name}/resolve/{revision}/{path...}
        prefix = next((p for p, t in _TYPE_PREFIXES.items() if t == self.repo_type and p != "models"), "")
        if prefix:
            if segments[:1] != [prefix]:
                return _error(404, "RepoNotFound", "Repository not found")
            segments = segments[1:]
        if len(segments) >= 5 and segments[2] == "resolve" and method in ("GET", "HEAD"):
            owner, name, _, revision, *rest = segments
            return self._resolve(f"{owner}/{name}", revision, "/".join(rest), method, headers)
        return _Reply(404, {})

    def _refuse(self, repo_id: str, headers: Any) -> _Reply | None:
        auth = headers.get("Authorization")
        if self.token is not None and auth is not None and auth != f"Bearer {self.token}":
            return _Reply(401, {"X-Error-Message": "Invalid credentials in Authorization header"}, b"Unauthorized")
        if repo_id not in self.repos or (self.token is not None and auth is None):
            return _error(401 if auth is None else 404, "RepoNotFound", "Repository not found")
        if repo_id in self.gated:
            return _error(403, "GatedRepo", f"Access to {self.repo_type} {repo_id} is restricted")
        return None

    def _commit(self, repo_id: str, revision: str) -> str | None:
        if revision in self.branches.get(repo_id, {}):
            return self.branches[repo_id][revision]
        return revision if revision in self.repos[repo_id] else None

    def _resolve(self, repo_id: str, revision: str, path: str, method: str, headers: Any) -> _Reply:
        refused = self._refuse(repo_id, headers)
        if refused is not None:
            return refused
        commit = self._commit(repo_id, revision)
        if commit is None:
            return _error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        files = self.repos[repo_id][commit]
        if path not in files:
            reply = _error(404, "EntryNotFound", f"{path} does not exist on {revision!r}")
            reply.headers["X-Repo-Commit"] = commit
            return reply
        content = files[path]
        served = self.tamper.get(path, content)
        if path in self.plain:
            return _Reply(200, {"X-Repo-Commit": commit, "ETag": f'"{git_blob_id(content)}"'}, served)
        digest = sha256(content)
        return _Reply(
            302,
            {
                "X-Repo-Commit": commit,
                "ETag": f'"{git_blob_id(_lfs_pointer(content))}"',
                "X-Linked-Etag": f'"{digest}"',
                "X-Linked-Size": str(len(content)),
                "Location": f"{self.cdn_url}/lfs/{digest}",
            },
        )

    def _cdn_blob(self, digest: str) -> _Reply:
        for commits in self.repos.values():
            for files in commits.values():
                for path, content in files.items():
                    if sha256(content) == digest:
                        return _Reply(200, {"ETag": f'"{digest}"'}, self.tamper.get(path, content))
        return _Reply(404, {})

    def _entry(self, repo_id: str, commit: str, path: str) -> dict[str, Any] | None:
        files = self.repos[repo_id][commit]
        if path in files:
            content = files[path]
            if path in self.plain:
                return {"type": "file", "oid": git_blob_id(content), "size": len(content), "path": path}
            pointer = _lfs_pointer(content)
            lfs = {"oid": sha256(content), "size": len(content), "pointerSize": len(pointer)}
            return {"type": "file", "oid": git_blob_id(pointer), "size": len(content), "path": path, "lfs": lfs}
        if any(p.startswith(path + "/") for p in files):
            return {"type": "directory", "oid": commit_sha(f"{commit}:{path}"), "path": path}
        return None

    def _tree(self, repo_id: str, commit: str, folder: str, recursive: bool) -> _Reply:
        files = self.repos[repo_id][commit]
        base = folder + "/" if folder else ""
        if folder and not any(p.startswith(base) for p in files):
            return _error(404, "EntryNotFound", f"{folder} does not exist")
        names: set[str] = set()
        for path in files:
            if path.startswith(base):
                parts = path[len(base) :].split("/")
                stop = len(parts) if recursive else 1
                names.update(base + "/".join(parts[: i + 1]) for i in range(stop))
        return _json([self._entry(repo_id, commit, name) for name in sorted(names)])

    def _repo_info(self, repo_id: str, commit: str) -> _Reply:
        siblings = []
        for path, content in sorted(self.repos[repo_id][commit].items()):
            sibling: dict[str, Any] = {"rfilename": path, "size": len(content), "blobId": git_blob_id(content)}
            if path not in self.plain:
                pointer = _lfs_pointer(content)
                sibling["blobId"] = git_blob_id(pointer)
                sibling["lfs"] = {"sha256": sha256(content), "size": len(content), "pointerSize": len(pointer)}
            siblings.append(sibling)
        return _json(
            {"id": repo_id, "sha": commit, "private": self.token is not None, "gated": False, "siblings": siblings}
        )


def _lfs_pointer(content: bytes) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256(content)}\nsize {len(content)}\n".encode()


def _json(value: Any) -> _Reply:
    return _Reply(200, {"Content-Type": "application/json"}, json.dumps(value).encode())


def _error(status: int, code: str, message: str) -> _Reply:
    body = json.dumps({"error": message}).encode()
    return _Reply(status, {"Content-Type": "application/json", "X-Error-Code": code, "X-Error-Message": message}, body)


# --- pointing huggingface_hub at it --------------------------------------------------------------


def use_fake_hub(monkeypatch: pytest.MonkeyPatch, endpoint: str, hf_home: Path, *, offline: bool = False) -> None:
    """Point this test's ``huggingface_hub`` at ``endpoint`` with its own ``HF_HOME`` and no token.

    Sets the environment variables and, since ``huggingface_hub`` read them at import, the matching
    ``huggingface_hub.constants`` (``ENDPOINT`` and ``HUGGINGFACE_CO_URL_TEMPLATE``, from which
    ``hf_hub_url`` builds resolve URLs; ``HF_HOME``, ``HF_HUB_CACHE`` and the token paths, so a
    developer's own token or cache is never used; ``HF_HUB_OFFLINE``). Also closes the shared HTTP
    client, so no connection of an earlier test is reused.
    """
    from huggingface_hub import constants
    from huggingface_hub.utils import close_session

    hub_cache = hf_home / "hub"
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache))
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_OIDC_RESOURCE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HOME", str(hf_home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setattr(constants, "HF_ASSETS_CACHE", str(hf_home / "assets"))
    monkeypatch.setattr(constants, "HF_XET_CACHE", str(hf_home / "xet"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(hf_home / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(hf_home / "stored_tokens"))
    monkeypatch.setattr(constants, "AGENT_HARNESSES_PATH", str(hf_home / ".agent_harnesses.json"))
    set_hf_offline(monkeypatch, offline)
    close_session()


def set_hf_offline(monkeypatch: pytest.MonkeyPatch, offline: bool) -> None:
    """``HF_HUB_OFFLINE=1`` (or not) for the rest of the test, in the environment and in huggingface_hub."""
    from huggingface_hub import constants

    if offline:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)
