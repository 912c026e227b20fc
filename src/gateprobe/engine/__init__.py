"""The engine layer: one bounded exchange, cases, run state, the embedded gateway, reports.

What a command is made of; imports only ``core`` and ``protocols`` (ARCHITECTURE.md,
enforced by tests/test_architecture.py).
"""
