"""Maintenance windows: named cron openings in a time zone that clusters and workflows require
for disruptive work (``cron``: the math; ``check``: what a run requires and whether it may
disrupt now; ``resumes``: rolls stopped at a window's end, resumed at its next opening)."""
