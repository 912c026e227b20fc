"""``gateprobe conformance``: the suite in ``conformance/``, run in-process by pytest.

Exit codes: 0 every check passed, 1 findings, 2 usage or configuration error (including a
selection that matches no test), 3 target unreachable.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gateprobe.console import Console
from gateprobe.errors import UsageError
from gateprobe.targets import (
    check_base_url,
    check_reachable,
    key_from_env,
    model_overrides,
    parse_models,
    target_entry,
)

_PACKAGED = Path(__file__).resolve().parent / "_conformance"
_SOURCE = Path(__file__).resolve().parents[2] / "conformance"

EMBEDDED_KEY_ENV = "GATEPROBE_EMBEDDED_KEY"
EMBEDDED_NO_PERMISSION_ENV = "GATEPROBE_EMBEDDED_NO_PERMISSION_KEY"


def suite_dir() -> Path:
    """The suite: packaged inside a wheel, ``conformance/`` in a checkout."""
    return _PACKAGED if _PACKAGED.exists() else _SOURCE


def run_conformance(args: argparse.Namespace, console: Console) -> int:
    """Check the flags, find or start the target, run the suite, map the outcome."""
    parse_models(args.model)  # a bad --model is a usage error before anything runs
    if args.dry_run:
        return _dry_run(args, console)
    if args.target:
        if args.base_url:
            raise UsageError("give --target or --base-url, not both")
        targets = Path(args.targets).resolve()
        target = target_entry(targets, args.target).resolve(model_overrides(args.model))
        check_reachable(target.base_url)
        return _pytest(args, target.base_url, "", None, console,
                       ["--target", args.target, "--targets", str(targets)])
    if args.base_url:
        base_url = check_base_url(args.base_url)
        key_from_env(args.api_key_env)
        if args.no_permission_key_env:
            key_from_env(args.no_permission_key_env)
        check_reachable(base_url)
        return _pytest(args, base_url, args.api_key_env, args.no_permission_key_env, console)
    with _embedded() as base_url:
        console.line(f"gateprobe conformance: embedded reference gateway at {base_url}")
        return _pytest(args, base_url, EMBEDDED_KEY_ENV, EMBEDDED_NO_PERMISSION_ENV, console)


def _dry_run(args: argparse.Namespace, console: Console) -> int:
    from dataclasses import replace

    from gateprobe import dryrun
    from gateprobe.targets import Target

    if args.target:
        entry = target_entry(Path(args.targets).resolve(), args.target)
        target = Target(check_base_url(entry.base_url), entry.profile, "dry-run",
                        models=parse_models([f"{k}={v}" for k, v in entry.models.items()]
                                            + list(args.model)))
    else:
        target = Target(check_base_url(args.base_url) if args.base_url
                        else "http://127.0.0.1:0", args.profile, "dry-run",
                        models=parse_models(args.model))
    target = replace(target, no_permission_key="dry-run")
    return dryrun.conformance(target, args.select, args.fuzz_max_tokens or 64,
                              args.fuzz_max_requests, args.max_examples, console)


@contextmanager
def _embedded() -> Iterator[str]:
    """The reference gateway with its shipped test keys, on a fast schedule: conformance is
    about shapes, not latency."""
    from gateprobe.reference.config import Timing, default_keys_path, load_keys_file
    from gateprobe.reference.server import running_gateway

    config = load_keys_file(default_keys_path()).config(timing=Timing(ttft_ms=5, itl_ms=1))
    os.environ[EMBEDDED_KEY_ENV] = "gp-vip-0001"  # test keys of the fake gateway, not secrets
    os.environ[EMBEDDED_NO_PERMISSION_ENV] = "gp-nomodel-0001"
    with running_gateway(config) as gateway:
        yield gateway.base_url


def _pytest(args: argparse.Namespace, base_url: str, key_env: str,
            no_permission_env: str | None, console: Console,
            target_args: list[str] | None = None) -> int:
    import pytest

    suite = suite_dir()
    where = target_args or ["--base-url", base_url, "--profile", args.profile,
                            "--api-key-env", key_env]
    # importlib mode: the suite's modules (test_sdk...) must not collide with same-named
    # modules a calling process already imported (the project's own tests run this in-process).
    argv = [str(suite), "-c", str(suite / "pytest.ini"), "--rootdir", str(suite), *where,
            "--import-mode=importlib",
            "-q" if not args.verbose else "-v",
            # Exactly the plugins the suite needs (autoload is off, see below).
            "-p", "gateprobe.pytest_plugin"]
    if importlib.util.find_spec("schemathesis") is not None:
        argv += ["-p", "schemathesis.pytest.plugin"]  # the fuzz category's tests
    if no_permission_env:
        argv += ["--no-permission-key-env", no_permission_env]
    for model in args.model:
        argv += ["--model", model]
    if args.record_golden:
        argv.append("--record-golden")
    if args.max_examples is not None:
        if args.max_examples < 1:
            raise UsageError("--max-examples must be at least 1")
        argv += ["--max-examples", str(args.max_examples)]
    for flag in ("fuzz_max_tokens", "fuzz_max_requests"):
        value = getattr(args, flag)
        if value is not None:
            if value < 1:
                raise UsageError(f"--{flag.replace('_', '-')} must be at least 1")
            argv += [f"--{flag.replace('_', '-')}", str(value)]
    if args.golden_dir:
        argv += ["--golden-dir", args.golden_dir]
    from gateprobe.cli import timeouts_from

    t = timeouts_from(args)
    argv += ["--timeout-connect-s", str(t.connect_s), "--timeout-first-byte-s",
             str(t.first_byte_s), "--timeout-idle-s", str(t.idle_s),
             "--timeout-total-s", str(t.total_s)]
    if args.budget_s is not None:
        if not args.budget_s > 0:
            raise UsageError("--budget-s must be > 0")
        argv += ["--budget-s", str(args.budget_s)]
    if args.select:
        _check_selection(args.select)
        argv += ["-m", args.select]
    junit = args.junit or (str(Path(args.report_dir) / "junit.xml") if args.report_dir else None)
    if junit:
        argv += ["--junitxml", junit]
    if args.report_dir:
        argv += ["-p", "allure_pytest.plugin",
                 "--alluredir", str(Path(args.report_dir) / "allure-results"),
                 "--findings-json", str(Path(args.report_dir) / "conformance.json")]
    # Other installed plugins are not the suite's business, and autoloading them after the
    # embedded gateway imported their modules makes pytest warn that it cannot rewrite them.
    previous = os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD")
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    try:
        code = int(pytest.main(argv))
    finally:
        if previous is None:
            del os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"]
        else:
            os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = previous
        _redact_outputs(args, [key_env, no_permission_env], target_args)
    if code == 5:
        raise UsageError(f"--select {args.select!r} matches no conformance test")
    if code in (2, 3, 4):
        raise UsageError(f"the conformance suite could not run (pytest exit {code})")
    return code


def _redact_outputs(args: argparse.Namespace, key_envs: list[str | None],
                    target_args: list[str] | None) -> None:
    """Mask every key in what the suite wrote (JUnit, Allure, findings), whatever wrote it."""
    from gateprobe.redact import Redactor, redact_file, redact_tree

    envs = [e for e in key_envs if e]
    if target_args:
        entry = target_entry(Path(target_args[3]), target_args[1])
        envs += [entry.api_key_env, *filter(None, [entry.no_permission_key_env])]
    redactor = Redactor(os.environ.get(e, "") for e in envs)
    if args.report_dir and Path(args.report_dir).exists():
        redact_tree(Path(args.report_dir), redactor)
    if args.junit and Path(args.junit).exists():
        redact_file(Path(args.junit), redactor)


def _check_selection(expression: str) -> None:
    """Every name in a ``--select`` expression is a category marker."""
    from gateprobe.cases import MARKERS

    for word in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", expression):
        if word not in {"and", "or", "not"} and word not in MARKERS:
            close = difflib.get_close_matches(word, list(MARKERS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UsageError(f"--select: unknown category {word!r}{hint}; categories: "
                             f"{', '.join(MARKERS)}")
