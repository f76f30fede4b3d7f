"""The studio's error hierarchy: services raise these; each entry point maps them in one place.

    NotFound      404  exit 3   the id names nothing (or nothing this user may see)
    Conflict      409  exit 4   the request does not fit the current state (cancel a finished run)
    Forbidden     403  exit 5   the user's role does not allow it
    InvalidInput  422  exit 2   the input is wrong; the message says what and where
    Upstream      502  exit 6   an endpoint the studio relays to failed
    BrokerUnavailable 503 exit 7 saved, but the job queue did not answer (re-sent later)

gad's ConfigError and DataError are invalid input too (`as_studio_error` converts them), so a bad
YAML key or a broken line of an upload reads the same in the API, the UI and the CLI.
"""

from __future__ import annotations


class StudioError(Exception):
    http_status = 400
    exit_code = 1
    title = "error"

    def __init__(self, message: str, *, field: str | None = None, where: str | None = None):
        super().__init__(message)
        self.message, self.field, self.where = message, field, where

    def as_dict(self) -> dict:
        out = {"error": self.title, "message": self.message}
        if self.field:
            out["field"] = self.field
        if self.where:
            out["where"] = self.where
        return out


class NotFound(StudioError):
    http_status, exit_code, title = 404, 3, "not_found"


class Conflict(StudioError):
    http_status, exit_code, title = 409, 4, "conflict"


class Forbidden(StudioError):
    http_status, exit_code, title = 403, 5, "forbidden"


class Unauthenticated(StudioError):
    http_status, exit_code, title = 401, 5, "unauthenticated"


class InvalidInput(StudioError):
    http_status, exit_code, title = 422, 2, "invalid_input"


class TooLarge(InvalidInput):
    http_status, title = 413, "too_large"


class BrokerUnavailable(StudioError):
    """The row is saved; the broker did not take the message (it is re-sent later)."""
    http_status, exit_code, title = 503, 7, "queue_unavailable"


class Upstream(StudioError):
    """A teacher/judge endpoint the studio relays to failed (its message never carries a key)."""
    http_status, exit_code, title = 502, 6, "upstream_error"


def as_studio_error(err: BaseException) -> StudioError | None:
    """gad's own input errors, seen as the studio's; anything else is not a user error (None)."""
    from gad.data.examples import DataError, DataTooLarge
    from gad.llm.api_client import EndpointError
    from gad.training.config import ConfigError

    if isinstance(err, StudioError):
        return err
    if isinstance(err, DataTooLarge):  # past a size or record limit: 413, the message names it
        return TooLarge(str(err), field="file", where=err.where)
    if isinstance(err, (ConfigError, DataError)):
        return InvalidInput(str(err), field=getattr(err, "field", None), where=getattr(err, "where", None))
    if isinstance(err, EndpointError):  # no key on this server, key rejected, endpoint unreachable
        return Upstream(str(err))
    return None


def from_dict(data: dict) -> StudioError:
    """An error a job stored (`as_dict()`; the job's result), as the studio error it was: a request that
    waited for the job answers exactly as if it had done the work itself."""
    kinds = {cls.title: cls for cls in (NotFound, Conflict, Forbidden, InvalidInput, TooLarge, Upstream)}
    cls = kinds.get(data.get("error", ""), StudioError)
    return cls(str(data.get("message", "the job failed")), field=data.get("field"), where=data.get("where"))
