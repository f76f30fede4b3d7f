"""Every closed set of names in the studio: one enum each, used everywhere and CHECK-constrained in
the database (migration 0002). They are `StrEnum`s, so a member compares equal to its string and
serialises as it in JSON, the database and the API."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    admin = "admin"            # users, endpoints, everything
    researcher = "researcher"  # datasets, runs, evaluations, studies, chat
    annotator = "annotator"    # only their own annotation queue


class RunStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    interrupted = "interrupted"  # its worker went silent; `resume` continues from the last checkpoint
    paused = "paused"            # a job whose spend reached its cost cap; resumed with a raised cap (migration 0007)

    @classmethod
    def finished(cls) -> frozenset[RunStatus]:
        return frozenset({cls.succeeded, cls.failed, cls.cancelled})

    @classmethod
    def resumable(cls) -> frozenset[RunStatus]:
        """Can be queued again: a run resumes from its last checkpoint, a job is retried."""
        return frozenset({cls.interrupted, cls.failed, cls.cancelled, cls.paused})

    @classmethod
    def stops_at_once(cls) -> frozenset[RunStatus]:
        """A cancel ends these at once (no attempt is working on them)."""
        return frozenset({cls.queued, cls.interrupted, cls.paused})

    @classmethod
    def cancellable(cls) -> frozenset[RunStatus]:
        """A run in these can be cancelled: at once, or (running) after its current step. A job has no
        steps, so only stops_at_once() applies to it."""
        return cls.stops_at_once() | {cls.running}


# Jobs go through the same claim/heartbeat life as runs.
JobStatus = RunStatus


class JobKind(StrEnum):
    """What a queued row asks a worker to do (a task of app/queue.py each)."""
    train = "train"        # a training run: a row of `runs`, not of `jobs` (gpu queue)
    collect = "collect"    # teacher responses for a dataset (io queue)
    evaluate = "evaluate"  # LLM-judge evaluation (gpu queue: it may generate)
    study = "study"        # both models of a human-evaluation study answer its prompts (gpu queue)
    upload = "upload"      # an uploaded file parsed and imported as a dataset (io queue; migration 0008)

    @classmethod
    def of_jobs(cls) -> tuple[JobKind, ...]:
        """The kinds stored in the `jobs` table (its CHECK constraint); training runs have their own."""
        return tuple(k for k in cls if k is not cls.train)


class StudyStatus(StrEnum):
    draft = "draft"        # items are being generated
    review = "review"      # items generated; responses that leak their model wait for the creator
    open = "open"          # annotators vote
    closed = "closed"


class VoteChoice(StrEnum):
    """What a vote says after undoing the left/right shuffle."""
    a = "a"
    b = "b"
    tie = "tie"
    skip = "skip"  # seen and passed over: not counted in results, not offered again


class Side(StrEnum):
    """What an annotator clicks: sides only, never model names."""
    left = "left"
    right = "right"
    tie = "tie"
    both_bad = "both_bad"  # counted as a tie, flagged
    skip = "skip"


class Queue(StrEnum):
    gpu = "gpu"  # training, generation for studies and evaluation
    io = "io"    # API calls only (teacher collection)
