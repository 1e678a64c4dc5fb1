"""The docker sandbox's image: find it, or build it online (official base) or offline (no registry).

Images are tagged by content: ``ra3bench-sandbox-python:<12 hex>`` where the hex is a sha256
over the Dockerfile, the harness files and the base image's id, so a changed harness never
runs in a stale image and an unchanged one is never rebuilt. Every image also carries the
label ``ra3bench.sandbox.harness=<sha256 of the Dockerfile + harness>``, by which the docker
sandbox finds an image that matches the code it runs with.

Online (``offline=False``): the base is ``python:3.11-slim``, pulled if missing (needs Docker
Hub: not testable on machines without a registry, the path is kept as written). Offline: the
base ``ra3bench-base:bookworm-python3-numpy`` is made once with ``mmdebstrap`` (a Debian
mirror, no registry) piped into ``docker import``; the same Dockerfile then builds on it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ra3bench.errors import SandboxUnavailableError
from ra3bench.sandbox.harness import server as harness

IMAGE_REPO = "ra3bench-sandbox-python"
ONLINE_BASE = "python:3.11-slim"
OFFLINE_BASE = "ra3bench-base:bookworm-python3-numpy"
MMDEBSTRAP = ["mmdebstrap", "--quiet", "--variant=essential", "--include=python3,python3-numpy", "bookworm", "-"]
LABEL = "ra3bench.sandbox"  # on containers: "1"; images carry LABEL + ".harness" etc.
HARNESS_LABEL = "ra3bench.sandbox.harness"
HARNESS_DIR = Path(harness.__file__).resolve().parent
DOCKERFILE = Path(__file__).resolve().parents[2] / "sandbox_images" / "python" / "Dockerfile"
START_DOCKER = (
    "start it (`sudo systemctl start docker`, or `sudo dockerd &`) or install it (`apt-get install docker.io`)"
)


class ImageMissingError(SandboxUnavailableError):
    """The engine answers but there is no sandbox image for this harness yet."""


_VERBOSE = [True]


def _log(message: str) -> None:
    if _VERBOSE[0]:
        print(f"ra3bench sandbox: {message}", file=sys.stderr, flush=True)


def _first_line(exc: object) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def docker_client(timeout: int = 30) -> Any:
    """A connected docker SDK client, or one clear ``SandboxUnavailableError`` saying what to do."""
    if not shutil.which("docker"):
        raise SandboxUnavailableError("Docker is not installed (no `docker` command): `apt-get install docker.io`")
    try:
        import docker
    except ImportError:
        raise SandboxUnavailableError("the docker Python package is missing: `pip install 'docker>=7'`") from None
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except Exception as exc:
        raise SandboxUnavailableError(
            f"the Docker engine does not answer ({_first_line(exc)}): {START_DOCKER}"
        ) from None
    return client


def _sources() -> list[tuple[str, bytes]]:
    """(path in the build context, content) of every file the image is built from."""
    if not DOCKERFILE.is_file():
        raise SandboxUnavailableError(
            f"{DOCKERFILE} is missing: build the sandbox image from a source checkout of ra3bench"
        )
    files = [("Dockerfile", DOCKERFILE.read_bytes())]
    files += [(f"harness/{p.name}", p.read_bytes()) for p in sorted(HARNESS_DIR.glob("*.py"))]
    return files


def _digest(files: list[tuple[str, bytes]], *extra: str) -> str:
    h = hashlib.sha256()
    for name, data in files:
        h.update(f"{name}\0{len(data)}\0".encode())
        h.update(data)
    for item in extra:
        h.update(f"{item}\0".encode())
    return h.hexdigest()


def harness_digest() -> str:
    """sha256 of the Dockerfile and the harness: the label an image must carry to run this code."""
    return _digest(_sources())


def content_tag(base_id: str) -> str:
    """The image tag for this Dockerfile + harness on the base image with id ``base_id``."""
    return f"{IMAGE_REPO}:{_digest(_sources(), base_id)[:12]}"


def find_image(client: Any) -> str | None:
    """The newest local image built from this Dockerfile and harness (any base), or None."""
    images = client.images.list(filters={"label": f"{HARNESS_LABEL}={harness_digest()}"})
    images.sort(key=lambda image: image.attrs.get("Created", ""), reverse=True)
    for image in images:
        tags = [t for t in image.tags if t.startswith(IMAGE_REPO + ":")]
        if tags:
            return tags[0]
    return None


def _get_image(client: Any, ref: str) -> Any | None:
    import docker.errors

    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None


def _offline_base(client: Any) -> Any:
    """``ra3bench-base:bookworm-python3-numpy``, made with mmdebstrap + docker import if missing."""
    image = _get_image(client, OFFLINE_BASE)
    if image is not None:
        _log(f"base image {OFFLINE_BASE} is present ({image.id[:19]})")
        return image
    if not shutil.which("mmdebstrap"):
        raise SandboxUnavailableError(
            "the offline build needs mmdebstrap to make its base image: `apt-get install mmdebstrap`"
        )
    _log(f"making the base image {OFFLINE_BASE} with mmdebstrap (Debian bookworm, python3 + numpy; ~1 min)")
    # Imported under a temporary tag, renamed only when both ends succeeded: a truncated
    # tarball must never become the base every later build reuses.
    partial = f"{OFFLINE_BASE.split(':')[0]}:partial-{os.getpid()}"
    # mmdebstrap's messages go to our stderr, or (quiet) to a file whose last line the error quotes.
    messages = None if _VERBOSE[0] else tempfile.TemporaryFile()  # noqa: SIM115 - closed below
    try:
        debootstrap = subprocess.Popen(MMDEBSTRAP, stdout=subprocess.PIPE, stderr=messages)
        assert debootstrap.stdout is not None
        try:
            imported = subprocess.run(
                ["docker", "import", "-", partial], stdin=debootstrap.stdout, capture_output=True, text=True
            )
        finally:
            debootstrap.stdout.close()
            debootstrap.wait()
        if debootstrap.returncode != 0:
            said = "see its messages above"
            if messages is not None:
                messages.seek(0)
                lines = messages.read().decode("utf-8", "replace").strip().splitlines()
                said = lines[-1][:200] if lines else "no message"
            raise SandboxUnavailableError(
                f"making the base image failed (mmdebstrap exit code {debootstrap.returncode}: {said}); "
                "mmdebstrap needs root (or user namespaces) and a reachable Debian mirror"
            )
        if imported.returncode != 0:
            raise SandboxUnavailableError(f"`docker import` of the base image failed: {_first_line(imported.stderr)}")
        image = _get_image(client, partial)
        if image is None:
            raise SandboxUnavailableError(f"`docker import` did not produce {partial}")
        repository, tag = OFFLINE_BASE.split(":")
        image.tag(repository, tag)
    finally:
        if messages is not None:
            messages.close()
        with contextlib.suppress(Exception):
            client.images.remove(partial, noprune=True)
    return _get_image(client, OFFLINE_BASE)


def _online_base(client: Any) -> Any:
    """The official ``python:3.11-slim``, pulled if missing."""
    image = _get_image(client, ONLINE_BASE)
    if image is not None:
        return image
    _log(f"pulling {ONLINE_BASE}")
    repository, tag = ONLINE_BASE.split(":")
    try:
        return client.images.pull(repository, tag=tag)
    except Exception as exc:
        raise SandboxUnavailableError(
            f"cannot pull {ONLINE_BASE} ({_first_line(exc)}): without a registry use `ra3bench sandbox build --offline`"
        ) from None


def ensure_image(offline: bool, rebuild: bool = False, client: Any = None, verbose: bool = True) -> str:
    """Build the sandbox image unless an image with the same content tag exists; return the tag.

    Progress goes to stderr unless ``verbose`` is off (the caller then says one line itself).
    """
    _VERBOSE[0] = verbose
    try:
        return _ensure_image(offline, rebuild, client or docker_client())
    finally:
        _VERBOSE[0] = True


def _ensure_image(offline: bool, rebuild: bool, client: Any) -> str:
    base_name = OFFLINE_BASE if offline else ONLINE_BASE
    base = _offline_base(client) if offline else _online_base(client)
    files = _sources()
    tag = content_tag(base.id)
    if not rebuild and _get_image(client, tag) is not None:
        _log(f"{tag} is up to date")
        return tag
    labels = {HARNESS_LABEL: _digest(files), "ra3bench.sandbox.base": base_name, "ra3bench.sandbox.base-id": base.id}
    _log(f"building {tag} on {base_name}")
    with tempfile.TemporaryDirectory(prefix="ra3bench-image-") as context:
        for name, data in files:
            path = Path(context, name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        try:
            # The Engine API's classic builder: it uses the local base image and never pulls (pull=False).
            for chunk in client.api.build(
                path=context,
                tag=tag,
                buildargs={"BASE": base_name},
                labels=labels,
                pull=False,
                nocache=rebuild,
                rm=True,
                forcerm=True,
                decode=True,
            ):
                if "error" in chunk:
                    raise SandboxUnavailableError(f"docker build of {tag} failed: {_first_line(chunk['error'])}")
                if _VERBOSE[0]:
                    sys.stderr.write(chunk.get("stream", ""))
        except SandboxUnavailableError:
            raise
        except Exception as exc:
            raise SandboxUnavailableError(f"docker build of {tag} failed: {_first_line(exc)}") from None
    if _get_image(client, tag) is None:
        raise SandboxUnavailableError(f"docker build finished but {tag} is not there")
    _log(f"built {tag}")
    return tag


def image_info(client: Any, ref: str) -> dict:
    """Tag, id, registry digests and labels of a local image; ``ImageMissingError`` if absent."""
    image = _get_image(client, ref)
    if image is None:
        raise ImageMissingError(f"sandbox image {ref} is missing: run `ra3bench sandbox build --offline`")
    return {
        "tag": ref,
        "id": image.id,
        "digests": list(image.attrs.get("RepoDigests") or []),
        "labels": dict(image.labels or {}),
    }
