"""Load runs: plans, verdicts and the command that drives Locust.

Everything here but ``locustlib`` is plain Python the pytest process may import; ``locustlib``
and the locustfiles in ``load/`` import Locust, which monkey-patches the process with gevent,
so they only ever run in the Locust subprocess that ``runner`` starts.
"""
