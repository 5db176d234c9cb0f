"""Schedules: stored execute requests that knm starts as their owner at cron times (in a time
zone) or at intervals, each fire time exactly once across every knm process.

- ``cron``: fire times (cronsim; daylight saving time as Debian cron handles it).
- ``store``: the ``schedules`` and ``schedule_runs`` tables.
- ``stored``: the stored request, checked as its execute route checks it.
- ``firing``: the loop every task-running process runs, and the one place a fire that
  started no task is recorded (``firing.fire_not_started``).
- ``routes``: ``/api/v1/schedules``.
"""
