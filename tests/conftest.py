"""Fixture modules are loaded as plugins, not piled into one conftest."""

from __future__ import annotations

pytest_plugins = ["gateway_fixtures"]
