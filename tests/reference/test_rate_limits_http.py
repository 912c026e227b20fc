"""Tier rate limits over HTTP: the documented 12/60/90, headers, Retry-After, recovery."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import httpx
import pytest

from gateprobe.reference import Timing
from gateprobe.reference.config import Tier
from gateway_fixtures import FakeClock, MakeGateway, client_for

WEB = {"model": "claude-2-web", "messages": [{"role": "user", "content": "hi"}]}
INSTANT = Timing(ttft_ms=0, itl_ms=0)
"""Budgets are what these tests are about: no generation time."""


@pytest.mark.parametrize(("key", "limit"), [("gp-free-0001", 12), ("gp-vip-0001", 60),
                                            ("gp-premium-0001", 90)])
def test_claude_2_web_tier_limits(make_gateway: MakeGateway, key: str, limit: int) -> None:
    clock = FakeClock()
    gw = make_gateway(timing=INSTANT, clock=clock, rate_window_s=60)
    with client_for(gw, key=key) as c:
        statuses = []
        for _ in range(limit + 3):
            r = c.post("/v1/chat/completions", json=WEB)
            statuses.append(r.status_code)
            assert r.headers["x-ratelimit-limit-requests"] == str(limit)
        assert statuses == [200] * limit + [429] * 3
        refused = r.json()["error"]
        assert refused["type"] == "requests" and refused["code"] == "rate_limit_exceeded"
        assert r.headers["retry-after"] == "60"
        assert r.headers["x-ratelimit-remaining-requests"] == "0"
        # Other models are not limited for this tier, and do not touch its budget.
        assert c.post("/v1/chat/completions", json={**WEB, "model": "gpt-3.5-turbo"}
                      ).status_code == 200


def test_remaining_counts_down_and_reset_is_a_duration(make_gateway: MakeGateway) -> None:
    gw = make_gateway(timing=INSTANT, clock=FakeClock())
    with client_for(gw, key="gp-free-0001") as c:
        seen = [c.post("/v1/chat/completions", json=WEB).headers for _ in range(3)]
    assert [h["x-ratelimit-remaining-requests"] for h in seen] == ["11", "10", "9"]
    assert all(h["x-ratelimit-reset-requests"] == "1m0s" for h in seen)


def test_retry_after_is_honoured_then_served_again(make_gateway: MakeGateway) -> None:
    clock = FakeClock()
    gw = make_gateway(timing=INSTANT, clock=clock, rate_window_s=5)
    with client_for(gw, key="gp-free-0001") as c:
        for _ in range(12):
            assert c.post("/v1/chat/completions", json=WEB).status_code == 200
            clock.advance(0.25)
        refused = c.post("/v1/chat/completions", json=WEB)
        assert refused.status_code == 429
        wait = int(refused.headers["retry-after"])
        assert wait == math.ceil(5 - 12 * 0.25)
        assert int(refused.headers["retry-after-ms"]) <= wait * 1000
        clock.advance(wait)
        assert c.post("/v1/chat/completions", json=WEB).status_code == 200


def test_keys_never_share_a_budget(make_gateway: MakeGateway) -> None:
    gw = make_gateway(timing=INSTANT, clock=FakeClock())
    with client_for(gw, key="gp-free-0001") as a, client_for(gw, key="gp-free-0002") as b:
        for _ in range(12):
            a.post("/v1/chat/completions", json=WEB)
        assert a.post("/v1/chat/completions", json=WEB).status_code == 429
        assert b.post("/v1/chat/completions", json=WEB).status_code == 200
        with client_for(gw, key="gp-vip-0001") as v:
            assert v.post("/v1/chat/completions", json=WEB).status_code == 200


def test_rejected_requests_do_not_spend_the_budget(make_gateway: MakeGateway) -> None:
    gw = make_gateway(timing=INSTANT, clock=FakeClock())
    with client_for(gw, key="gp-free-0001") as c:
        for _ in range(20):
            assert c.post("/v1/chat/completions", json={"model": "claude-2-web"}
                          ).status_code == 400
        r = c.post("/v1/chat/completions", json=WEB)
    assert r.headers["x-ratelimit-remaining-requests"] == "11"


def test_anthropic_routes_use_anthropic_headers(make_gateway: MakeGateway) -> None:
    clock = FakeClock()
    gw = make_gateway(timing=INSTANT, clock=clock, tiers={"vip": Tier("vip", {"*": 2})})
    msg = {"model": "claude-2", "max_tokens": 3, "messages": [{"role": "user", "content": "x"}]}
    with client_for(gw) as c:
        ok = [c.post("/v1/messages", json=msg) for _ in range(2)]
        refused = c.post("/v1/messages", json=msg)
    assert [r.headers["anthropic-ratelimit-requests-remaining"] for r in ok] == ["1", "0"]
    assert ok[0].headers["anthropic-ratelimit-requests-limit"] == "2"
    reset = datetime.fromisoformat(ok[0].headers["anthropic-ratelimit-requests-reset"])
    assert reset.tzinfo is not None and reset > datetime.now(UTC)
    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert refused.headers["retry-after"] == "60"
    assert "x-ratelimit-limit-requests" not in refused.headers


def test_reset_endpoint_forgets_budgets(make_gateway: MakeGateway) -> None:
    gw = make_gateway(timing=INSTANT, clock=FakeClock())
    with client_for(gw, key="gp-free-0001") as c:
        for _ in range(13):
            r = c.post("/v1/chat/completions", json=WEB)
        assert r.status_code == 429
        assert httpx.post(gw.base_url + "/_gateprobe/reset").status_code == 200
        assert c.post("/v1/chat/completions", json=WEB).status_code == 200
