"""The Locust side of gateprobe's load scenarios: imported only by the locustfiles in ``load/``,
inside the Locust processes (importing Locust monkey-patches the process with gevent).

What it owns:

- reading a streaming answer as it arrives (geventhttpclient's ``read(n)`` waits for ``n``
  bytes, which would smear every timestamp), through ``StreamObserver``: the project's SSE
  parser, the protocol's grammar and the one metric definition;
- the caps every run has: duration (a watchdog, also in web mode), total requests and requests
  per second, each split between the load processes;
- the raw samples: written as JSON lines by the master (or the only process); a worker ships
  its samples with each stats report and once more when it stops, so none is lost when the
  master ends the run;
- the verdict: judged by the master when Locust quits, written to ``verdict.json``, and turned
  into the process's exit code;
- the process's measurement of itself (``Monitor``: scheduling, receive and event-loop lag, CPU;
  see ``gateprobe.commands.load.selfcheck``), shipped and written like the samples, to ``lag.jsonl``.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import json
import logging
import os
import random
import signal
import ssl
import sys
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import gevent
import gevent.monkey
import gevent.ssl
from gevent.pool import Pool
from geventhttpclient.connectionpool import ConnectionPool
from locust import FastHttpUser, argument_parser, events
from locust.env import Environment
from locust.exception import StopUser
from locust.runners import WorkerRunner
from locust.user.task import LOCUST_STATE_STOPPING

import gateprobe.protocols.conformance  # noqa: F401  (registers the checks run on 429 answers)
from gateprobe.commands.load import ratelimits
from gateprobe.commands.load.plan import AUDIO_KINDS, PARENT_ENV, STREAM_ENDPOINTS, LoadPlan
from gateprobe.commands.load.results import SAMPLES_FILE
from gateprobe.commands.load.scenarios import write_verdict
from gateprobe.commands.load.selfcheck import LAG_FILE, LAG_KINDS, LagHistogram
from gateprobe.core import arrival, transport
from gateprobe.core.checks import Context, Exchange, Expectation, run_checks, select
from gateprobe.core.metrics import now_ns
from gateprobe.core.redact import Redactor
from gateprobe.core.targets import credentials, trusted_cas
from gateprobe.engine.probe import MAX_BODY_BYTES
from gateprobe.protocols.conformance import MAX_SANE_RETRY_AFTER_S
from gateprobe.protocols.media import audio_problem
from gateprobe.protocols.midjourney import QUERY, TERMINAL, Problem, TaskGrammar
from gateprobe.protocols.streams import StreamObserver

log = logging.getLogger("gateprobe.commands.load")

SAMPLES_MESSAGE = "gateprobe_samples"
LAG_MESSAGE = "gateprobe_lag"
DONE_MESSAGE = "gateprobe_done"
STOP_MESSAGE = "gateprobe_stop"
ENVELOPE_CHECKS = ("error.envelope", "error.type", "response.content_type")
MAX_BURST_CONNECTIONS = 512
"""A tier's burst opens at most this many connections at once."""
REFUSED_STOP_AFTER = 20
"""A run whose first this many answers all refused the key (401/403) stops: it measures a
wrong secret, not the gateway (the verdict says which variable)."""


class Pacer:
    """At most ``rate`` request starts per second in this process (gevent-cooperative)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0

    def wait(self, not_before_ns: int = 0) -> int:
        """Block until the next start is allowed; when that was (``now_ns`` clock), or
        ``not_before_ns`` if later: the request's intended send time."""
        now, now_stamp = time.monotonic(), now_ns()
        slot = max(self._next, now)
        self._next = slot + self.interval
        if slot > now:
            gevent.sleep(slot - now)
        return max(not_before_ns, now_stamp + round((slot - now) * 1e9))


class Monitor:
    """This process's measurement of itself (``gateprobe.commands.load.selfcheck``): a timer in the
    event loop, the lags the users report, and CPU time, written as one line per interval."""

    TICK_S = 0.01
    EVERY_S = 1.0

    def __init__(self, write: Callable[[dict[str, Any]], None]) -> None:
        self.write = write
        self.lag = {kind: LagHistogram() for kind in LAG_KINDS}
        self._greenlets: list[Any] = []
        self._cpu = time.process_time()
        self._since = time.monotonic()

    def add(self, kind: str, ns: int) -> None:
        """Count one lag of ``kind``, in nanoseconds."""
        self.lag[kind].add(ns / 1e6)

    def start(self) -> None:
        """Start the timer (and the test-only CPU burner, ``GATEPROBE_TEST_BURN_MS``)."""
        if self._greenlets:
            return
        self._cpu, self._since = time.process_time(), time.monotonic()
        self._greenlets.append(gevent.spawn(self._tick))
        burn = float(os.environ.get("GATEPROBE_TEST_BURN_MS") or 0)
        if burn > 0:
            self._greenlets.append(gevent.spawn(_burn, burn))

    def stop(self) -> None:
        """Stop measuring; the last interval is written."""
        if not self._greenlets:
            return
        gevent.killall(self._greenlets)
        self._greenlets = []
        self.flush()

    def _tick(self) -> None:
        while True:
            due = time.monotonic() + self.TICK_S
            gevent.sleep(self.TICK_S)
            now = time.monotonic()
            self.lag["loop"].add((now - due) * 1000)
            if now - self._since >= self.EVERY_S:
                self.flush()

    def flush(self) -> None:
        """Write the interval so far as one line and start the next."""
        now, cpu = time.monotonic(), time.process_time()
        interval = max(now - self._since, 1e-9)
        line = {"t": time.time(), "pid": os.getpid(), "interval_s": interval,
                "cpu_ms": (cpu - self._cpu) * 1000, "cpu_share": (cpu - self._cpu) / interval,
                "lag": {kind: h.as_json() for kind, h in self.lag.items()}}
        self.lag = {kind: LagHistogram() for kind in LAG_KINDS}
        self._cpu, self._since = cpu, now
        self.write(line)


def _burn(ms: float) -> None:
    """Hold the event loop ``ms`` at a time, over and over: a starved generator, for the test
    that a saturated run says so (set only by tests, through ``GATEPROBE_TEST_BURN_MS``)."""
    while True:
        end = time.perf_counter() + ms / 1000
        while time.perf_counter() < end:
            pass
        gevent.sleep(0.001)


class Session:
    """This process's share of one load run: plan, keys, caps and samples."""

    def __init__(self, plan: LoadPlan) -> None:
        self.plan = plan
        self.keys = {env: os.environ.get(env, "") for env in plan.secret_envs}
        missing = [env for env, value in self.keys.items() if not value]
        if missing:
            raise RuntimeError(f"environment variable {missing[0]} is not set")
        self.redactor = Redactor(tuple(self.keys.values()))
        self.pacer = Pacer(plan.share(plan.max_rps))
        self.started = 0
        self.cap = plan.request_cap_per_process
        self.environment: Environment | None = None
        self._buffer: list[dict[str, Any]] = []
        self._lag_buffer: list[dict[str, Any]] = []
        self._file: Any = None
        self._lag_file: Any = None
        self.monitor = Monitor(self._record_lag)
        self._done: set[str] = set()
        self._t0 = time.monotonic()
        self._stopping = False
        self._answers = 0
        self._refused = 0

    # -- roles --------------------------------------------------------------------------
    @property
    def is_worker(self) -> bool:
        """Whether this process reports to a master."""
        return isinstance(getattr(self.environment, "runner", None), WorkerRunner)

    def attach(self, environment: Environment) -> None:
        """Hook into Locust's events for this process's role."""
        self.environment = environment
        runner = environment.runner
        if runner is None:
            return
        environment.events.test_start.add_listener(lambda **_: self.monitor.start())
        environment.events.test_stop.add_listener(lambda **_: self.monitor.stop())
        if self.is_worker:
            environment.events.test_start.add_listener(lambda **_: freeze_heap())
            environment.events.report_to_master.add_listener(self._on_report_to_master)
            environment.events.test_stop.add_listener(self._on_worker_stop)
            return
        self._file = (self.plan.out / SAMPLES_FILE).open("w", encoding="utf-8", buffering=1)
        self._lag_file = (self.plan.out / LAG_FILE).open("w", encoding="utf-8", buffering=1)
        environment.events.worker_report.add_listener(self._on_worker_report)
        runner.register_message(SAMPLES_MESSAGE, lambda environment, msg, **_: self._write_all(
            msg.data["samples"], msg.data.get("lag") or ()))
        runner.register_message(DONE_MESSAGE, lambda environment, msg, **_: self._on_done(
            msg.data["tier"]))
        runner.register_message(STOP_MESSAGE, lambda environment, msg, **_: self.stop_run(
            msg.data["reason"]))
        environment.events.test_start.add_listener(self._on_test_start)
        environment.events.quitting.add_listener(self._on_quitting)

    # -- samples ------------------------------------------------------------------------
    def record(self, sample: dict[str, Any]) -> None:
        """Keep one sample: to the file here, or to the master with the next report. A run
        whose first answers all refuse the key stops at once."""
        if sample.get("status"):
            self._answers += 1
            self._refused += sample["status"] in (401, 403)
            if self._answers == REFUSED_STOP_AFTER and self._refused == self._answers:
                self.stop_run(f"the first {self._answers} answers refused the key (401/403)")
        if self.is_worker:
            self._buffer.append(sample)
        else:
            self._write_all([sample])

    def _record_lag(self, line: dict[str, Any]) -> None:
        """Keep one line of the monitor's, as ``record`` keeps a sample."""
        if self.is_worker:
            self._lag_buffer.append(line)
        else:
            self._write_all([], [line])

    def _write_all(self, samples: list[dict[str, Any]],
                   lag: Iterable[dict[str, Any]] = ()) -> None:
        if self._file is not None:
            self._file.write("".join(json.dumps(s, default=str) + "\n" for s in samples))
        if self._lag_file is not None:
            self._lag_file.write("".join(json.dumps(line) + "\n" for line in lag))

    def _on_report_to_master(self, client_id: str, data: dict[str, Any]) -> None:
        data[SAMPLES_MESSAGE], self._buffer = self._buffer, []
        data[LAG_MESSAGE], self._lag_buffer = self._lag_buffer, []

    def _on_worker_report(self, client_id: str, data: Mapping[str, Any]) -> None:
        self._write_all(list(data.get(SAMPLES_MESSAGE) or ()), data.get(LAG_MESSAGE) or ())

    def _on_worker_stop(self, environment: Environment, **_: Any) -> None:
        """Ship what is buffered; then let the worker hear its master's next message at once.

        A worker told to stop waits ``stop_timeout`` (5 s) after stopping before it reads any
        other message; the master that ends the run (``stop_run``: stop, then quit) gives it
        half a second to quit. Its users are stopped by now, so that wait has nothing left to
        wait for."""
        self._ship()
        environment.stop_timeout = 0

    def _ship(self) -> None:
        """Send what is buffered now (a worker that stops must not wait for the next report)."""
        self.monitor.stop()  # its last interval goes too
        if (self._buffer or self._lag_buffer) and self.environment is not None \
                and self.environment.runner:
            samples, self._buffer = self._buffer, []
            lag, self._lag_buffer = self._lag_buffer, []
            self.environment.runner.send_message(SAMPLES_MESSAGE,
                                                 {"samples": samples, "lag": lag})

    # -- caps and the end of the run ----------------------------------------------------
    def admit(self, intended_ns: int = 0) -> int:
        """Wait for the rate cap and count against the request cap (``StopUser`` when spent);
        the request's intended send time: ``intended_ns`` (its place on a schedule) or the
        slot the rate cap gave it, whichever is later."""
        if self.started >= self.cap or self._stopping:
            self.stop_run(f"request cap of {self.plan.max_requests} reached")
            raise StopUser
        self.started += 1
        return self.pacer.wait(intended_ns)

    def tier_done(self, tier: str) -> None:
        """A rate-limit user finished its tier."""
        if self.is_worker:
            self._ship()
            assert self.environment is not None and self.environment.runner is not None
            self.environment.runner.send_message(DONE_MESSAGE, {"tier": tier})
        else:
            self._on_done(tier)

    def _on_done(self, tier: str) -> None:
        self._done.add(tier)
        if self._done >= set(self.plan.limits):
            self.stop_run("every tier finished")

    def stop_run(self, reason: str) -> None:
        """End the whole run (from any process), once."""
        if self._stopping or self.environment is None or self.environment.runner is None:
            return
        self._stopping = True
        runner = self.environment.runner
        if self.is_worker:
            runner.send_message(STOP_MESSAGE, {"reason": reason})
            return
        log.info("gateprobe: stopping: %s", reason)

        def stop_then_quit() -> None:
            runner.stop()
            runner.quit()
            # With the web UI, Locust's main waits for the UI, not the runner: stop it too, or
            # the process (and the verdict written when it quits) waits forever.
            web_ui = getattr(self.environment, "web_ui", None)
            if web_ui is not None:
                web_ui.stop()

        gevent.spawn(stop_then_quit)

    def _on_test_start(self, **_: Any) -> None:
        self._t0 = time.monotonic()
        freeze_heap()
        # The duration cap holds in web mode too, where Locust itself has no run time. It
        # comes before Locust's own run time (a backstop, ``RUN_TIME_MARGIN_S`` later): our
        # stop waits for the workers to stop and ship their last samples, Locust's quits at
        # once and loses what a busy worker had not sent within half a second.
        gevent.spawn_later(self.plan.duration_s, self.stop_run,
                           f"duration cap of {self.plan.duration_s:g} s reached")

    def _on_quitting(self, environment: Environment, **_: Any) -> None:
        self.monitor.stop()
        for name in ("_file", "_lag_file"):
            if getattr(self, name) is not None:
                getattr(self, name).close()
                setattr(self, name, None)
        result = write_verdict(self.plan, time.monotonic() - self._t0)
        environment.process_exit_code = 0 if result["ok"] else 1


def freeze_heap() -> None:
    """Move everything alive at the start (Locust, gevent, our modules) out of the collector's
    reach: a full collection over it would pause every stream's clock for milliseconds."""
    gc.collect()
    gc.freeze()


PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int | None = None) -> None:
    """Ask Linux to end this process when the one that started it ends (``gateprobe load``
    for the master, the master for a worker it forked): a run killed outright, even with
    SIGKILL, leaves no Locust process behind. ``parent`` is who that should be; if it is gone
    already, end now."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))
    except (OSError, AttributeError):
        return
    if parent is not None and os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)


_FORKING: list[int] = []


def _before_fork() -> None:
    _FORKING[:] = [os.getpid()]


def _after_fork_in_child() -> None:
    die_with_parent(_FORKING[0] if _FORKING else None)


SESSION: Session | None = None


def session() -> Session:
    """This process's session, created from ``GATEPROBE_LOAD_PLAN`` on first use."""
    global SESSION
    if SESSION is None:
        parent = os.environ.get(PARENT_ENV)
        die_with_parent(int(parent) if parent and parent.isdigit() else None)
        # Locust's --processes forks the workers after this module is imported.
        os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
        SESSION = Session(LoadPlan.from_env())
        # FastHttpUser builds its client from class attributes when a user is created.
        for cls in (StreamingUser, TierUser, TaskUser):
            # One network timeout covers the wait for the headers and every read after them.
            cls.network_timeout = max(SESSION.plan.timeouts.first_byte_s,
                                      SESSION.plan.timeouts.idle_s)
            cls.connection_timeout = SESSION.plan.timeouts.connect_s

        @events.init.add_listener
        def _attach(environment: Environment, **_: Any) -> None:
            assert SESSION is not None
            SESSION.attach(environment)
    return SESSION


def verified_tls_context(cafile: str | None = None) -> ssl.SSLContext:
    """A context that checks the gateway's certificate and name, trusting what every other
    runner trusts (``targets.trusted_cas``), else ``cafile`` (geventhttpclient passes the
    system's bundle, or certifi's)."""
    env_file, capath = trusted_cas()
    context: ssl.SSLContext = gevent.ssl.create_default_context(cafile=env_file or cafile,
                                                                capath=capath)
    return context


# -- requests -------------------------------------------------------------------------------
def family_of(path: str) -> str:
    """``anthropic`` for the Anthropic-native routes, else ``openai``."""
    return "anthropic" if path.endswith(("/messages", "/complete")) else "openai"


def headers_for(s: Session, path: str, key: str) -> dict[str, str]:
    """Credentials and the headers every load request carries."""
    headers = {**credentials(s.plan.profile, family_of(path), key),
               "content-type": "application/json",
               # A compressed stream is buffered until the end: no latency left to measure.
               "accept-encoding": "identity"}
    if family_of(path) == "anthropic":
        headers["anthropic-version"] = "2023-06-01"
    return headers


SPEECH_FORMAT = "mp3"
"""What the speech load asks for (OpenAI's default format)."""


def stream_body(plan: LoadPlan, kind: str) -> dict[str, Any]:
    """The streaming request of one endpoint kind."""
    models = plan.models
    if kind == "chat":
        body: dict[str, Any] = {"model": models["chat"], "stream": True,
                                "max_tokens": plan.max_tokens,
                                "messages": [{"role": "user", "content": plan.prompt}]}
        if models["chat"] != models.get("legacy_chat"):  # claude-2-web ignores it
            body["stream_options"] = {"include_usage": True}
        return body
    if kind == "messages":
        return {"model": models["messages"], "stream": True, "max_tokens": plan.max_tokens,
                "messages": [{"role": "user", "content": plan.prompt}]}
    if kind == "speech":
        return {"model": models["speech"], "input": plan.prompt, "voice": "alloy",
                "response_format": SPEECH_FORMAT}
    if kind == "responses":  # OpenAI's minimum max_output_tokens is 16
        return {"model": models["responses"], "stream": True, "input": plan.prompt,
                "max_output_tokens": max(16, plan.max_tokens)}
    return {"model": models["complete"], "stream": True,
            "max_tokens_to_sample": plan.max_tokens,
            "prompt": f"\n\nHuman: {plan.prompt}\n\nAssistant:"}


STAMPS = {frozenset({True}): "kernel", frozenset({False}): "read",
          frozenset({True, False}): "mixed"}
"""A sample's ``stamps``: whether the times of its content events (TTFT, ITL, TPOT, e2e) were
the kernel's receive stamps, the times the reads returned, or some of each (None: no content).
Body bytes that came in one read with the headers were read by geventhttpclient, not here, and
carry the time we got them: TTFB often does, content only from a gateway that holds its headers
back until the first token."""


def read_arrivals(response: Any, start_ns: int) -> Any:
    """Yield ``(bytes, arrival time, whether the kernel stamped it)`` as data arrives (whatever
    is there, as soon as anything is; geventhttpclient's ``read(n)`` would wait for ``n``).

    The time is the kernel's receive stamp where there is one (``gateprobe.core.arrival``): our own
    scheduling delays, and pauses of the machine under us, stay out of the gateway's numbers.
    Without one it is stamped straight after ``recv`` returns, and this greenlet then yields
    once before its bytes are parsed: when many streams' events arrive together, every greenlet
    stamps its arrival before any of them spends time parsing.
    """
    raw = response._response
    if raw is None:
        return
    if raw._body_buffer:  # what came with the headers arrived when they did
        data = bytes(raw._body_buffer)
        del raw._body_buffer[:]
        yield data, now_ns(), False
    stamped = raw._sock is not None and arrival.enable(raw._sock)
    while not raw.message_complete and raw._sock is not None:
        data, t_ns, by_kernel = arrival.recv(raw._sock, raw.block_size, stamped, start_ns)
        if not data:
            return
        if not by_kernel:
            gevent.sleep(0)
        raw.feed(data)
        if raw._body_buffer:
            body = bytes(raw._body_buffer)
            del raw._body_buffer[:]
            yield body, t_ns, by_kernel


def _is_socket_alive(self: ConnectionPool, sock: Any) -> bool:
    """geventhttpclient's staleness check of a pooled connection, without yielding.

    The original asks (monkey-patched, so gevent's) ``select`` with a zero timeout, and gevent
    yields to the hub even then: between a request's start stamp and its send, every other
    ready greenlet ran first. At 200 streams that put up to 8 ms (p99) of our own parsing into
    the gateway's TTFT. The real ``select`` answers the same question without a switch.
    """
    if sock is None:
        return False
    try:
        if sock.fileno() < 0:
            return False
        readable, _, _ = _real_select([sock], [], [], 0.0)
    except (OSError, ValueError):
        return False
    return not readable


_real_select = gevent.monkey.get_original("select", "select")
ConnectionPool._is_socket_alive = _is_socket_alive  # type: ignore[method-assign]


@functools.cache
def _default_args_once() -> dict[str, Any]:
    """Locust's default options, built once.

    A worker handling the master's spawn message rebuilds Locust's whole argument parser once
    per option it was sent (``default_args_dict()`` inside a comprehension): about a hundred
    parser builds, without yielding. On a busy two-core machine that held every worker's event
    loop for seconds, the master saw no heartbeat for 3 s, marked the workers missing, and a
    ``--processes 2`` run ended with no request sent. The defaults never change in a process.
    """
    return _ORIGINAL_DEFAULT_ARGS()


_ORIGINAL_DEFAULT_ARGS = argument_parser.default_args_dict
argument_parser.default_args_dict = _default_args_once

_SEND_STAMPED: weakref.WeakSet[Any] = weakref.WeakSet()


def wire_sent(response: Any) -> int | None:
    """When this request's last byte left, by the kernel's stamp (``gateprobe.core.arrival``); None
    for the first request of a connection (stamping starts with the next) and where there are
    no stamps. Recorded with each sample, so that our own delay between the start stamp and
    the wire is measured, not guessed."""
    raw = getattr(response, "_response", None)
    sock = getattr(raw, "_sock", None)
    if sock is None:
        return None
    if sock in _SEND_STAMPED:
        return arrival.last_sent(sock)
    if arrival.enable_sent(sock):
        _SEND_STAMPED.add(sock)
    return None


def fire(environment: Environment, kind: str, name: str, value: float | None,
         length: int = 0) -> None:
    """One custom Locust event, so the web UI and CSVs show gateprobe's metrics."""
    if value is not None:
        environment.events.request.fire(request_type=kind, name=name, response_time=value,
                                        response_length=length, exception=None, context={})


class StreamingUser(FastHttpUser):
    """Streams to the weighted endpoints, closed loop or at an arrival rate."""

    abstract = True
    insecure = False  # Locust's default: certificates unchecked, keys sent to anyone on path
    ssl_context_factory = staticmethod(verified_tls_context)
    concurrency = 64
    max_redirects = 0

    def on_start(self) -> None:
        s = session()
        self.s = s
        kinds = [k for k, w in s.plan.weights.items() if w > 0]
        self.kinds, self.weights = kinds, [s.plan.weights[k] for k in kinds]
        self.key = s.keys[s.plan.api_key_env]
        self.bodies = {k: json.dumps(stream_body(s.plan, k)) for k in kinds}
        self.parsed = {STREAM_ENDPOINTS[k]: json.loads(self.bodies[k]) for k in kinds}
        self.rng = random.Random()

    def pick(self) -> str:
        """The next endpoint kind, by weight."""
        return self.rng.choices(self.kinds, self.weights)[0]

    def closed_loop(self) -> None:
        """One request at a time, the next as soon as the last ended."""
        self.send()

    def send(self, kind: str | None = None) -> None:
        """One streaming request to ``kind`` (None: one drawn by the run's weights), counted
        against the run's caps, timed and checked: what a locustfile's own task calls."""
        intended = self.s.admit()
        self.stream(kind or self.pick(), intended)

    def open_loop(self) -> None:
        """Arrivals on a schedule of their own (constant or Poisson), never waiting for
        answers: a slow gateway gets more concurrent requests, as it would in production."""
        plan = self.s.plan
        rate = plan.rate / max(1, plan.users)
        pool = Pool(self.concurrency)
        due = now_ns()
        while True:
            gap = self.rng.expovariate(rate) if plan.arrival == "poisson" else 1 / rate
            due += round(gap * 1e9)
            gevent.sleep(max(0.0, (due - now_ns()) / 1e9))
            if self._state == LOCUST_STATE_STOPPING:
                pool.join()  # the run is ending: no new arrivals, let the open ones finish
                raise StopUser
            intended = self.s.admit(due)
            if pool.full():  # bounded memory: an arrival with no free slot is dropped, counted
                self.s.record({"t": time.time(), "dropped": True, "ok": False})
                continue
            pool.spawn(self.stream, self.pick(), intended)

    def stream(self, kind: str, intended_ns: int = 0) -> None:
        """One streaming request, measured and checked as it arrives; ``intended_ns`` is when
        it should have been sent (its lag to the start stamp is the scheduling lag)."""
        if kind in AUDIO_KINDS:
            self.audio(kind, intended_ns)
            return
        s, path = self.s, STREAM_ENDPOINTS[kind]
        body, request_headers = self.bodies[kind], headers_for(s, path, self.key)
        error: str | None = None
        kind = ""
        status = 0
        wall = time.time()
        start = now_ns()  # nothing of ours between this stamp and the send
        schedule_lag = self._schedule_lag(start, intended_ns)
        with self.client.request("POST", path, data=body, headers=request_headers,
                                 stream=True, catch_response=True, name=path) as response:
            observer = StreamObserver(path, self.parsed[path], start, redact=s.redactor.text)
            status = response.status_code or 0
            headers = {k.lower(): v for k, v in (response.headers or {}).items()}
            request_id = headers.get("x-request-id") or headers.get("request-id")
            sent = wire_sent(response)
            stamps: set[bool] = set()
            lags: list[int] = []
            try:
                kind, error = self._judge_head(response, status, headers)
                if not kind:
                    kind, error = self._consume(response, observer, stamps, lags)
            except Exception as exc:  # a broken gateway is a finding, not a crash
                kind = transport.classify(exc, got_headers=True, streaming=True)
                error = f"{type(exc).__name__}: {exc}"
            metrics = observer.finish(now_ns())
            findings = [f.check_id for f in observer.findings] if status == 200 else []
            if not kind and findings:
                kind, error = findings[0], f"stream: {', '.join(sorted(set(findings)))}"
            ok = not kind
            if ok:
                response.success()
            else:
                response.failure(s.redactor.text(f"{kind}: {error}"))
        env = self.environment
        for label, value in (("TTFB", metrics.ttfb_ms), ("TTFT", metrics.ttft_ms),
                             ("TPOT", metrics.tpot_ms), ("E2E", metrics.e2e_ms),
                             ("ITL max", max(metrics.itl_ms, default=None))):
            fire(env, label, path, value, metrics.output_tokens)
        fire(env, "tokens/s", path, metrics.tokens_per_s)
        s.record({"t": wall, "start_ns": start, "sent_ns": sent, "pid": os.getpid(),
                  "request_id": request_id, "stamps": STAMPS.get(frozenset(stamps)),
                  "schedule_lag_ms": schedule_lag, "receive_lag_ms": max(lags, default=0) / 1e6
                  if lags else None,
                  "endpoint": path, "status": status, "ok": ok, "error_kind": kind or None,
                  "error": s.redactor.text(error) if error else None, "findings": findings,
                  **metrics.as_json()})

    def _schedule_lag(self, start_ns: int, intended_ns: int) -> float | None:
        """Counted in the monitor; the sample's ``schedule_lag_ms`` (None: no schedule)."""
        if not intended_ns:
            return None
        lag = max(0, start_ns - intended_ns)
        self.s.monitor.add("schedule", lag)
        return lag / 1e6

    def audio(self, kind: str, intended_ns: int = 0) -> None:
        """One speech request: its time to first audio byte (recorded as its TTFT: the first
        thing a player can play) and end to end; its label and magic bytes checked."""
        s, path = self.s, STREAM_ENDPOINTS[kind]
        wall, start = time.time(), now_ns()
        self._schedule_lag(start, intended_ns)
        with self.client.request("POST", path, data=self.bodies[kind],
                                 headers=headers_for(s, path, self.key), stream=True,
                                 catch_response=True, name=path) as response:
            status = response.status_code or 0
            headers = {k.lower(): v for k, v in (response.headers or {}).items()}
            sent = wire_sent(response)
            try:
                symptom, error = self._judge_head(response, status, headers, audio=True)
                timing = (None, None, 0, None) if symptom else \
                    self._read_audio(response, start)
                first_ns, end_ns, chunks, problem = timing
                if not symptom and end_ns is None:
                    symptom, error = transport.STREAM_TOTAL_TIMEOUT, "total timeout"
                elif not symptom and problem is not None:
                    symptom, error = "speech.audio", problem
            except Exception as exc:  # a broken gateway is a finding, not a crash
                symptom = transport.classify(exc, got_headers=True, streaming=True)
                error, first_ns, end_ns, chunks = f"{type(exc).__name__}: {exc}", None, None, 0
            ok = not symptom
            if ok:
                response.success()
            else:
                response.failure(s.redactor.text(f"{symptom}: {error}"))
        ttfab = (first_ns - start) / 1e6 if first_ns else None
        e2e = (end_ns - start) / 1e6 if end_ns and ok else None
        for label, value in (("TTFB", ttfab), ("TTFT", ttfab), ("E2E", e2e)):
            fire(self.environment, label, path, value)
        s.record({"t": wall, "start_ns": start, "sent_ns": sent, "pid": os.getpid(),
                  "request_id": headers.get("x-request-id"), "stamps": None, "endpoint": path,
                  "status": status, "ok": ok, "error_kind": symptom or None,
                  "error": s.redactor.text(error) if error else None, "findings": [],
                  "ttfb_ms": ttfab, "ttft_ms": ttfab, "tpot_ms": None, "e2e_ms": e2e,
                  "end_ms": e2e, "output_tokens": 0, "tokens_source": None,
                  "tokens_per_s": None, "content_events": chunks, "itl_ms": []})

    def _read_audio(self, response: Any, start: int,
                    ) -> tuple[int | None, int | None, int, str | None]:
        """(first audio byte's arrival, end, reads, why the first bytes are not the asked
        format or None) of an answer; end None past the total timeout."""
        first_ns, head, chunks, size = None, b"", 0, 0
        with gevent.Timeout(self.s.plan.timeouts.total_s, False):
            for chunk, t_ns, by_kernel in read_arrivals(response, start):
                if by_kernel:
                    self.s.monitor.add("receive", now_ns() - t_ns)
                if chunk and first_ns is None:
                    first_ns = t_ns
                head = head if len(head) >= 64 else (head + chunk)[:64]
                chunks, size = chunks + 1, size + len(chunk)
                if size > MAX_BODY_BYTES:
                    raise OSError(f"body larger than {MAX_BODY_BYTES} bytes")
            return first_ns, now_ns(), chunks, audio_problem(head, SPEECH_FORMAT)
        return first_ns, None, chunks, None

    @staticmethod
    def _judge_head(response: Any, status: int, headers: dict[str, str], audio: bool = False,
                    ) -> tuple[str, str | None]:
        """(symptom, detail) when the answer is not a stream worth reading, else ('', None)."""
        if not status:
            exc = getattr(response, "error", None) or OSError("no response")
            return (transport.classify(exc, got_headers=False, streaming=True),
                    f"{type(exc).__name__}: {exc}")
        if 300 <= status < 400:
            return "transport.redirect", f"status {status} to {headers.get('location', '?')}"
        if status == 429:
            return "response.rate_limited", "status 429"
        wait = _seconds(headers.get("retry-after"))
        if headers.get("retry-after") and (wait is None or wait > MAX_SANE_RETRY_AFTER_S):
            return "response.retry_after", f"status {status}, Retry-After " \
                                           f"{headers['retry-after'][:20]}"
        if status != 200:
            return "response.status", f"status {status}"
        media = headers.get("content-type", "").split(";")[0].strip().lower()
        if audio and not media.startswith("audio/"):
            return "speech.content_type", f"content-type {media or 'missing'}"
        if not audio and media != "text/event-stream":
            return "response.content_type", f"content-type {media or 'missing'}"
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            return "stream.compressed", f"content-encoding {encoding}"
        return "", None

    def _consume(self, response: Any, observer: StreamObserver, stamps: set[bool],
                 lags: list[int]) -> tuple[str, str | None]:
        """Feed the body to the observer; (symptom, detail) if it had to stop early. ``stamps``
        collects, per read that completed a content event, whether its time was the kernel's;
        ``lags`` each kernel-stamped read's receive lag (its stamp to now, in ns)."""
        timeouts = self.s.plan.timeouts
        meter, monitor = observer.meter, self.s.monitor
        size = 0
        with gevent.Timeout(timeouts.total_s, False):
            for chunk, t_ns, by_kernel in read_arrivals(response, meter.start_ns):
                if by_kernel:
                    lags.append(now_ns() - t_ns)
                    monitor.add("receive", lags[-1])
                before = meter.content_events
                observer.feed(chunk, t_ns)
                if meter.content_events != before:
                    stamps.add(by_kernel)
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    return transport.TOO_LARGE, f"body larger than {MAX_BODY_BYTES} bytes"
            return "", None
        return transport.STREAM_TOTAL_TIMEOUT, f"total timeout of {timeouts.total_s:g} s"


class TierUser(FastHttpUser):
    """Drives one tier's key past its limit within one window, then checks recovery."""

    abstract = True
    insecure = False  # Locust's default: certificates unchecked, keys sent to anyone on path
    ssl_context_factory = staticmethod(verified_tls_context)
    fixed_count = 1
    concurrency = 64
    max_redirects = 0
    tier = ""
    path = "/v1/chat/completions"

    def on_start(self) -> None:
        s = session()
        self.s = s
        self.key = s.keys[s.plan.tier_keys[self.tier]]
        self.body = json.dumps({"model": s.plan.models["legacy_chat"], "max_tokens": 1,
                                "messages": [{"role": "user", "content": "Hi"}]})
        self.ctx = Context(family_of(self.path), s.plan.profile, s.redactor,  # type: ignore[arg-type]
                           Expectation(status=429), tuple(s.keys.values()),
                           envelopes=frozenset(s.plan.envelopes))

    def run_tier(self) -> None:
        """Burst, wait as told, try once more, then report done.

        The burst goes out at once, every request on its own connection, held back only by
        the run's rate cap (shared by the tiers, which burst together): what a refilling
        limiter may accept while it lasts is then a small share of the limit, whatever the
        window (paced over the window, a no-limit gateway looks like a token bucket)."""
        s, plan = self.s, self.s.plan
        n = plan.burst_size(self.tier)
        pool = Pool(n)
        retry_at: list[float] = []
        for _ in range(n):
            s.admit()
            pool.spawn(self.one, "burst", retry_at)
        pool.join()
        # Retry-After counts from the answer that gave it; without one, a whole window.
        resume = max(retry_at, default=time.monotonic() + plan.window_s)
        resume = min(resume, time.monotonic() + 2 * plan.window_s + 1)
        waited = max(0.0, resume - time.monotonic())
        gevent.sleep(waited)
        s.admit()
        self.one("recovery", [], waited)
        s.tier_done(self.tier)
        raise StopUser

    def one(self, phase: str, retry_at: list[float], waited: float = 0.0) -> None:
        """One request of the run, recorded with what its answer said about the budget."""
        s = self.s
        wall = time.time()
        t = time.monotonic()
        with self.client.request("POST", self.path, data=self.body, catch_response=True,
                                 headers=headers_for(s, self.path, self.key),
                                 name=f"{self.path} [{self.tier}]") as response:
            status = response.status_code or None
            headers = {k.lower(): v for k, v in (response.headers or {}).items()}
            body = response.content or b""
            if status in (200, 429):
                response.success()  # refusals are this scenario's subject, not its failures
        sample: dict[str, Any] = {
            "t": wall, "t_end": wall + time.monotonic() - t, "pid": os.getpid(),
            "tier": self.tier, "phase": phase, "status": status,
            "latency_ms": (time.monotonic() - t) * 1000, "waited_s": waited,
            **ratelimits.budget_headers(self.ctx.family, headers, s.plan.rate_headers)}
        if status is None:
            sample["error"] = s.redactor.text(str(getattr(response, "error", "no response")))
        if status == 429:
            exchange = Exchange(self.path, "POST", json.loads(self.body), 429, headers, body)
            sample["problems"] = [f"{f.check_id}: {f.observed}" for f in
                                  run_checks(self.ctx, exchange, select(ENVELOPE_CHECKS))]
            seconds = _seconds(headers.get("retry-after"))
            if seconds is not None:
                retry_at.append(time.monotonic() + seconds)
        s.record(sample)


# -- Midjourney tasks -----------------------------------------------------------------------
IMAGINE = QUERY.rsplit("/", 1)[0] + "/imagine"
TASK_BODY = {"model": "midjourney", "prompt": "a lighthouse at dusk --ar 1:1"}


class TaskUser(FastHttpUser):
    """Creates an imagine task, polls it to SUCCESS or FAILURE (or its deadline), then the
    next: time to SUCCESS under concurrency, every snapshot judged by the lifecycle grammar
    (``gateprobe.protocols.midjourney.TaskGrammar``, what the ``task.lifecycle`` check runs)."""

    abstract = True
    insecure = False  # Locust's default: certificates unchecked, keys sent to anyone on path
    ssl_context_factory = staticmethod(verified_tls_context)
    max_redirects = 0

    def on_start(self) -> None:
        s = session()
        self.s = s
        self.headers = headers_for(s, QUERY, s.keys[s.plan.api_key_env])

    def run_task(self) -> None:
        """One task, recorded however it ended (a task the run's end cut is marked so)."""
        s = self.s
        wall = time.time()
        intended = s.admit()
        s.monitor.add("schedule", max(0, now_ns() - intended))
        t0 = time.monotonic()
        status, payload, error = self._post(IMAGINE, TASK_BODY)
        created = time.monotonic()
        task_id = payload.get("data") if isinstance(payload, dict) else None
        sample: dict[str, Any] = {
            "t": wall, "pid": os.getpid(), "endpoint": IMAGINE, "task_id": task_id,
            "final": None, "ok": False, "create_ms": (created - t0) * 1000,
            "time_to_success_ms": None, "end_ms": None, "polls": 0, "gave_up": None,
            "problems": [], "error_kind": None, "error": None}
        if status != 200 or not isinstance(task_id, int) or isinstance(task_id, bool):
            kind = _symptom(status) if status != 200 else "task.schema"
            sample.update(error_kind=kind, error=s.redactor.text(
                error or f"no integer task id: data {str(task_id)[:40]}"))
            s.record(sample)
            return
        sample["gave_up"] = "budget"  # until polling ends otherwise: then the run's end cut it
        try:
            self._poll(task_id, created, sample)
        finally:
            s.record(sample)

    def _poll(self, task_id: int, created: float, sample: dict[str, Any]) -> None:
        """Query until the end, the task's deadline or the run's; ``sample`` filled in."""
        s, plan = self.s, self.s.plan
        grammar, problems = TaskGrammar(), list[Problem]()
        body = {"model": TASK_BODY["model"], "taskId": task_id}
        while True:
            s.admit()  # StopUser when a cap is spent: the sample stays "budget"
            status, payload, error = self._post(QUERY, body)
            seen = time.monotonic()
            sample["polls"] += 1
            task = payload.get("data") if isinstance(payload, dict) else None
            if status != 200 or not isinstance(task, dict):
                sample.update(gave_up=None, error_kind=_symptom(status) if status != 200
                              else "task.schema", error=s.redactor.text(error or "no task"))
                break
            problems += grammar.feed(task)
            sample["final"] = task.get("status")
            if task.get("status") in TERMINAL:
                sample.update(gave_up=None, end_ms=(seen - created) * 1000)
                if task["status"] == "SUCCESS":
                    sample["time_to_success_ms"] = sample["end_ms"]
                    fire(self.environment, "time to SUCCESS", IMAGINE, sample["end_ms"])
                break
            if seen - created + plan.poll_interval_s > plan.task_deadline_s:
                sample["gave_up"] = "deadline"
                break
            gevent.sleep(plan.poll_interval_s)
            if self._state == LOCUST_STATE_STOPPING:
                return
        problems += grammar.finish(sample["gave_up"])
        sample["problems"] = list(dict.fromkeys(cid for cid, _, _ in problems))
        sample["ok"] = sample["final"] == "SUCCESS" and not problems

    def _post(self, path: str, body: Mapping[str, Any]) -> tuple[int, Any, str | None]:
        """(status, the answer's JSON or None, what went wrong or None) of one request."""
        with self.client.request("POST", path, data=json.dumps(body), headers=self.headers,
                                 catch_response=True, name=path) as response:
            status = response.status_code or 0
            try:
                payload = json.loads(response.content or b"null")
            except ValueError:
                payload = None
            if status == 200:
                response.success()
                return status, payload, None
            error = f"status {status}" if status else \
                f"{getattr(response, 'error', None) or 'no response'}"
            response.failure(self.s.redactor.text(error))
            return status, payload, error


def _symptom(status: int) -> str:
    """A failed task request's kind, as the latency scenario names them."""
    return transport.OTHER if not status else "response.rate_limited" if status == 429 \
        else "response.status"


def _seconds(text: str | None) -> float | None:
    try:
        value = float(text) if text else None
    except ValueError:
        return None
    return value if value is not None and 0 <= value < 1e6 else None


def tier_users(plan: LoadPlan, task: Callable[[TierUser], None]) -> dict[str, type[TierUser]]:
    """One user class per tier of the plan (a module-level name each, for Locust to find)."""
    classes: dict[str, type[TierUser]] = {}
    for tier in plan.limits:
        name = f"Tier_{''.join(c if c.isalnum() else '_' for c in tier)}"
        # One connection per request of the burst: none waits for another's answer.
        connections = min(plan.burst_size(tier), MAX_BURST_CONNECTIONS)
        classes[name] = type(name, (TierUser,), {"tier": tier, "abstract": False,
                                                 "tasks": [task], "concurrency": connections})
    return classes
