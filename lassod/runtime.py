"""The daemon's run-time state shared with its HTTP handlers."""

from __future__ import annotations

from dataclasses import dataclass

from lassod.config import Settings
from lassod.metrics import Metrics

STARTING = "starting"
READY = "ready"
STOPPING = "stopping"
STOPPED = "stopped"


@dataclass
class Runtime:
    """Current settings (replaced by SIGHUP), metrics and lifecycle phase.

    phase is starting until the queue is rebuilt and the socket listens,
    ready while serving, stopping from the start of shutdown, and stopped
    once everything is closed.
    """

    settings: Settings
    metrics: Metrics
    phase: str = STARTING
