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

    @classmethod
    def finished(cls) -> frozenset["RunStatus"]:
        return frozenset({cls.succeeded, cls.failed, cls.cancelled})

    @classmethod
    def resumable(cls) -> frozenset["RunStatus"]:
        return frozenset({cls.interrupted, cls.failed, cls.cancelled})


# Jobs go through the same claim/heartbeat life as runs.
JobStatus = RunStatus


class JobKind(StrEnum):
    collect = "collect"    # teacher responses for a dataset (io queue)
    evaluate = "evaluate"  # LLM-judge evaluation (gpu queue: it may generate)
    study = "study"        # both models of a human-evaluation study answer its prompts (gpu queue)


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
