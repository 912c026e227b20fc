"""The gateway's management API as a client, and the key-lifecycle checks run through it.

``KeyAdmin`` creates, lists, updates and deletes keys with the target's admin key, at most
``MAX_KEYS_PER_RUN`` per run, paced at the documented QPS off loopback, and remembers every key
it created so ``cleanup()`` deletes each one, whatever happened in between. Created keys are
secrets like any other: no finding or message names one (they say "key #2").

The lifecycle checks (``lifecycle``) each follow one key through a documented promise: a key
created works at once; ``permissions`` restrict it; disabled, expired and deleted keys get 401;
admin rights cannot be granted; a listing shows only the caller's account; the management
routes refuse a key without admin rights.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from gateprobe.core.checks import clip_evidence
from gateprobe.core.errors import UsageError
from gateprobe.core.families import PATHS
from gateprobe.core.findings import Finding, Severity
from gateprobe.core.redact import Redactor
from gateprobe.core.targets import Target
from gateprobe.engine.probe import OutOfBounds, bounded_session

ADMIN = "/api/v1/user/admin/"
CREATE_PATHS = (ADMIN + "new-api-token", ADMIN + "create-api-token")
DELETE_PATHS = (ADMIN + "del-api-token", ADMIN + "delete-api-token")
UPDATE = ADMIN + "update-api-token"
LIST = ADMIN + "get-api-tokens"
BALANCE = ADMIN + "balance"
MODEL_RATES = "/api/v1/pay/model-rates"
RETRIES_429 = 2
MAX_RETRY_AFTER_S = 5.0
MAX_KEYS_PER_RUN = 10
"""The most keys one run creates (the account's cap is 5000; a run must not eat into it)."""
QPS = {LIST: 1.0, UPDATE: 10.0, **{p: 10.0 for p in CREATE_PATHS + DELETE_PATHS}}
"""The documented limits (delete: the stricter of the two documented figures)."""
FAR_FUTURE = "2099-01-01T00:00:00.000Z"
PAST = "2020-01-01T00:00:00.000Z"


class ManagementUnavailable(Exception):
    """The management API did not answer as documented enough to go on (the case fails)."""


@dataclass(slots=True)
class Answer:
    """One management or model-route answer: status and JSON body (None if not JSON)."""

    status: int
    body: Any

    @property
    def data(self) -> Any:
        """The envelope's ``data``."""
        return self.body.get("data") if isinstance(self.body, dict) else None


@dataclass(slots=True)
class KeyAdmin:
    """The target's management API, driven with its admin key."""

    http: httpx.Client
    target: Target
    admin_key: str = field(repr=False, default="")
    created: list[str] = field(default_factory=list, repr=False)
    """Every key created this run, in order (``cleanup`` deletes each)."""
    deleted: set[str] = field(default_factory=set, repr=False)
    sleep: Callable[[float], None] = time.sleep
    """How it waits out a 429's Retry-After (a test seam)."""
    _last: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.admin_key = self.admin_key or self.target.admin_key or ""

    def label(self, key: str) -> str:
        """How messages name a created key: its number, never its value."""
        return f"key #{self.created.index(key) + 1}" if key in self.created else "a key"

    def call(self, method: str, path: str, form: dict[str, str] | None = None,
             key: str | None = None) -> Answer:
        """One management call (form-urlencoded, as documented), paced off loopback; a 429
        is waited out (its Retry-After, at most ``MAX_RETRY_AFTER_S``) twice at most."""
        for attempt in range(RETRIES_429 + 1):
            self._pace(path)
            try:
                response = self.http.request(
                    method, self.target.base_url + path, data=form,
                    headers={"authorization": f"Bearer {key or self.admin_key}"})
            except httpx.HTTPError as exc:
                raise ManagementUnavailable(f"{method} {path}: {type(exc).__name__}") from None
            wait = _retry_after(response)
            if response.status_code != 429 or wait is None or attempt == RETRIES_429:
                break
            self.sleep(wait)
        try:
            body = response.json()
        except ValueError:
            body = None
        return Answer(response.status_code, body)

    def _pace(self, path: str) -> None:
        qps = QPS.get(path)
        if qps is None or self.target.is_loopback:
            return
        wait = self._last.get(path, 0.0) + 1.0 / qps - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self._last[path] = time.monotonic()

    def create(self, admin_key: str | None = None, **fields: str) -> tuple[Answer, str | None]:
        """Create a key (the apifox path, then the docs' spelling if that one is unknown)."""
        if len(self.created) >= MAX_KEYS_PER_RUN:
            raise UsageError(f"a run creates at most {MAX_KEYS_PER_RUN} keys")
        form = {"remark": "gateprobe", "expired_at": FAR_FUTURE, "max_fee": "0", **fields}
        for path in CREATE_PATHS:
            answer = self.call("POST", path, form, admin_key)
            if answer.status != 404 or isinstance(answer.data, str):
                break
        key = answer.data if answer.status == 200 and isinstance(answer.data, str) else None
        if key:
            self.created.append(key)
        return answer, key

    def delete(self, key: str, admin_key: str | None = None) -> Answer:
        """Delete a key (either documented spelling)."""
        for path in DELETE_PATHS:
            answer = self.call("POST", path, {"key": key}, admin_key)
            if answer.status != 404 or key in self.deleted:
                break
        if answer.status == 200:
            self.deleted.add(key)
        return answer

    def update(self, key: str, **fields: str) -> Answer:
        """Update a key, sending all six documented fields (each is marked required)."""
        form = {"key": key, "remark": "gateprobe", "expired_at": FAR_FUTURE, "max_fee": "0",
                "permissions": "[]", "is_disabled": "false", **fields}
        if form["permissions"] == "[]":
            del form["permissions"]  # an empty list would mean "no model" on some gateways
        return self.call("POST", UPDATE, form)

    def keys(self, admin_key: str | None = None) -> list[dict[str, Any]]:
        """The account's keys as listed (``ManagementUnavailable`` unless a list comes)."""
        answer = self.call("POST", LIST, key=admin_key)
        if answer.status != 200 or not isinstance(answer.data, list):
            raise ManagementUnavailable(f"listing keys answered {answer.status}")
        return [row for row in answer.data if isinstance(row, dict)]

    def record(self, key: str) -> dict[str, Any] | None:
        """The listing's row for ``key``."""
        return next((row for row in self.keys() if row.get("key") == key), None)

    def leftovers(self) -> list[str]:
        """Created keys not yet deleted."""
        return [k for k in self.created if k not in self.deleted]

    def cleanup(self) -> list[str]:
        """Delete every key this run created; the ones that could not be deleted."""
        for key in self.leftovers():
            for admin in (None, self.target.other_admin_key):
                try:
                    if self.delete(key, admin).status == 200:
                        break
                except ManagementUnavailable:
                    continue
        return self.leftovers()

    def use(self, key: str, model: str | None = None) -> Answer:
        """One tiny chat request with ``key`` (``max_tokens`` 1)."""
        body = {"model": model or self.target.models["chat"], "max_tokens": 1,
                "messages": [{"role": "user", "content": "Say test"}]}
        try:
            response = self.http.post(self.target.base_url + PATHS["chat"], json=body,
                                      headers={"authorization": f"Bearer {key}"})
        except httpx.HTTPError as exc:
            raise ManagementUnavailable(f"chat: {type(exc).__name__}") from None
        try:
            parsed = response.json()
        except ValueError:
            parsed = None
        return Answer(response.status_code, parsed)


def _retry_after(response: httpx.Response) -> float | None:
    """A 429's Retry-After in seconds, if it is one the run can afford."""
    try:
        wait = float(response.headers.get("retry-after", "1"))
    except ValueError:
        return None
    return wait if 0 <= wait <= MAX_RETRY_AFTER_S else None


@contextmanager
def key_admin(http: httpx.Client, target: Target) -> Iterator[KeyAdmin]:
    """A ``KeyAdmin`` whose created keys are all deleted when the block ends, even on error."""
    admin = KeyAdmin(http, target)
    try:
        yield admin
    finally:
        admin.cleanup()


def finding(check_id: str, expected: str, observed: str, endpoint: str = ADMIN,
            severity: Severity = Severity.HIGH, case: str = "") -> Finding:
    """A management or billing finding (its case: the request kind, or the check)."""
    return Finding(check_id, endpoint, severity, expected, observed, case=case or check_id)


Check = Callable[[KeyAdmin], list[Finding]]
CHAT = PATHS["chat"]


def _refused(answer: Answer) -> bool:
    return 400 <= answer.status < 500


def created_key_lifecycle(admin: KeyAdmin) -> list[Finding]:
    """One key through its life: works at once; refused on the management routes; then
    disabled, expired and deleted, each must get 401 on a model route."""
    answer, key = admin.create()
    if key is None:
        return [finding("management.created_key", "a created key in data (200)",
                        f"{answer.status}")]
    found = []
    used = admin.use(key)
    if used.status != 200:
        found.append(finding("management.created_key", "200 at once on the model route",
                             f"{used.status}", CHAT))
    listing = admin.call("POST", LIST, key=key)
    if not _refused(listing):
        found.append(finding("management.admin_only", "401 for a key without admin rights",
                             f"{listing.status}", LIST))
    steps = (("management.disabled_key", {"is_disabled": "true"}),
             ("management.expired_key", {"is_disabled": "false", "expired_at": PAST}))
    for check_id, fields in steps:
        if admin.update(key, **fields).status != 200:
            raise ManagementUnavailable(f"update ({check_id}) refused")
        status = admin.use(key).status
        if status != 401:
            found.append(finding(check_id, f"401 for {admin.label(key)}", f"{status}", CHAT))
    if admin.update(key).status != 200:  # live again: only the delete may refuse it now
        raise ManagementUnavailable("update (restore) refused")
    if admin.delete(key).status != 200:
        raise ManagementUnavailable("delete refused")
    status = admin.use(key).status
    if status != 401:
        found.append(finding("management.deleted_key", "401 after delete", f"{status}", CHAT))
    return found


def permissions_restrict(admin: KeyAdmin) -> list[Finding]:
    """A key restricted to one model: refused another, served the one it has."""
    models = admin.target.models
    allowed, other = models["chat"], models["legacy_chat"]
    if allowed == other:
        return []
    _, key = admin.create(permissions=json.dumps([allowed]))
    if key is None:
        raise ManagementUnavailable("a key restricted by permissions could not be created")
    found = []
    status = admin.use(key, other).status
    if not 400 <= status < 500:
        found.append(finding("management.permissions", f"4xx for {other} (not permitted)",
                             f"{status}", CHAT))
    status = admin.use(key, allowed).status
    if status != 200:
        found.append(finding("management.created_key", f"200 for {allowed} (permitted)",
                             f"{status}", CHAT))
    return found


def admin_not_grantable(admin: KeyAdmin) -> list[Finding]:
    """``is_admin=true`` is refused or ignored: the new key has no admin rights."""
    answer, key = admin.create(is_admin="true")
    if key is None:
        return [] if _refused(answer) else [finding(
            "management.admin_grant", "4xx, or a key without admin rights", f"{answer.status}")]
    row = admin.record(key) or {}
    listing = admin.call("POST", LIST, key=key)
    if row.get("is_admin") is True or listing.status == 200:
        return [finding("management.admin_grant", "no admin rights for a key made by the API",
                        f"is_admin {row.get('is_admin')}; its listing answered "
                        f"{listing.status}")]
    return []


def listing_isolated(admin: KeyAdmin) -> list[Finding]:
    """A listing shows one account's keys: never a key of another account."""
    other_key = None
    other = admin.target.other_admin_key
    if other:
        _, other_key = admin.create(admin_key=other)
    rows = admin.keys()
    found = []
    accounts = {str(row.get("user_id")) for row in rows}
    shown = {row.get("key") for row in rows}
    if len(accounts) > 1 or (other_key is not None and other_key in shown):
        found.append(finding("management.list_isolation", "only the caller's account's keys",
                             f"{len(rows)} keys of accounts {sorted(accounts)}"
                             + ("; another account's new key among them"
                                if other_key in shown else ""), LIST))
    if other_key is not None and other:
        admin.delete(other_key, other)
    return found


LIFECYCLE: tuple[Check, ...] = (created_key_lifecycle, permissions_restrict,
                                admin_not_grantable, listing_isolated)
"""The management category's cases, in order (each creates at most two keys)."""


def lifecycle(admin: KeyAdmin) -> list[Finding]:
    """Every lifecycle case; the keys they made are left to ``cleanup``."""
    return [f for check in LIFECYCLE for f in check(admin)]


STATEFUL_RUNS = 3
"""State-machine runs of the stateful case (each at most ``STATEFUL_STEPS`` calls)."""
STATEFUL_STEPS = 4


def run_workflow(admin: KeyAdmin) -> list[Finding]:
    """schemathesis's stateful testing over ``specs/management.yaml``'s links, with the admin
    key; its failures as ``fuzz.<check>`` findings (as the fuzz category reports them). The
    links into ``openai.yaml`` (use a key) are not followed by schemathesis 4.32: the
    lifecycle cases make those steps.

    Creations past the run's cap are sent without their required fields (the gateway must
    refuse them, so nothing is created); every key it creates joins ``admin.created``."""
    import schemathesis
    from hypothesis import HealthCheck, settings

    from gateprobe.core.specs import spec_path

    target = admin.target
    schema = schemathesis.openapi.from_path(str(spec_path("management")))
    schema.config.update(base_url=target.base_url, request_retries=0,
                         request_timeout=target.timeouts.total_s,
                         headers={"authorization": f"Bearer {admin.admin_key}"})
    # Dates and JSON-array-as-text fields are plain strings in a form: a random one is
    # schema-valid and meaningless, so "valid data accepted" cannot be judged from them.
    # Admin-only auth is judged by the lifecycle cases (with a real non-admin key); this
    # check replays a creation outside the state machine's bookkeeping.
    # "gateprobe" is the fuzz category's check of model-route answers, registered globally
    # when that module is imported: the management routes are not model routes.
    schema.config.checks.update(excluded_check_names=["positive_data_acceptance",
                                                      "ignored_auth", "gateprobe"])
    workflow = _workflow(schema.as_state_machine(), admin)
    before = {row.get("key") for row in admin.keys()}
    try:
        workflow.run(settings=settings(
            max_examples=STATEFUL_RUNS, stateful_step_count=STATEFUL_STEPS, deadline=None,
            derandomize=True, database=None, suppress_health_check=list(HealthCheck)))
    except (Exception, BaseExceptionGroup) as exc:  # schemathesis: a failure, or a group
        failures = list(exc.exceptions) if isinstance(exc, BaseExceptionGroup) else [exc]
        redactor = Redactor(admin.created)  # a reproduction may quote a created key
        return [_stateful_finding(failure, redactor) for failure in failures]
    finally:  # a key made by a call outside the bookkeeping (a check's replay) is ours too
        admin.created += [str(row["key"]) for row in admin.keys()
                          if row.get("key") not in before and row.get("key") not in
                          admin.created]
    return []


def _workflow(machine: Any, admin: KeyAdmin) -> Any:
    """The state machine, with the run's key bookkeeping around each call."""
    session = bounded_session(admin.target.timeouts)

    class Workflow(machine):  # type: ignore[misc]
        def call(self, case: Any, **kwargs: Any) -> Any:
            """Sent within the run's bounds, as every exchange (``probe.bounded_session``)."""
            return case.call(**{**kwargs, "session": session})

        def before_call(self, case: Any) -> None:
            if case.operation.path in CREATE_PATHS and \
                    len(admin.created) >= MAX_KEYS_PER_RUN:
                case.body = {"remark": "over the run's cap"}  # refused: nothing created

        def after_call(self, response: Any, case: Any) -> None:
            try:
                data = response.json().get("data")
            except (ValueError, AttributeError):
                return
            path, ok = case.operation.path, response.status_code == 200
            if ok and path in CREATE_PATHS and isinstance(data, str):
                admin.created.append(data)
            if ok and path in DELETE_PATHS and isinstance(case.body, dict):
                admin.deleted.add(str(case.body.get("key")))

    return Workflow


def _stateful_finding(failure: BaseException, redactor: Redactor) -> Finding:
    if isinstance(failure, OutOfBounds):  # an answer past the run's bounds: its symptom
        return finding(failure.kind, "an answer within the run's bounds",
                       clip_evidence(redactor.text(str(failure))), severity=Severity.MEDIUM)
    code = getattr(failure, "code", None) or type(failure).__name__
    check = (getattr(failure, "checks", ()) or (str(code).lower(),))[0]
    message = f"{getattr(failure, 'title', code)}: {getattr(failure, 'message', failure)}"
    return finding(f"fuzz.{check}", f"what the spec says ({code})",
                   clip_evidence(redactor.text(message)), severity=Severity.MEDIUM)
