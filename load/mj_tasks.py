"""Locust scenario: Midjourney tasks (run it with ``gateprobe load tasks``).

Each user creates an imagine task, polls ``/query`` every ``poll_interval_s`` until SUCCESS or
FAILURE or the task's deadline, records its time to SUCCESS, polls used, final status and the
lifecycle grammar's findings, then creates the next. The run's duration and request caps bound
it; a task they cut is recorded as such and judged nowhere.
"""

from __future__ import annotations

from locust import constant, task

from gateprobe.commands.load.locustlib import TaskUser, session

session()  # reads the plan; hooks the caps, the samples and the verdict into Locust


class MidjourneyUser(TaskUser):
    """One user of the tasks scenario."""

    wait_time = constant(0)

    @task
    def go(self) -> None:
        """One task from creation to its end, the next as soon as it ended."""
        self.run_task()
