"""``--dry-run``: what a command would send, without sending anything.

Each command describes its traffic here: the endpoints, how many requests, and the most
tokens a request may ask for; a user about to point gateprobe at a paid gateway reads this
first. Nothing is sent and no key is needed (a missing key is said, not refused).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from gateprobe.core.console import Console
from gateprobe.core.targets import Target
from gateprobe.engine.fuzz_guard import Guard, examples_for, phases_for, tokens_bound

SDK_CALLS = 10
SDK_MAX_TOKENS = 16


def selected(select: str | None) -> Callable[[str], bool]:
    """Whether a category is in a ``--select`` marker expression (every one without)."""
    if not select:
        return lambda category: True
    from _pytest.mark.expression import Expression

    expression = Expression.compile(select)

    def chosen(category: str) -> bool:
        def matches(name: str, /, **kwargs: str | int | bool | None) -> bool:
            return name == category

        return expression.evaluate(matches)

    return chosen


def conformance(target: Target, select: str | None, max_tokens_cap: int,
                max_requests: int | None, max_examples: int | None,
                console: Console, max_generated_tokens: int | None = None,
                phases: tuple[str, ...] | None = None) -> int:
    """The conformance suite's requests, per endpoint; the fuzz and SDK categories' bounds."""
    from gateprobe.engine.cases import all_cases

    chosen = selected(select)
    cases = [case for case in all_cases(target) if chosen(case.category)]
    counts: Counter[str] = Counter()
    tokens: Counter[str] = Counter()
    uncapped: Counter[str] = Counter()
    for case in cases:
        key = f"{case.method} {case.path}"
        counts[key] += 1
        bound = tokens_bound(case.path, case.body, target.max_tokens)
        uncapped[key] += bound is None
        tokens[key] = max(tokens[key], bound or 0)
    guard = Guard.for_target(target, max_tokens_cap, max_requests)
    examples = examples_for(target, max_examples)
    console.line(f"dry run: gateprobe conformance against {target.base_url} "
                 f"({target.profile}); selection: {select or 'every category'}")
    console.table(["endpoint", "requests", "max tokens each"],
                  [[k, str(counts[k]), str(tokens[k] or "-") + (" (+ no cap)" if uncapped[k]
                                                                else "")]
                   for k in sorted(counts)])
    worst = sum(tokens_bound(case.path, case.body, target.max_tokens) or 0 for case in cases)
    console.line(f"cases: {len(cases)} requests (a 429 the run did not ask for is retried "
                 f"at most twice), at most {worst} generated tokens in all"
                 + _uncapped_line(sum(uncapped.values()), max_generated_tokens))
    if chosen("endpoint") and "midjourney" in target.served:
        from gateprobe.engine.tasks import describe_traffic

        console.line(describe_traffic(target))
    if chosen("endpoint"):
        from gateprobe.engine.stateful import describe_traffic as stateful_traffic

        if stateful_traffic(target):
            console.line(stateful_traffic(target))
    if chosen("stream") and "realtime" in target.served:
        console.line("realtime: 4 WebSocket sessions (one text turn and one malformed event "
                     "in the first; the other three refused at the handshake)")
    if chosen("sdk"):
        calls = SDK_CALLS + (2 if "responses" in target.served else 0)  # plain, streamed
        console.line(f"sdk: {calls} calls through the official SDKs, max_tokens "
                     f"{SDK_MAX_TOKENS} (the claude-2-web stream names none: that model "
                     "ignores it)")
    if chosen("fuzz"):
        console.line(f"fuzz: {examples} examples per operation "
                     f"(phases: {', '.join(phases_for(target, phases))}), at most "
                     f"{guard.max_requests} requests, every max_tokens-like value capped at "
                     f"{guard.max_tokens}")
    if target.management:
        _stateful(target, chosen, console)
    if target.upstream is not None and chosen("propagation"):
        from gateprobe.engine.propagation import MAX_TOKENS, REQUESTS_PER_CASE

        sent = sum(REQUESTS_PER_CASE.values()) - (target.propagation.timeout_s is None)
        console.line(f"propagation: {len(REQUESTS_PER_CASE)} cases, at most {sent} requests "
                     f"through the gateway to {target.upstream.base_url} (max_tokens "
                     f"{MAX_TOKENS}; the upstream is started there if nothing listens)")
    if max_generated_tokens is not None:
        console.line(f"the run stops sending once its requests have asked for "
                     f"{max_generated_tokens} tokens in all (--max-generated-tokens)")
    console.line("nothing was sent")
    return 0


def _uncapped_line(uncapped: int, cap: int | None) -> str:
    """What the requests that name no token cap (against a target declaring no maximum) add
    to the bound: nothing under a cap (they are not sent), else no bound at all."""
    if not uncapped:
        return ""
    if cap is not None:
        return (f"; {uncapped} more name no token cap and the target declares no max_tokens: "
                "not sent under --max-generated-tokens")
    return (f", plus {uncapped} requests that name no token cap (the target declares no "
            "max_tokens): their answers are as long as the target makes them")


def _stateful(target: Target, chosen: Callable[[str], bool], console: Console) -> None:
    """The management and billing categories: keys created, requests, worst-case spend."""
    from gateprobe.engine.billing import BURST, kinds, worst_case_tokens
    from gateprobe.engine.management import LIFECYCLE, MAX_KEYS_PER_RUN

    refusal = target.management_refusal
    if chosen("management"):
        console.line(f"management: {len(LIFECYCLE)} cases, at most {MAX_KEYS_PER_RUN} keys "
                     "created in the run (each deleted before it ends), 6 chat requests of "
                     "max_tokens 1" + (f"; refused: {refusal}" if refusal else ""))
    if chosen("billing"):
        refusal = target.spend_refusal
        spend = "no cap (loopback)" if target.is_loopback else \
            f"{target.allow_spend:g} credits (allow_spend: each billing key is created with " \
            "it as max_fee, and the run stops once it is spent)" if target.allow_spend else \
            "nothing (no allow_spend)"
        console.line(f"billing: {len(kinds(target)) + 1 + BURST + 5} requests (a burst of "
                     f"{BURST}), at most {worst_case_tokens(target)} tokens; worst-case spend: "
                     f"{spend}" + (f"; refused: {refusal}" if refusal else ""))


def load(plan: Any, describe: Callable[[Any, Console], None], console: Console,
         keys_from_env: bool = True) -> int:
    """A load plan's traffic and its caps, as its scenario ``describe``s them (and, when its
    keys come from the environment, which variables a real run would miss)."""
    console.line(f"dry run: gateprobe load {plan.scenario} against {plan.base_url} "
                 f"({plan.profile})")
    describe(plan, console)
    missing = [v for v in plan.secret_envs if not os.environ.get(v)] if keys_from_env else []
    if missing:
        console.line(f"note: {', '.join(missing)} not set: a real run would stop there")
    console.line("nothing was sent")
    return 0


def compare(mirrors: dict[str, str], cases: int, samples: int, long_request_s: float,
            max_tokens: int, console: Console, max_long_tokens: int) -> int:
    """Each mirror's probes, with the most each may ask for."""
    console.line(f"dry run: gateprobe compare, {len(mirrors)} mirrors, each sent:")
    long = f"1 request, at most {max_long_tokens} tokens" if long_request_s else \
        "none (--long-request-s 0)"
    console.table(["mirror", "base URL", "smoke", "latency sample", "long request"],
                  [[name, url, f"{cases} requests", f"{samples} streams x {max_tokens} tokens",
                    long] for name, url in mirrors.items()])
    if long_request_s:
        console.line(f"the long request is sized from the mirror's measured token rate to run "
                     f"{long_request_s * 1.5:g} s, and never asks more than {max_long_tokens} "
                     "tokens")
    console.line("nothing was sent")
    return 0


def phases(suites: Sequence[str], console: Console) -> None:
    """The heading of a run's or gate's dry run."""
    console.line(f"dry run of {len(suites)} phases: {', '.join(suites)}")
