"""The reference gateway's management API and billing, over HTTP on loopback."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from gateprobe.reference import RunningGateway
from gateway_fixtures import FakeClock, MakeGateway, client_for

ADMIN = "/api/v1/user/admin/"
CHAT = {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "Say test"}],
        "max_tokens": 8}


def _create(http: httpx.Client, path: str = "new-api-token", **fields: str) -> httpx.Response:
    return http.post(ADMIN + path, data={"expired_at": "2099-01-01T00:00:00Z", "max_fee": "0",
                                         **fields})


def _record(http: httpx.Client, key: str) -> dict[str, object]:
    [row] = [r for r in http.post(ADMIN + "get-api-tokens").json()["data"] if r["key"] == key]
    return dict(row)


@pytest.mark.parametrize("create_path, delete_path", [
    ("new-api-token", "del-api-token"), ("create-api-token", "delete-api-token")])
def test_key_lifecycle_on_both_spellings(gateway: RunningGateway, create_path: str,
                                         delete_path: str) -> None:
    with client_for(gateway, "gp-admin-0001") as admin:
        created = _create(admin, create_path, remark="k1")
        assert created.status_code == 200, created.text
        body = created.json()
        assert body["statusCode"] == 200 and body["message"] == "New api token success"
        key = body["data"]
        with client_for(gateway, key) as user:
            assert user.post("/v1/chat/completions", json=CHAT).status_code == 200
            row = _record(admin, key)
            assert row["used_times"] == "1" and float(str(row["used_fee"])) > 0
            assert admin.post(ADMIN + delete_path, data={"key": key}).json() == {
                "statusCode": 200, "message": "Delete api key success", "data": None}
            assert user.post("/v1/chat/completions", json=CHAT).status_code == 401


def test_update_disables_restricts_and_expires(gateway: RunningGateway) -> None:
    with client_for(gateway, "gp-admin-0001") as admin:
        key = _create(admin, permissions='["gpt-4o-mini"]').json()["data"]
        with client_for(gateway, key) as user:
            assert user.post("/v1/chat/completions", json=CHAT).status_code == 401
            assert user.post("/v1/chat/completions",
                             json={**CHAT, "model": "gpt-4o-mini"}).status_code == 200
            admin.post(ADMIN + "update-api-token", data={"key": key, "is_disabled": "true"})
            assert user.post("/v1/chat/completions",
                             json={**CHAT, "model": "gpt-4o-mini"}).status_code == 401
            admin.post(ADMIN + "update-api-token", data={
                "key": key, "is_disabled": "false", "expired_at": "2020-01-01 00:00:00"})
            assert user.post("/v1/chat/completions",
                             json={**CHAT, "model": "gpt-4o-mini"}).status_code == 401
        assert _record(admin, key)["expired_at"] == "2019-12-31T16:00:00.000Z"  # read as UTC+8


def test_max_fee_stops_a_key_with_the_documented_402(gateway: RunningGateway) -> None:
    with client_for(gateway, "gp-admin-0001") as admin:
        key = _create(admin, max_fee="0.01").json()["data"]
        with client_for(gateway, key) as user:
            assert user.post("/v1/chat/completions", json=CHAT).status_code == 200
            refused = user.post("/v1/chat/completions", json=CHAT)
        assert refused.status_code == 402
        assert "balance is insufficient" in refused.text


def test_balance_moves_by_usage_times_rate(gateway: RunningGateway) -> None:
    with client_for(gateway, "gp-admin-0001") as admin:
        rates = admin.get("/api/v1/pay/model-rates").json()["data"]["rates"]["gpt-3.5-turbo"]
        before = float(admin.post(ADMIN + "balance").json()["data"]["balance"])
        usage = admin.post("/v1/chat/completions", json=CHAT).json()["usage"]
        after = float(admin.post(ADMIN + "balance").json()["data"]["balance"])
    expected = (usage["prompt_tokens"] * float(rates["input"])
                + usage["completion_tokens"] * float(rates["output"])) / 1000
    assert before - after == pytest.approx(expected, abs=0.01)
    assert expected > 1


def test_management_needs_an_admin_key_and_cannot_grant_admin(gateway: RunningGateway) -> None:
    with client_for(gateway, "gp-vip-0001") as plain:
        refused = plain.post(ADMIN + "get-api-tokens")
    assert refused.status_code == 401 and refused.json()["statusCode"] == 401
    with client_for(gateway, "gp-admin-0001") as admin:
        granted = _create(admin, is_admin="true")
        assert granted.status_code == 403, granted.text
        assert all(not r["is_admin"] or r["key"] == "gp-admin-0001"
                   for r in admin.post(ADMIN + "get-api-tokens").json()["data"])


def test_a_listing_shows_only_the_callers_account(gateway: RunningGateway) -> None:
    with client_for(gateway, "gp-admin-0002") as other:
        theirs = _create(other).json()["data"]
    with client_for(gateway, "gp-admin-0001") as admin:
        rows = admin.post(ADMIN + "get-api-tokens").json()["data"]
    assert {r["user_id"] for r in rows} == {"1"}
    assert theirs not in json.dumps(rows)


def test_bad_management_input_is_a_400_envelope(gateway: RunningGateway) -> None:
    with client_for(gateway, "gp-admin-0001") as admin:
        missing = admin.post(ADMIN + "new-api-token", data={"remark": "x"})
        unknown = _create(admin, permissions='["no-such-model"]')
        wrong_method = admin.get(ADMIN + "balance")
    assert missing.status_code == 400 and missing.json()["data"] is None
    assert unknown.status_code == 400 and "no-such-model" in unknown.json()["message"]
    assert wrong_method.status_code == 405


def test_answers_match_the_management_spec(gateway: RunningGateway) -> None:
    from gateprobe.core.specs import schema_errors

    with client_for(gateway, "gp-admin-0001") as admin:
        key = _create(admin).json()["data"]
        answers = {
            "CreatedKey": _create(admin).json(),
            "KeyList": admin.post(ADMIN + "get-api-tokens").json(),
            "Balance": admin.post(ADMIN + "balance").json(),
            "ModelRates": admin.get("/api/v1/pay/model-rates").json(),
            "NullEnvelope": admin.post(ADMIN + "update-api-token", data={"key": key}).json(),
            "ErrorEnvelope": admin.post(ADMIN + "del-api-token", data={"key": "sk-no"}).json(),
        }
    for component, body in answers.items():
        assert schema_errors("management", component, body) == [], component
    assert schema_errors("management", "ErrorEnvelope", answers["KeyList"]) != []


def test_membership_and_rates_are_our_reading(gateway: RunningGateway) -> None:
    with client_for(gateway, "gp-admin-0001") as admin:
        membership = admin.post(ADMIN + "get-membership-expire-date").json()
    with client_for(gateway, "gp-vip-0001") as plain:
        rates = plain.get("/api/v1/pay/model-rates")
    assert membership["data"] == {"membership": "free", "expire_date": None}
    assert rates.status_code == 200  # any valid key reads the rates
    assert rates.json()["data"]["rates"]["gpt-3.5-turbo"] == {"input": "500.00",
                                                              "output": "1500.00"}


def test_keys_file_admin_flag_is_checked(tmp_path: Path) -> None:
    from gateprobe.core.errors import ConfigError
    from gateprobe.reference.config import load_keys_file

    path = tmp_path / "keys.yaml"
    path.write_text("tiers: {t: {limits: {}}}\nkeys:\n  k1: {tier: t, admin: yes-please}\n",
                    encoding="utf-8")
    with pytest.raises(ConfigError, match="admin: expected true or false"):
        load_keys_file(path)
    path.write_text("tiers: {t: {limits: {}}}\nkeys:\n  k1: {tier: t, admin: true, user: '7'}\n",
                    encoding="utf-8")
    key = load_keys_file(path).keys["k1"]
    assert key.admin and key.user == "7"


def test_the_402_in_the_gateways_own_envelope_is_the_documented_body(
        make_gateway: MakeGateway) -> None:
    gateway = make_gateway(error_envelope="gateway")
    with client_for(gateway, "gp-admin-0001") as admin:
        key = _create(admin, max_fee="0.01").json()["data"]
        with client_for(gateway, key) as user:
            user.post("/v1/chat/completions", json=CHAT)
            refused = user.post("/v1/chat/completions", json=CHAT)
    assert refused.status_code == 402
    assert refused.json() == {
        "statusCode": 402, "errorType": "insufficient_balance_error", "data": None,
        "message": "User balance is insufficient, your request has been rejected, please "
                   "recharge in time at https://www.ohmygpt.com/pay ."}


def test_documented_qps_limits_when_enforced(make_gateway: MakeGateway) -> None:
    gateway = make_gateway(management_qps=True)
    clock = FakeClock()
    gateway.state.store.clock = clock
    with client_for(gateway, "gp-admin-0001") as admin:
        assert admin.post(ADMIN + "get-api-tokens").status_code == 200
        refused = admin.post(ADMIN + "get-api-tokens")
        clock.advance(1.0)
        again = admin.post(ADMIN + "get-api-tokens")
        creates = [_create(admin).status_code for _ in range(11)]
    assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
    assert refused.json()["statusCode"] == 429
    assert again.status_code == 200
    assert creates == [200] * 10 + [429]
