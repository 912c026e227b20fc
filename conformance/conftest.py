"""The management and billing categories' shared key admin: one per run, so the run's cap of
created keys holds across both, and every key it created is deleted before the run ends.

Their tests exist only for a target that declares the management API (``management: true``);
for any other they are deselected, not skipped: there is nothing to say about them.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from gateprobe.core.targets import Target
from gateprobe.engine.management import KeyAdmin, key_admin
from gateprobe.engine.propagation import UpstreamControl, UpstreamUnavailable

STATEFUL = ("management", "billing")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Drop the stateful categories' tests when the target has no management API, and the
    propagation category's when it declares no upstream."""
    from gateprobe.engine.pytest_plugin import TARGET_KEY

    target = config.stash.get(TARGET_KEY, None)
    markers = [*(() if target is not None and target.management else STATEFUL),
               *(() if target is not None and target.upstream else ("propagation",))]
    dropped = [i for i in items if any(i.get_closest_marker(m) for m in markers)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [i for i in items if i not in dropped]


@pytest.fixture(scope="session")
def _session_admin(gateprobe_target: Target,
                   gateprobe_http: httpx.Client) -> Iterator[KeyAdmin]:
    refusal = gateprobe_target.management_refusal
    if refusal:
        pytest.skip(refusal)
    with key_admin(gateprobe_http, gateprobe_target) as admin:
        yield admin
    left = admin.leftovers()
    if left:
        pytest.fail(f"{len(left)} keys this run created could not be deleted", pytrace=False)


@pytest.fixture(scope="module")
def management_admin(_session_admin: KeyAdmin) -> Iterator[KeyAdmin]:
    """The run's key admin; the keys a module created are deleted when it ends."""
    try:
        yield _session_admin
    finally:
        _session_admin.cleanup()


@pytest.fixture(scope="session")
def propagation_upstream(gateprobe_target: Target,
                         gateprobe_http: httpx.Client) -> Iterator[UpstreamControl]:
    """The target's declared upstream: the one listening at its address, else one started
    there for the run."""
    from gateprobe.engine.embedded import upstream_for

    with upstream_for(gateprobe_target) as base_url:
        control = UpstreamControl(gateprobe_http, base_url)
        try:
            control.health()
        except UpstreamUnavailable as exc:
            pytest.fail(str(exc), pytrace=False)
        yield control
