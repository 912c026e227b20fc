"""Fixture modules are loaded as plugins, not piled into one conftest."""

from __future__ import annotations

import os
from typing import Any

import pytest

pytest_plugins = ["gateway_fixtures"]

TIMING_SENSITIVE = {
    "windows": (
        "tests/test_bounded_runs.py",  # a run's wall time held to a few totals
        "tests/test_pacing.py",  # rate-limit windows
        "tests/test_fresh_window.py",
    ),
    "load": (
        "tests/load/test_saturation.py",  # the load generator's own lag
        "tests/load/test_slo_objectives.py",  # the clean reference within the shipped objectives
        "tests/reference/test_capacity.py",  # queueing measured in stream durations
        "tests/load/test_sweep.py",  # the knee within 10% of the capacity's rate
        "tests/load/test_soak.py",  # drift judged over 2-s windows
        "tests/load/test_stages.py",  # the load following its stages
        "tests/load/test_workloads.py",  # TTFT growing with the prompt, the prefix cache's speed-up
    ),
}
"""Lanes of files whose tests one pytest-xdist worker runs, one after another, never side by
side: load runs that measure latency or a knee must not share the machine with another load
run, nor rate windows with another window. Two lanes, so that neither is the suite's floor
(one lane of all of them took some 1,000 s of a 17-minute suite). Not here:
``tests/test_transport_faults.py``, whose wall-time bounds are tens of timeouts (it waits on
hung sockets, it does not load the machine); its tests spread over every worker."""
LANE_OF = {path: lane for lane, paths in TIMING_SENSITIVE.items() for path in paths}

ONE_WORKER_EACH = (
    "tests/report/test_browser.py",  # three whole runs to render (~30 s), and a Chromium
    "tests/test_docs.py",  # the mkdocs build (~20 s)
    "tests/test_findings.py",  # one conformance run against a faulty gateway
    "tests/test_llmock.py",  # llmock servers, started as processes
    "tests/test_portkey.py",  # the Portkey gateway, started with node
)
"""Files whose tests share an expensive module-scoped fixture: each file goes to one worker,
so the fixture is built once, not once on every worker that happens to run one of its tests."""

LONGEST_FIRST = (
    "tests/test_conformance_cli.py",  # whole conformance runs, the embedded one ~3 min
    "tests/test_run_gate_compare.py",  # gateprobe run as a newcomer runs it
    "tests/report/test_browser.py",
    "tests/test_llmock.py",
    "tests/test_user_checks.py",
    "tests/test_preconditions.py",
    "tests/test_tooling.py",  # mypy
    "tests/test_live.py",
    "tests/test_allure_junit.py",
)
"""Files of the longest single tests (half a minute to three minutes each): sent out before the
other slow tests, so that no three-minute run starts last while the other workers are idle."""


def pytest_configure(config: pytest.Config) -> None:
    """The suite's processes keep their bytecode. It starts hundreds of Python processes (xdist
    workers, every ``gateprobe`` command run as a user runs it, each conformance run's own
    pytest, each Locust): with ``PYTHONDONTWRITEBYTECODE`` set (as some sandboxes and images
    do), every one of them compiled gateprobe's source and re-did pytest's assertion rewriting
    from scratch, about a second each. Dropped here, before the workers start, so they and
    every process they start inherit it; ``__pycache__`` is ignored by git."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadgroup`` (pyproject's addopts) with each lane of :data:`TIMING_SENSITIVE` a
    group, each file of :data:`ONE_WORKER_EACH` as a group of its own, and every other test on its
    own (groups go out first, the largest first: xdist's ``--loadscope-reorder``). Not the
    ``xdist_group`` mark: under pytest 9.2 xdist 3.8 no longer sees it
    (pytest-xdist#1386) and silently spreads the group."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class TimingGroupScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            if path in LANE_OF:
                return LANE_OF[path]
            return path if path in ONE_WORKER_EACH else nodeid

    return TimingGroupScheduling(config, log)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist, the longest tests first: the scheduler hands tests out in collection order,
    so the ``slow`` ones (the files of :data:`LONGEST_FIRST` before them) go out while there
    is still short work to even out the end of the run. Every worker sorts alike (the sort is
    stable), so their collections stay the same. In one process (``-n 0``) the order stays
    the files' own."""
    if not hasattr(config, "workerinput"):
        return

    def rank(item: pytest.Item) -> int:
        if item.get_closest_marker("slow") is None:
            return 2
        return 0 if item.nodeid.split("::", 1)[0] in LONGEST_FIRST else 1

    items.sort(key=rank)


@pytest.fixture(autouse=True)
def noisy_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite's load runs share two cores with the gateways they measure (and other suites):
    their own lag is often above the 2 ms a real run is held to (with other suites on the same
    cores, reads were measured up to 700 ms late at p99), so a test that does not judge
    saturation gives a bound it cannot reach. ``tests/load/test_saturation.py`` takes it away."""
    monkeypatch.setenv("GATEPROBE_LAG_BOUND_MS", "60000")


FUZZ_SEED = "20261207"
"""The fuzz seed of every suite run that gives none: the same cases on every CI run, so that
a red run is the change's, not a draw's (random seeds found a spec gap once, after it had
passed many runs: look for more with ``GATEPROBE_FUZZ_SEED= pytest`` unset, or
``gateprobe conformance --select fuzz`` alone, which draws a fresh seed each time)."""


@pytest.fixture(autouse=True)
def pinned_fuzz_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    """``GATEPROBE_FUZZ_SEED`` for every run the tests make, in process or as a command."""
    if "GATEPROBE_FUZZ_SEED" not in os.environ:
        monkeypatch.setenv("GATEPROBE_FUZZ_SEED", FUZZ_SEED)


QUICK_FUZZ = "examples,fuzzing"
"""The fuzz phases of every suite run but the fuzz category's own tests: schemathesis's
coverage phase sends some 1,500 requests per run against a loopback gateway (chat's schema
alone some 450), about 12 s of CPU in each of the dozens of whole runs the suite makes to
prove other things (a report, a transport fault, Ctrl-C). The tests marked ``deep_fuzz`` run
it as users get it."""


@pytest.fixture(autouse=True)
def quick_fuzz(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """``GATEPROBE_FUZZ_PHASES`` for every run the tests make, unless marked ``deep_fuzz``."""
    if "GATEPROBE_FUZZ_PHASES" in os.environ:
        return
    if request.node.get_closest_marker("deep_fuzz") is None:
        monkeypatch.setenv("GATEPROBE_FUZZ_PHASES", QUICK_FUZZ)
