"""The one rule of a run's ending: the first ending stays.

A run is open while it is pending (queued, or waiting for a retry) or running. The first ending to reach an open
run is its ending: a failure, retry, revoke or rejection reported later, and any of the panel's own endings (a
cancel, a stop, a purge, a lost worker) that comes second, changes nothing, so two paths racing leave one true
outcome with its own reason. Only the worker's own proof that it ran moves an ended run again: a start later than
the ending (a real second execution) or a success. Every writer of a run's state asks here: the panel's endings
(outcomes.py), the embedded worker's recorder (statements.py) and the task-event recorder (from_events.py).
"""
from sqlalchemy import or_

from models import PENDING, RUNNING

OPEN = (PENDING, RUNNING)
MOVE_AN_ENDED_RUN = frozenset({"started", "succeeded"})  # changes that are the worker's proof that it ran


def is_open(status):
    return status in OPEN


def moves(status, change, later=True):
    """May `change` (started, succeeded, failed, retrying, revoked, ended, ...) move a run now in `status`?

    `later`: the change happened after the run's recorded ending (a start from before it is an old report).
    """
    return is_open(status) or (change in MOVE_AN_ENDED_RUN and later)


def open_clause(status_column):
    """SQL for "the run is still open": two comparisons, not IN, since an expanding IN cannot be prepared once."""
    return or_(status_column == PENDING, status_column == RUNNING)


def guard(statement, change, status_column):
    """An UPDATE with the rule applied: a change that may not move an ended run touches open runs only."""
    return statement if change in MOVE_AN_ENDED_RUN else statement.where(open_clause(status_column))
