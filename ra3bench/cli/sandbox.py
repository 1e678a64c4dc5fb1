"""`ra3bench sandbox ...`: manage the Docker sandbox (``build`` here; ``check`` lives in sandbox_check.py)."""

from __future__ import annotations

import argparse

EXAMPLES = """\
examples:
  ra3bench sandbox build --offline        # no registry: base from mmdebstrap, then the image
  ra3bench sandbox build                  # FROM the official python:3.11-slim (needs Docker Hub)
  ra3bench sandbox build --offline --rebuild
"""

BUILD_EXAMPLES = """\
examples:
  ra3bench sandbox build --offline
  ra3bench sandbox build --offline --rebuild
  ra3bench sandbox build
"""


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "sandbox",
        help="build (and check) the Docker sandbox image",
        description="Manage the Docker sandbox that runs untrusted programs (see docs/sandbox.md).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=lambda args: _usage(parser))
    sandbox_commands = parser.add_subparsers(dest="sandbox_command", metavar="SANDBOX_COMMAND")
    build = sandbox_commands.add_parser(
        "build",
        help="build the sandbox image (skipped when an image with the same content tag exists)",
        description=(
            "Build ra3bench-sandbox-python:<content hash> from sandbox_images/python/Dockerfile and the harness. "
            "Online it starts FROM python:3.11-slim; with --offline FROM a base made by mmdebstrap (a Debian "
            "mirror, no registry). Prints the tag and the image id."
        ),
        epilog=BUILD_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    build.add_argument("--offline", action="store_true", help="no registry: make the base with mmdebstrap")
    build.add_argument("--rebuild", action="store_true", help="build again even if the tag exists (no cache)")
    build.set_defaults(handler=handle_build)
    try:  # `sandbox check` is its own module, owned separately; it registers itself when present
        from ra3bench.cli import sandbox_check
    except ImportError as exc:
        if exc.name != "ra3bench.cli.sandbox_check":
            raise
    else:
        sandbox_check.register(sandbox_commands)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def handle_build(args: argparse.Namespace) -> int:
    from ra3bench.sandbox.image import docker_client, ensure_image, image_info

    client = docker_client()
    tag = ensure_image(offline=args.offline, rebuild=args.rebuild, client=client)
    print(tag)
    print(image_info(client, tag)["id"])
    return 0
