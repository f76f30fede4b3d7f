"""Every table of the studio, in one place. Alembic migrations are generated from this metadata.

Runs, their per-step metrics (long format: one row per (run, metric, step), the primary key is
the chart query's index), samples and checkpoints; datasets and prompts; endpoints (API keys
encrypted or referenced by environment variable name, never returned); the teacher-response
cache and cost ledger; evaluations and judge scores; human-evaluation studies, items (with the
randomised left/right order) and votes (one per annotator per item, enforced by a unique key).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from app.enums import JobKind, Role, RunStatus, StudyStatus, VoteChoice

NAMING = {"ix": "ix_%(column_0_label)s", "uq": "uq_%(table_name)s_%(column_0_name)s",
          "ck": "ck_%(table_name)s_%(constraint_name)s",
          "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s", "pk": "pk_%(table_name)s"}



def one_of(column: str, enum) -> CheckConstraint:
    """A CHECK constraint that keeps `column` inside one of app.enums' sets."""
    values = ", ".join(f"'{m.value}'" for m in enum)
    return CheckConstraint(f"{column} IN ({values})", name=f"{column}_valid")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """A timestamp that always comes back timezone-aware (UTC). SQLite stores no offset, so without
    this the API would send '2026-01-01T10:00:00' there and '...+00:00' on PostgreSQL."""
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value, dialect):
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class StudioMeta(Base):
    """Key/value facts about this database; `studio_id` tells queue messages and data folders apart."""
    __tablename__ = "studio_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(500))


class User(Base):
    __tablename__ = "users"
    __table_args__ = (one_of("role", Role),)
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    role: Mapped[str] = mapped_column(String(16), default=Role.researcher)
    password_hash: Mapped[str | None] = mapped_column(String(200))  # argon2; None: cannot log in
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)   # consecutive; slows the next try
    last_failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    session_epoch: Mapped[int] = mapped_column(Integer, default=0)    # bumped: every session cookie dies
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiToken(Base):
    """A bearer token for scripts. Only its SHA-256 is stored; the token is shown once."""
    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(120), default="token")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))                  # shown in lists to tell tokens apart
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Preset(Base):
    """A user's saved run settings (the New run page offers them beside the built-in presets)."""
    __tablename__ = "presets"
    __table_args__ = (UniqueConstraint("user_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(120))
    config: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Dataset(Base):
    __tablename__ = "datasets"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    source: Mapped[str | None] = mapped_column(String(500))        # original file name
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    n_prompts: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    prompts: Mapped[list[Prompt]] = relationship(back_populates="dataset", cascade="all, delete-orphan")


class Prompt(Base):
    __tablename__ = "prompts"
    __table_args__ = (UniqueConstraint("dataset_id", "idx"), Index("ix_prompts_dataset_split", "dataset_id", "split"))
    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    idx: Mapped[int] = mapped_column(Integer)
    external_id: Mapped[str] = mapped_column(String(200))
    messages: Mapped[list] = mapped_column(JSON)
    teacher_response: Mapped[str | None] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    split: Mapped[str] = mapped_column(String(8), default="train")
    dataset: Mapped[Dataset] = relationship(back_populates="prompts")


class Endpoint(Base):
    """A teacher or judge endpoint. The key is Fernet-encrypted, or only an env-var name is kept."""
    __tablename__ = "endpoints"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    base_url: Mapped[str] = mapped_column(String(500))
    model: Mapped[str] = mapped_column(String(200))
    key_env_var: Mapped[str | None] = mapped_column(String(120))
    key_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    params: Mapped[dict] = mapped_column(JSON, default=dict)      # sampling, limits, prices
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def __repr__(self) -> str:  # never print the key material
        return f"Endpoint(id={self.id}, name={self.name!r}, model={self.model!r})"


class TeacherResponse(Base):
    """The cache and cost ledger behind teacher collection and judging (gad's ResponseStore)."""
    __tablename__ = "teacher_responses"
    id: Mapped[int] = mapped_column(primary_key=True)
    cache_key: Mapped[str] = mapped_column(String(64), unique=True)
    endpoint_id: Mapped[int | None] = mapped_column(ForeignKey("endpoints.id"))
    status: Mapped[str] = mapped_column(String(16))
    response: Mapped[str | None] = mapped_column(Text)
    record: Mapped[dict] = mapped_column(JSON)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_status_heartbeat", "status", "heartbeat_at"), one_of("status", RunStatus))
    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str | None] = mapped_column(String(16), unique=True)  # names the run folder: unique beyond this db
    name: Mapped[str] = mapped_column(String(200))
    method: Mapped[str] = mapped_column(String(16))
    config: Mapped[dict] = mapped_column(JSON)                       # validated gad RunConfig
    status: Mapped[str] = mapped_column(String(16), default=RunStatus.queued)
    stage: Mapped[str | None] = mapped_column(String(32))
    step: Mapped[int] = mapped_column(Integer, default=0)
    total_steps: Mapped[int | None] = mapped_column(Integer)
    eta_seconds: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"))
    parent_step: Mapped[int | None] = mapped_column(Integer)         # fork point
    output_dir: Mapped[str] = mapped_column(String(500))
    worker: Mapped[str | None] = mapped_column(String(200))          # host:pid holding the run
    claim: Mapped[str | None] = mapped_column(String(64))            # the attempt that holds it
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)    # handed to the broker (NULL: not yet)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    checkpoints: Mapped[list[Checkpoint]] = relationship(order_by="Checkpoint.step", cascade="all, delete-orphan")


class RunStep(Base):
    __tablename__ = "run_steps"
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    stage: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RunMetric(Base):
    """Long format; the primary key (run_id, name, step) is exactly the chart query's index, and
    (run_id, step) serves the run page's "every metric of the last steps" (its alarms and header cards)."""
    __tablename__ = "run_metrics"
    __table_args__ = (Index("ix_run_metrics_run_step", "run_id", "step"),)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[float | None] = mapped_column(Float)


class Sample(Base):
    __tablename__ = "samples"
    __table_args__ = (Index("ix_samples_run_step", "run_id", "step"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    stage: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict] = mapped_column(JSON)


class Checkpoint(Base):
    __tablename__ = "checkpoints"
    __table_args__ = (UniqueConstraint("run_id", "step"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    stage: Mapped[str | None] = mapped_column(String(32))
    path: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Job(Base):
    """Non-training work on the queues: teacher collection, evaluation, study generation."""
    __tablename__ = "jobs"
    __table_args__ = (one_of("kind", JobKind.of_jobs()), one_of("status", RunStatus))
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    params: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=RunStatus.queued)
    done: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int | None] = mapped_column(Integer)
    cost: Mapped[float] = mapped_column(Float, default=0.0)
    stats: Mapped[dict | None] = mapped_column(JSON)                  # live: ok/failed/refused/cached, tokens, reasons
    eta_seconds: Mapped[float | None] = mapped_column(Float)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    result: Mapped[dict | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(String(200))
    claim: Mapped[str | None] = mapped_column(String(64))
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)    # handed to the broker (NULL: not yet)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Evaluation(Base):
    __tablename__ = "evaluations"
    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"))
    checkpoint_id: Mapped[int | None] = mapped_column(ForeignKey("checkpoints.id"))
    model_name: Mapped[str] = mapped_column(String(200))
    set_name: Mapped[str] = mapped_column(String(100))
    score: Mapped[float | None] = mapped_column(Float)
    ci_low: Mapped[float | None] = mapped_column(Float)
    ci_high: Mapped[float | None] = mapped_column(Float)
    length: Mapped[float | None] = mapped_column(Float)
    summary: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class JudgeScore(Base):
    __tablename__ = "judge_scores"
    id: Mapped[int] = mapped_column(primary_key=True)
    evaluation_id: Mapped[int] = mapped_column(ForeignKey("evaluations.id", ondelete="CASCADE"), index=True)
    prompt_external_id: Mapped[str] = mapped_column(String(200))
    response: Mapped[str] = mapped_column(Text)
    model_score: Mapped[float | None] = mapped_column(Float)
    reference_score: Mapped[float | None] = mapped_column(Float)
    verdicts: Mapped[dict] = mapped_column(JSON)                      # per order: raw judge text, scores


class Study(Base):
    """A blind side-by-side human evaluation of model A against model B."""
    __tablename__ = "studies"
    __table_args__ = (one_of("status", StudyStatus),)
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    model_a: Mapped[str] = mapped_column(String(500))
    model_b: Mapped[str] = mapped_column(String(500))
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id"))
    status: Mapped[str] = mapped_column(String(16), default=StudyStatus.draft)
    n_items: Mapped[int | None] = mapped_column(Integer)               # None: every test prompt
    annotators_per_item: Mapped[int] = mapped_column(Integer, default=1)
    guidelines: Mapped[str] = mapped_column(Text, default="")
    settings: Mapped[dict] = mapped_column(JSON, default=dict)          # generation settings, seed
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Seeds the left/right draw. Random per study and never returned: with a seed derived from the
    # id, an annotator could compute which side is which model.
    blind_secret: Mapped[str | None] = mapped_column(String(64))


class StudyItem(Base):
    __tablename__ = "study_items"
    __table_args__ = (UniqueConstraint("study_id", "position"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    prompt: Mapped[str] = mapped_column(Text)
    response_a: Mapped[str] = mapped_column(Text)
    response_b: Mapped[str] = mapped_column(Text)
    a_on_left: Mapped[bool] = mapped_column(Boolean)                  # the randomised order, recorded
    leaks: Mapped[list] = mapped_column(JSON, default=list)           # phrases that give a model away
    dropped: Mapped[bool] = mapped_column(Boolean, default=False)     # the creator removed it (a leak)


class Vote(Base):
    __tablename__ = "votes"
    __table_args__ = (UniqueConstraint("item_id", "annotator_id"), one_of("choice", VoteChoice))  # one per annotator
    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("study_items.id", ondelete="CASCADE"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    choice: Mapped[str] = mapped_column(String(8))                    # a | b | tie | skip
    both_bad: Mapped[bool] = mapped_column(Boolean, default=False)    # a tie the annotator flagged
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ItemLease(Base):
    """An item reserved for one annotator until `expires_at`: GET /next hands out items so that votes
    plus live leases never exceed the study's `annotators_per_item`; a vote needs the voter's lease."""
    __tablename__ = "item_leases"
    __table_args__ = (UniqueConstraint("item_id", "annotator_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("study_items.id", ondelete="CASCADE"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LoginAttempt(Base):
    """Failed-login counters by key: 'name:<user name>' (known or not, so both answer alike) and
    'addr:<client address>'. Counted in SQL before the password is checked."""
    __tablename__ = "login_attempts"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    prev_failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Conversation(Base):
    """A user's chat on the Chat page, kept so it can be listed, resumed and exported. Only its owner
    ever sees it (admins included: a conversation is private). `models` lists the chosen model ids in
    the order the page's columns show them."""
    __tablename__ = "conversations"
    __table_args__ = (Index("ix_conversations_user_updated", "user_id", "updated_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    models: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    messages: Mapped[list[ChatMessage]] = relationship(order_by="ChatMessage.position",
                                                         cascade="all, delete-orphan", passive_deletes=True)


class ChatMessage(Base):
    """One message of a conversation, in order (`position`). A user or system message has no model
    (every column shares it); an assistant message names the model that wrote it."""
    __tablename__ = "chat_messages"
    __table_args__ = (UniqueConstraint("conversation_id", "position"),
                      CheckConstraint("role IN ('system', 'user', 'assistant')", name="role_valid"))
    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
