"""The base layer: wire knowledge and findings, importing nothing of gateprobe above it.

Targets and their resolution, the one SSE parser, the metric definitions, redaction, findings
and typed run events, the specs and goldens, the check registry. Every other layer builds on
these; they import only each other (ARCHITECTURE.md, enforced by tests/test_architecture.py).
"""
