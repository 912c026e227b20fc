"""Load runs: plans, verdicts and the command that drives Locust (``runner.run_load``).

Everything here but ``locustlib`` is plain Python the pytest process may import; ``locustlib``
and the locustfiles in ``load/`` import Locust, which monkey-patches the process with gevent,
so they only ever run in the Locust subprocess that ``runner`` starts. The public load API for
a locustfile of your own is ``gateprobe.load``.
"""
