"""The public API's contract: what plugins may import, which way the layers point, one settings schema."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib
import sys
from pathlib import Path

import pytest

import ra3bench
from ra3bench.spec import EvalOptions, EvalSpec
from ra3bench.training.base import EvalConfig

ROOT = Path(__file__).resolve().parents[2]
PUBLIC_MODULES = ("ra3bench", "ra3bench.training")


def imports_of(path: Path) -> list[tuple[str, list[str], int]]:
    """(module, names, line) of every import in a file, nested ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [alias.name for alias in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            found.extend((alias.name, [], node.lineno) for alias in node.names)
    return found


def test_every_public_name_resolves():
    for module in PUBLIC_MODULES:
        loaded = importlib.import_module(module)
        for name in loaded.__all__:
            assert getattr(loaded, name) is not None, f"{module}.{name}"


@pytest.mark.parametrize("plugin", sorted(p.name for p in (ROOT / "plugins").iterdir() if p.is_dir()))
def test_first_party_plugins_import_only_public_names(plugin):
    """plugins/README.md promises ``ra3bench`` and ``ra3bench.training`` as the contract; the trainers that
    ship keep to it, exactly as a third party would."""
    public = {module: set(importlib.import_module(module).__all__) for module in PUBLIC_MODULES}
    files = sorted((ROOT / "plugins" / plugin).rglob("*.py"))
    assert files
    private = []
    for path in files:
        for module, names, line in imports_of(path):
            if module != "ra3bench" and not module.startswith("ra3bench."):
                continue
            where = f"{path.relative_to(ROOT)}:{line}"
            if module not in public:
                private.append(f"{where}: {module}")
            private.extend(f"{where}: {module}.{name}" for name in names if name not in public[module])
    assert not private, "private names used by a plugin:\n" + "\n".join(private)


def test_the_library_never_imports_the_cli():
    """Layers point one way: CLI -> library API -> pipeline -> judge -> sandbox/suites."""
    offenders = []
    for path in sorted((ROOT / "ra3bench").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith("ra3bench/cli/") or relative == "ra3bench/__main__.py":
            continue
        for module, _, line in imports_of(path):
            if module == "ra3bench.cli" or module.startswith("ra3bench.cli."):
                offenders.append(f"{relative}:{line}: {module}")
    assert not offenders, offenders


# `ra3bench sandbox check`'s verdict-integrity table judges forged answers with the real judge, end to end
END_TO_END_CHECKS = ("forgery.py",)


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("ra3bench/backends", ("ra3bench.pipeline", "ra3bench.evaluate", "ra3bench.training")),
        ("ra3bench/sandbox", ("ra3bench.pipeline", "ra3bench.evaluate", "ra3bench.judge", "ra3bench.records")),
        ("ra3bench/suites", ("ra3bench.pipeline", "ra3bench.evaluate", "ra3bench.backends")),
    ],
)
def test_lower_layers_do_not_import_upper_ones(package, forbidden):
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {module}"
        for path in sorted((ROOT / package).rglob("*.py"))
        if path.name not in END_TO_END_CHECKS
        for module, _, line in imports_of(path)
        if module.startswith(forbidden)
    ]
    assert not offenders, offenders


def run_parser() -> argparse.ArgumentParser:
    from ra3bench.cli.main import build_parser

    return build_parser()


@dataclasses.dataclass
class Run:
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)


# EvalOptions fields whose flag is the negation (--no-fail-fast, --no-cache)
NEGATED = {"fail_fast": "no_fail_fast", "cache": "no_cache"}


def test_run_flags_training_config_and_eval_spec_are_one_schema():
    """Every EvalOptions setting is a `ra3bench run` flag and an ``eval:`` key of a training config."""
    parser = run_parser()
    run = next(action.choices["run"] for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    dests = {action.dest for action in run._actions}
    options = [f.name for f in dataclasses.fields(EvalOptions)]
    missing = [name for name in options if NEGATED.get(name, name) not in dests]
    assert not missing, f"EvalOptions fields without a `run` flag: {missing}"
    suite_fields = {f.name for f in dataclasses.fields(EvalSpec)} - set(options)
    assert {"suite", "suite_version", "data_dir", "tasks"} <= dests and suite_fields <= dests | {"select"}
    config_fields = {f.name for f in dataclasses.fields(EvalConfig)}
    assert set(options) <= config_fields


def test_flags_become_the_spec_a_library_caller_would_write():
    from ra3bench.cli.common import spec_from_args

    argv = ["run", "--suite", "mbpp+", "--model", "reference", "--limit", "3", "-k", "1,5", "-n", "5"]
    argv += ["--time-factor", "2.5", "--memory-mb", "512", "--no-fail-fast", "--sandbox", "local", "--no-cache"]
    args = run_parser().parse_args(argv)
    spec = spec_from_args(args, args.n)
    assert spec == EvalSpec(
        suite="mbpp+",
        limit=3,
        n=5,
        k=[1, 5],
        time_factor=2.5,
        memory_mb=512,
        fail_fast=False,
        sandbox="local",
        cache=False,
    )


def test_a_bad_spec_says_every_problem_in_one_error():
    with pytest.raises(ra3bench.SpecError) as caught:
        EvalSpec(suite="mbpp+", time_factor=0, memory_mb=8, n=0)
    message = str(caught.value)
    assert "time_factor" in message and "memory_mb (--memory-mb)" in message and "n (-n) must" in message
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, ra3bench.UsageError)


def test_a_training_config_checks_eval_settings_like_the_flags(tmp_path):
    from ra3bench.config import ConfigError, load_config

    config = load_config(Run, None, ["eval.time_factor=2", "eval.memory_mb=1024", "eval.sandbox=local"])
    spec = config.eval.spec_for("mbpp+")
    assert (spec.time_factor, spec.memory_mb, spec.sandbox, spec.n, spec.limit) == (2.0, 1024, "local", 4, 50)
    assert spec.judge_settings().limits.memory_mb == 1024
    with pytest.raises(ConfigError, match=r"memory_mb \(--memory-mb\) must be at least 64"):
        load_config(Run, None, ["eval.memory_mb=8"])


def test_plugins_register_under_the_named_entry_point_groups(tmp_path, monkeypatch):
    """A third-party sandbox in ``ra3bench.sandboxes`` (not the ``ra3bench.sandboxs`` the registry once derived)."""
    from ra3bench.registry import Registry
    from ra3bench.sandbox import SANDBOXES

    dist = tmp_path / "thirdparty_sandbox-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-sandbox\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[ra3bench.sandboxes]\nremote = thirdparty_sandbox:RemoteSandbox\n")
    (tmp_path / "thirdparty_sandbox.py").write_text("class RemoteSandbox:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    assert SANDBOXES.group == "ra3bench.sandboxes"
    fresh = Registry("sandbox", group=SANDBOXES.group)
    assert fresh.get("remote").__name__ == "RemoteSandbox"
    assert "thirdparty-sandbox" in fresh.origins()["remote"]
    sys.modules.pop("thirdparty_sandbox", None)


def test_the_manifest_command_hides_the_api_key():
    from ra3bench.cli.execute import command_line

    shown = command_line(["run", "--model", "m", "--api-key", "sk-1", "--api-key=sk-2", "--limit", "3"])
    assert shown == "ra3bench run --model m --api-key *** --api-key=*** --limit 3"
