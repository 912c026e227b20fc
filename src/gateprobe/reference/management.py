"""The gateway's own API: API keys, balance and model rates, over one key store.

The model routes and the management routes read and write the same ``KeyStore``, so a key
created here works on ``/v1/chat/completions`` at once, and what a request costs shows in the
key's ``used_fee`` and the account's balance at once. Wire facts come from
``../shared/seeds-extra/gateway-beyond-chat.md`` section 1: form-urlencoded bodies whose values
are all strings, the ``{statusCode, message, data}`` envelope with the HTTP status equal to
``statusCode``, admin-key Bearer auth, both spellings of the create and delete paths. Where the
docs are silent (errors, model rates, membership), ``specs/management.yaml`` states our reading.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from gateprobe.reference.config import FALLBACK_RATE, ApiKey, GatewayConfig
from gateprobe.reference.faults import (
    ADMIN_GRANTABLE,
    CREATED_KEY_INERT,
    DELETED_KEY_WORKS,
    DISABLED_KEY_WORKS,
    EXPIRED_KEY_WORKS,
    KEY_CREATE,
    KEY_DELETE,
    KEY_LIST,
    KEY_UPDATE,
    LIST_OTHER_USERS,
    MANAGED_PERMISSIONS_IGNORED,
    MANAGEMENT_ANY_KEY,
    MAX_FEE_IGNORED,
    MODEL_RATES,
)

QPS_LIMITS: Mapping[str, int] = {
    **{p: 10 for p in KEY_CREATE | KEY_DELETE}, KEY_UPDATE: 10, KEY_LIST: 1}
"""The documented limits per second (delete: the stricter of the two documented figures)."""
MAX_KEYS_PER_USER = 5000
"""The documented cap on one account's keys."""
_CST = timezone(timedelta(hours=8))
"""``expired_at`` without a zone is read as UTC+8: the docs' update example sends
``2024-12-31 23:59:59`` and the listing shows ``2024-12-31T15:59:59.000Z``."""


class ManagementError(Exception):
    """An error answer of a management route: HTTP status = the envelope's ``statusCode``."""

    def __init__(self, status: int, message: str, error_type: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type


def envelope(status: int, message: str, data: Any = None,
             error_type: str | None = None) -> Response:
    """The gateway's own envelope (``errorType`` only on errors that have one)."""
    body: dict[str, Any] = {"statusCode": status, "message": message}
    if error_type:
        body["errorType"] = error_type
    body["data"] = data
    return Response(json.dumps(body, ensure_ascii=False), status_code=status,
                    media_type="application/json")


@dataclass(slots=True)
class KeyRecord:
    """One key as the account sees it: the listing's twelve fields, plus its tier."""

    key: str
    user_id: str
    tier: str
    remark: str = ""
    permissions: frozenset[str] | None = None
    """Models it may use; None: every model (the listing then shows the whole catalogue)."""
    max_fee: float = 0.0
    """Credits it may spend; 0: unlimited."""
    expired_at: datetime | None = None
    is_admin: bool = False
    is_disabled: bool = False
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    used_at: datetime | None = None
    used_times: int = 0
    used_fee: float = 0.0
    created_by_api: bool = False
    deleted: bool = False

    def as_json(self, catalogue: list[str]) -> dict[str, Any]:
        """The listing's shape: numbers as strings with two decimals, times as ISO UTC."""
        return {"key": self.key, "user_id": self.user_id, "remark": self.remark,
                "created_at": _iso(self.created_at), "used_at": _iso(self.used_at),
                "expired_at": _iso(self.expired_at or self.created_at + timedelta(days=3650)),
                "used_times": str(self.used_times), "used_fee": f"{self.used_fee:.2f}",
                "max_fee": f"{self.max_fee:.2f}",
                "permissions": sorted(self.permissions) if self.permissions is not None
                else catalogue,
                "is_admin": self.is_admin, "is_disabled": self.is_disabled}


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{moment.microsecond // 1000:03d}Z"


class KeyStore:
    """Every key of every account, and each account's balance: the one store both the model
    routes and the management routes use."""

    def __init__(self, config: GatewayConfig,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        """Drives the QPS limits (a test seam)."""
        self.records: dict[str, KeyRecord] = {}
        self.balances: dict[str, float] = {}
        self.calls: dict[tuple[str, str], list[float]] = {}
        self.reset()

    def reset(self) -> None:
        """Back to the configured keys and balances (tests reuse one gateway)."""
        self.records = {k.key: KeyRecord(k.key, k.user, k.tier, permissions=k.models,
                                         is_admin=k.admin)
                        for k in self.config.keys.values()}
        self.balances = {r.user_id: self.config.balance for r in self.records.values()}
        self.calls = {}

    def within_qps(self, user: str, path: str) -> bool:
        """Count a call of ``user`` on ``path``: whether it is within the path's QPS."""
        limit = QPS_LIMITS.get(path)
        if not self.config.management_qps or limit is None:
            return True
        now = self.clock()
        recent = [t for t in self.calls.get((user, path), []) if now - t < 1.0]
        if len(recent) >= limit:
            self.calls[(user, path)] = recent
            return False
        self.calls[(user, path)] = [*recent, now]
        return True

    def live(self, user: str) -> list[KeyRecord]:
        """The account's keys that are not deleted."""
        return [r for r in self.records.values() if r.user_id == user and not r.deleted]

    def model_key(self, presented: str, endpoint: str) -> ApiKey | None:
        """The key a model route serves ``presented`` as, or None (401): deleted, disabled and
        expired keys are refused; a key at its ``max_fee`` gets 402 (``CapReached``)."""
        faults = self.config.faults
        record = self.records.get(presented)
        if record is None:
            return None
        if record.created_by_api and CREATED_KEY_INERT.active(faults, endpoint):
            return None
        if record.deleted and not DELETED_KEY_WORKS.active(faults, endpoint):
            return None
        if record.is_disabled and not DISABLED_KEY_WORKS.active(faults, endpoint):
            return None
        if record.expired_at is not None and record.expired_at <= datetime.now(UTC) \
                and not EXPIRED_KEY_WORKS.active(faults, endpoint):
            return None
        if (record.max_fee and record.used_fee >= record.max_fee
                and not MAX_FEE_IGNORED.active(faults, endpoint)) \
                or self.balances.get(record.user_id, 0.0) <= 0:
            raise CapReached()
        models = record.permissions
        if record.created_by_api and MANAGED_PERMISSIONS_IGNORED.active(faults, endpoint):
            models = None
        return ApiKey(record.key, record.tier, models, record.is_admin, record.user_id)

    def debit(self, key: str, credits: float) -> None:
        """Bill a served request to its key and its account."""
        record = self.records.get(key)
        if record is None:
            return
        record.used_fee += credits
        record.used_times += 1
        record.used_at = datetime.now(UTC)
        self.balances[record.user_id] = self.balances.get(record.user_id, 0.0) - credits


class CapReached(Exception):
    """The key reached its ``max_fee`` or its account has no balance left: 402."""

    message = ("User balance is insufficient, your request has been rejected, please recharge "
               "in time at https://www.ohmygpt.com/pay .")


Handler = Callable[[Request, KeyStore], Awaitable[Response]]


def routes() -> list[tuple[str, str, Handler]]:
    """(path, method, handler) of every management route, both documented spellings."""
    table: list[tuple[str, str, Handler]] = [(p, "POST", create) for p in sorted(KEY_CREATE)]
    table += [(p, "POST", delete) for p in sorted(KEY_DELETE)]
    table += [(KEY_UPDATE, "POST", update), (KEY_LIST, "POST", list_keys),
              ("/api/v1/user/admin/balance", "POST", balance),
              ("/api/v1/user/admin/get-membership-expire-date", "POST", membership),
              (MODEL_RATES, "GET", model_rates)]
    return table


def endpoint(method: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A management route: its method, then its handler, every error in the envelope."""
    async def run(request: Request) -> Response:
        if request.method != method:
            return envelope(405, f"Method {request.method} is not allowed; use {method}.")
        try:
            return await handler(request, request.app.state.gateway.store)
        except ManagementError as error:
            answer = envelope(error.status, error.message, error_type=error.error_type)
            if error.status == 429:
                answer.headers["retry-after"] = "1"
            return answer

    return run


def _caller(request: Request, store: KeyStore, admin: bool = True) -> KeyRecord:
    """The calling key: live, and an admin key unless ``admin`` is false (401 otherwise)."""
    auth = request.headers.get("authorization", "")
    presented = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
    record = store.records.get(presented)
    if record is None or record.deleted or record.is_disabled:
        raise ManagementError(401, "Incorrect API key provided. You can get your API key at "
                              "https://www.ohmygpt.com/settings")
    if admin and not record.is_admin and not MANAGEMENT_ANY_KEY.active(
            store.config.faults, request.url.path):
        raise ManagementError(401, "This API key has no administrator privileges: the "
                              "management API needs an admin key (create one in the dashboard)")
    if not store.within_qps(record.user_id, request.url.path):
        raise ManagementError(429, f"Too many requests: at most "
                              f"{QPS_LIMITS[request.url.path]} per second on "
                              f"{request.url.path}.")
    return record


async def _form(request: Request) -> dict[str, str]:
    """The body's fields: form-urlencoded as documented (a JSON object is taken too)."""
    raw = await request.body()
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            raise ManagementError(400, "The body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise ManagementError(400, "The body must be an object of fields.")
        return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in body.items()}
    return dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))


def _expiry(text: str) -> datetime:
    """ISO 8601, or ``YYYY-MM-DD HH:mm:ss`` read as UTC+8 (see ``_CST``)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ManagementError(400, f"expired_at: not a date: {text[:40]!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=_CST)


def _fee(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ManagementError(400, f"max_fee: not a number: {text[:40]!r}") from None
    if not value >= 0:
        raise ManagementError(400, "max_fee: must be 0 (unlimited) or more")
    return value


def _permissions(text: str, store: KeyStore) -> frozenset[str]:
    try:
        names = json.loads(text)
    except ValueError:
        names = None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ManagementError(400, "permissions: expected a JSON array of model names")
    unknown = sorted(set(names) - set(store.config.models))
    if unknown:
        raise ManagementError(400, f"permissions: unknown model {unknown[0]!r}")
    return frozenset(names)


def _admin_flag(form: Mapping[str, str], store: KeyStore, path: str) -> bool:
    """Admin rights cannot be granted through the API (the docs say so, for security)."""
    if form.get("is_admin", "false").lower() not in ("true", "1"):
        return False
    if ADMIN_GRANTABLE.active(store.config.faults, path):
        return True
    raise ManagementError(403, "Admin privileges cannot be granted via the API.")


async def create(request: Request, store: KeyStore) -> Response:
    """``new-api-token`` / ``create-api-token``: ``expired_at`` and ``max_fee`` required."""
    caller = _caller(request, store)
    form = await _form(request)
    for name in ("expired_at", "max_fee"):
        if not form.get(name):
            raise ManagementError(400, f"{name} is required")
    if len(store.live(caller.user_id)) >= MAX_KEYS_PER_USER:
        raise ManagementError(400, f"An account may hold at most {MAX_KEYS_PER_USER} API keys; "
                              "delete some or contact the admin.")
    record = KeyRecord(
        "sk-" + secrets.token_urlsafe(36)[:48], caller.user_id, caller.tier,
        remark=form.get("remark", ""),
        permissions=_permissions(form["permissions"], store) if form.get("permissions")
        else None,
        max_fee=_fee(form["max_fee"]), expired_at=_expiry(form["expired_at"]),
        is_admin=_admin_flag(form, store, request.url.path), created_by_api=True)
    store.records[record.key] = record
    return envelope(200, "New api token success", record.key)


def _owned(store: KeyStore, caller: KeyRecord, key: str) -> KeyRecord:
    record = store.records.get(key)
    if record is None or record.deleted or record.user_id != caller.user_id:
        raise ManagementError(404, "API key not found")
    return record


async def update(request: Request, store: KeyStore) -> Response:
    """``update-api-token``: the docs mark every field required; we require ``key`` and change
    only the fields given (our reading: a stricter gateway is served by sending all)."""
    caller = _caller(request, store)
    form = await _form(request)
    record = _owned(store, caller, form.get("key", ""))
    if form.get("is_disabled", "false") not in ("true", "false"):  # the docs' only two values
        raise ManagementError(400, f"is_disabled: expected \"true\" or \"false\", got "
                              f"{form['is_disabled'][:40]!r}")
    if "remark" in form:
        record.remark = form["remark"]
    if form.get("expired_at"):
        record.expired_at = _expiry(form["expired_at"])
    if form.get("max_fee"):
        record.max_fee = _fee(form["max_fee"])
    if form.get("permissions"):
        record.permissions = _permissions(form["permissions"], store)
    if "is_disabled" in form:
        record.is_disabled = form["is_disabled"] == "true"
    if _admin_flag(form, store, request.url.path):
        record.is_admin = True
    return envelope(200, "Update api token success")


async def list_keys(request: Request, store: KeyStore) -> Response:
    """``get-api-tokens``: the caller's account's keys, never another's."""
    caller = _caller(request, store)
    catalogue = sorted(store.config.models)
    shown = [r for r in store.records.values() if not r.deleted] \
        if LIST_OTHER_USERS.active(store.config.faults, request.url.path) \
        else store.live(caller.user_id)
    return envelope(200, f"Get API keys success, total keys: {len(shown)}",
                    [r.as_json(catalogue) for r in shown])


async def delete(request: Request, store: KeyStore) -> Response:
    """``del-api-token`` / ``delete-api-token``."""
    caller = _caller(request, store)
    form = await _form(request)
    if not form.get("key"):
        raise ManagementError(400, "key is required")
    _owned(store, caller, form["key"]).deleted = True
    return envelope(200, "Delete api key success")


async def balance(request: Request, store: KeyStore) -> Response:
    """``balance``: the account's credits (``free_balance``: always 0 here)."""
    caller = _caller(request, store)
    return envelope(200, "get user balance success", {
        "balance": f"{store.balances.get(caller.user_id, 0.0):.2f}", "free_balance": "0.00"})


async def membership(request: Request, store: KeyStore) -> Response:
    """``get-membership-expire-date``: body and answer are NOT FOUND in the docs; our reading
    is the caller's tier and a null date (no membership expires here)."""
    caller = _caller(request, store)
    return envelope(200, "get membership expire date success",
                    {"membership": caller.tier, "expire_date": None})


async def model_rates(request: Request, store: KeyStore) -> Response:
    """``GET /api/v1/pay/model-rates`` (any valid key): credits per 1,000 input and output
    tokens per model; shape and unit are our reading (the docs do not show them)."""
    _caller(request, store, admin=False)
    rates = {m: store.config.rates.get(m, FALLBACK_RATE) for m in sorted(store.config.models)}
    return envelope(200, "get model rates success", {
        "unit": "credits per 1000 tokens",
        "rates": {m: {"input": f"{r.input:.2f}", "output": f"{r.output:.2f}"}
                  for m, r in rates.items()}})
