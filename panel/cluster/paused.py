"""Queues paused through the panel: no worker consumes them until they are resumed (kept across worker restarts)."""
from datetime import datetime

from sqlalchemy import DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from models import db, utcnow


class PausedQueue(db.Model):
    """A queue a person paused: every worker that comes online is told to stop consuming it."""

    __tablename__ = "paused_queues"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    paused_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    paused_by: Mapped[str] = mapped_column(String(80), default="")
