"""The seeds' gateway's Azure OpenAI route (``/azure/v1/chat/completions``, seeds-extra §3.4):
a family added through the registry alone (``families.EndpointFamily.alias_of``), its spec
entry and these tests. Its cases are chat's sent to the copy; the reference serves it with
chat's handler, and chat's faults trip it as they trip chat.
"""

from __future__ import annotations

from dataclasses import replace

from gateprobe.core.families import FAMILIES, PATHS, canonical
from gateprobe.core.targets import Target
from gateprobe.engine.cases import alias_cases, all_cases
from gateprobe.engine.embedded import EMBEDDED_ENDPOINTS, reference_endpoints
from gateprobe.engine.smoke import run_smoke
from gateprobe.reference import RunningGateway
from gateway_fixtures import MakeGateway

AZURE = PATHS["azure_chat"]


def target_for(base_url: str, endpoints: frozenset[str] = EMBEDDED_ENDPOINTS) -> Target:
    return Target(base_url, "ohmygpt", "gp-vip-0001", no_permission_key="gp-nomodel-0001",
                  auth_styles=frozenset({"bearer"}), endpoints=endpoints)


def test_the_family_is_an_opt_in_copy_of_chat() -> None:
    azure = FAMILIES["azure_chat"]
    assert azure.opt_in and azure.alias_of == "chat" and azure.wire == "openai"
    assert canonical(AZURE) == PATHS["chat"] and canonical(PATHS["chat"]) == PATHS["chat"]
    assert "azure_chat" in reference_endpoints("ohmygpt")
    assert "azure_chat" not in reference_endpoints("openai")  # the seeds' gateway's own


def test_its_cases_are_chats_sent_to_the_copy_only_when_declared() -> None:
    declared = target_for("http://127.0.0.1:1")
    cases = alias_cases(declared)
    assert cases and {c.path for c in cases} == {AZURE}
    assert {c.category for c in cases} == {"endpoint", "stream"}
    assert any(c.body and c.body.get("stream") for c in cases)
    assert {c.id for c in cases} <= {c.id for c in all_cases(declared)}
    undeclared = target_for("http://127.0.0.1:1", EMBEDDED_ENDPOINTS - {"azure_chat"})
    assert alias_cases(undeclared) == []
    assert not any(c.path == AZURE for c in all_cases(undeclared))


def test_the_reference_serves_it_and_every_case_passes(gateway: RunningGateway) -> None:
    results = run_smoke(target_for(gateway.base_url), alias_cases(target_for(gateway.base_url)))
    assert results and all(r.status == 200 for r in results), \
        [(r.case.name, r.status) for r in results]
    assert [f for r in results for f in r.findings] == []


def test_a_chat_fault_is_found_on_the_copy(make_gateway: MakeGateway) -> None:
    """The proof that its cases can fail: chat's answers without their model field."""
    gateway = make_gateway(faults=frozenset({"response-missing-model"}))
    target = target_for(gateway.base_url)
    plain = [c for c in alias_cases(target) if not (c.body or {}).get("stream")]
    results = run_smoke(target, plain)
    found = {(f.check_id, f.endpoint) for r in results for f in r.findings}
    assert ("response.schema", AZURE) in found, found


def test_a_target_not_declaring_it_is_not_asked() -> None:
    target = replace(target_for("http://127.0.0.1:1"), endpoints=frozenset({"chat"}))
    assert not target.serves(AZURE)
    assert target_for("http://127.0.0.1:1").serves(AZURE)
