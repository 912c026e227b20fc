"""The commands: conformance, load, run, gate, compare, discover; typed options in, typed
results out. Imports ``core``, ``protocols`` and ``engine``; the CLI and the facade sit above.
"""
