"""One job model and one runner for imports and installs (in the spirit of NetBox's JobRunner).

A job is a stored row (`Job`, also an outbox row: the relay publishes its task). The runner
claims it under a row lock, runs the work, records success or failure on the row and logs;
whatever the work raises, the job ends recorded. Apps subclass `JobRunner` for their kind.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from django.db import DatabaseError, models, transaction
from django.utils import timezone

from common.errors import ApplicationError
from common.outbox import OutboxKind, OutboxRow, outbox_step

logger = logging.getLogger(__name__)

ERROR_MAX_CHARS = 1000


class JobStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Job(OutboxRow):
    """Status, outcome (code, error), who asked and when; the relay fields come with OutboxRow."""

    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    code = models.CharField(max_length=64, blank=True, default="")
    error = models.CharField(max_length=ERROR_MAX_CHARS, blank=True, default="")
    requested_by = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True


def short(reason: str, limit: int = ERROR_MAX_CHARS) -> str:
    return reason if len(reason) <= limit else reason[: limit - 1] + "…"


class JobRunner:
    """claim under lock → run → record success or failure → log.

    Subclasses set `kind` and implement `run(job)`; statuses and the recording steps can be
    changed for models whose states differ (plugins: installing → installed / failed).
    """

    kind: ClassVar[OutboxKind]
    pending_statuses: ClassVar[tuple[str, ...]] = (JobStatus.QUEUED, JobStatus.RUNNING)
    running_status: ClassVar[str] = JobStatus.RUNNING
    crash_message: ClassVar[str] = "The job failed unexpectedly."  # never the exception's text

    def claim(self, pk: Any) -> Job | None:
        with transaction.atomic():
            job = self.kind.model.objects.select_for_update().filter(pk=pk).first()
            if job is None or job.status not in self.pending_statuses:
                return None
            job.status = self.running_status
            job.started_at = timezone.now()
            job.save(update_fields=["status", "started_at"])
        return job

    def run(self, job: Any) -> None:
        raise NotImplementedError

    def succeed(self, job: Any) -> None:
        job.status, job.code, job.error = JobStatus.SUCCEEDED, "", ""
        job.finished_at = timezone.now()
        job.save()

    def fail(self, job: Any, *, code: str, message: str) -> None:
        job.status, job.code, job.error = JobStatus.FAILED, code, short(message)
        job.finished_at = timezone.now()
        job.save()

    def handle(self, pk: Any) -> Any:
        job = self.claim(pk)
        if job is None:
            return None
        label = self.kind.label
        try:
            self.run(job)
        except ApplicationError as exc:
            logger.info("%s %s failed: %s", label, pk, exc.message)
            self.fail(job, code=exc.code, message=exc.message)
        except DatabaseError:
            raise  # a lost connection: the outbox runs the job again on a fresh one
        except Exception:
            logger.exception("%s %s crashed", label, pk)
            self.fail(job, code="internal_error", message=self.crash_message)
        else:
            logger.info("%s %s succeeded", label, pk)
            self.succeed(job)
        return job

    @classmethod
    def execute(cls, *, pk: Any, attempt: int) -> None:
        """The task body: this attempt of job `pk`, if the message can claim it."""

        def body() -> None:
            cls().handle(pk)

        outbox_step(kind=cls.kind, pk=pk, attempt=attempt, body=body)
