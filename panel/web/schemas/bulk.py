"""Bulk actions on runs: a filter (or ids) and an action, answered with what was found, done and not done."""
from typing import Annotated, Literal

from pydantic import Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from panel.runlog import search
from panel.web.schemas.base import Answer, Body, text
from panel.web.schemas.runs import RunQuery, Statuses, Text, When, window

BULK_IDS_MAX = search.PAGE_SIZE_MAX


class BulkFilter(Body):
    """The results browser's filters (as GET /api/runs takes them); none at all matches every run."""

    task: Text = None
    status: Statuses = None
    worker: Text = None
    since: When = None
    until: When = None
    q: Text = None

    @model_validator(mode="after")
    def _check_window(self):
        window(self.since, self.until)
        return self

    def to_filter(self):
        return RunQuery.model_validate(self.model_dump(exclude_none=True)).to_filter()


class BulkIn(Body):
    action: Literal["retry", "revoke", "cancel", "delete"] = Field(
        description="retry: ended runs; revoke: queued runs (and runs waiting for a retry); cancel: queued and "
                    "running runs; delete (admin): ended runs, and refused when the filter matches an open one")
    filter: BulkFilter = BulkFilter()
    ids: Annotated[list[text(64)], Field(
        max_length=BULK_IDS_MAX, description="only these runs (Celery task ids) "
                                             "of the filter's")] | SkipJsonSchema[None] = None
    dry_run: bool = False
    confirm: bool = Field(False, description="revoke: answer only once the workers have taken the revokes, naming "
                                             "them in acknowledged_by (about 0.5 s a 1,000 ids); without it the "
                                             "answer comes when the revokes are sent and the rows ended, and the "
                                             "acknowledgement follows in the audit log (api.bulk_runs.confirmed)")


class NotDone(Answer):
    celery_task_id: str
    reason: str


class BulkDone(Answer):
    status: Literal["success"]
    message: str
    action: str
    dry_run: bool
    matched: int = Field(description="runs the filter matches")
    applies: int = Field(description="of those, runs the action applies to (retry: those that can be sent again)")
    done: int = Field(description="runs it was done to (0 on a dry run)")
    new_ids: list[str] = Field(description="retry: the new runs' Celery task ids")
    acknowledged_by: list[str] | None = Field(description="revoke with confirm: the workers that took it; null "
                                                          "when the acknowledgement follows in the audit log")
    not_confirmed: list[str] = Field(description="cancel: runs whose stop was not confirmed")
    failed: list[NotDone] = Field(description="retry: runs that cannot be sent again, and why (also on a dry run)")
