"""User-defined checks: modules a user names (``--checks``) or installs (entry points).

A check module registers its checks with ``@gateprobe.check(...)`` when imported; importing it
is all there is to loading it. Installed packages declare theirs in the ``gateprobe.checks``
entry-point group::

    [project.entry-points."gateprobe.checks"]
    my_checks = "my_package.gateway_checks"

Each is imported once per process; a module that fails to import is a ``UsageError`` naming it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from types import ModuleType

from gateprobe.core.errors import UsageError

ENTRY_POINT_GROUP = "gateprobe.checks"


def load_check_modules(names: Iterable[str] = ()) -> list[ModuleType]:
    """Import the installed check modules and ``names`` (dotted names, or paths of ``.py``
    files); return the modules, each once. The built-in checks are registered first, so a
    user's check that takes a built-in id is the one refused, naming its module."""
    importlib.import_module("gateprobe.protocols.conformance")
    modules = [_load_entry_point(ep) for ep in entry_points(group=ENTRY_POINT_GROUP)]
    modules += [_load_file(Path(name)) if name.endswith(".py") else _load_module(name)
                for name in names]
    return list({id(m): m for m in modules}.values())


def _load_module(name: str) -> ModuleType:
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # a module beside the user, as `python -m` finds
    try:
        return importlib.import_module(name)
    except Exception as exc:
        raise UsageError(f"--checks {name}: cannot import it ({type(exc).__name__}: "
                         f"{exc})") from None


def _load_file(path: Path) -> ModuleType:
    name = f"gateprobe_user_checks.{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None or not path.is_file():
        raise UsageError(f"--checks {path}: no such Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise UsageError(f"--checks {path}: cannot import it ({type(exc).__name__}: "
                         f"{exc})") from None
    return module


def _load_entry_point(entry_point: EntryPoint) -> ModuleType:
    where = f"entry point {entry_point.name!r} of {ENTRY_POINT_GROUP}"
    try:
        loaded = entry_point.load()
    except Exception as exc:
        raise UsageError(f"{where}: cannot import it ({type(exc).__name__}: {exc})") from None
    if not isinstance(loaded, ModuleType):
        raise UsageError(f"{where} must name a module")
    return loaded
