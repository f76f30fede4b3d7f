"""What a job will cost before it runs (projection), and the per-job spending cap while it runs.

Projection: the number of requests, prompt and completion tokens and dollars a collection,
evaluation or study generation would send to its paid endpoint. `project` is pure: it takes the
requests, the endpoint and the cached records and does arithmetic; `project_collect`,
`project_evaluation` and `project_study` gather those from the database.

    prompt tokens      estimated as characters / 4 + 8 per request (gad's own estimate for rate limits);
    completion tokens  an upper bound: the endpoint's max_tokens (512 when it sets none, the same
                       assumption gad's token-rate limiter makes);
    cached answers     cost nothing: they are never asked again.

Prices are the endpoint's (USD per million tokens: its price fields, else gad's KNOWN_PRICES).

Cap: a job's `max_cost_usd`. Before each request is sent, the job's store asks `CostCap.check`;
once the spend has reached the cap it raises `CostCapReached`, the job stops sending, the requests
already in flight land (and are paid and recorded), and the job is `paused` until its cap is raised.
A cap given the projected bound of one request (`next_cost`, from `request_bound`; the study judge's)
pauses earlier: as soon as that request could take the spend past the cap.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import InvalidInput
from gad.llm.api_client import Endpoint, EndpointError, _estimate_tokens
from gad.llm.cache import cache_key, is_answer
from gad.llm.eval_config import default as eval_default

DEFAULT_COMPLETION_BOUND = 512  # completion tokens assumed per request when the endpoint sets no max_tokens


def project(requests: list[list[dict]], endpoint: Endpoint, cached: dict[str, dict] | None = None, *,
            retry_final: bool = False) -> dict:
    """The projected requests, tokens and cost of asking `endpoint` every message list in `requests`.

    `cached`: cache key -> stored record (an answer there costs nothing); duplicates are asked once,
    as ChatRunner does."""
    cached = cached or {}
    seen: set[str] = set()
    n_cached = n_ask = prompt_tokens = 0
    for messages in requests:
        full = _with_system(endpoint, messages)
        key = cache_key(endpoint, full)
        if key in seen or is_answer(cached.get(key), retry_final):
            n_cached += 1
            seen.add(key)
            continue
        seen.add(key)
        n_ask += 1
        prompt_tokens += _estimate_tokens(full)
    return priced(endpoint, requests=n_ask, cached=n_cached, prompt_tokens=prompt_tokens)


def priced(endpoint: Endpoint, *, requests: int, cached: int, prompt_tokens: int) -> dict:
    """A projection's figures at the endpoint's prices, completion tokens at their upper bound."""
    p_price, c_price = endpoint.prices()
    bound = endpoint.max_tokens or DEFAULT_COMPLETION_BOUND
    completion_tokens = requests * bound
    return {"requests": requests, "cached": cached, "prompt_tokens": prompt_tokens,
            "completion_tokens_max": completion_tokens, "price_prompt": p_price, "price_completion": c_price,
            "cost_prompt_usd": prompt_tokens * p_price / 1e6,
            "cost_max_usd": (prompt_tokens * p_price + completion_tokens * c_price) / 1e6,
            "priced": bool(p_price or c_price),
            "assumptions": ["prompt tokens estimated as characters/4 + 8 per request",
                            f"completion tokens at most {bound} per request ("
                            + ("the endpoint's max_tokens)" if endpoint.max_tokens
                               else "the endpoint sets no max_tokens; assumed)"),
                            "cached answers cost nothing"]}


def request_bound(endpoint: Endpoint, requests: list[list[dict]]) -> float:
    """The most any one of `requests` can cost by the projection: its estimated prompt tokens and the
    completion bound, at the endpoint's prices (0 for an unpriced endpoint)."""
    if not requests:
        return 0.0
    tokens = max(_estimate_tokens(_with_system(endpoint, m)) for m in requests)
    return priced(endpoint, requests=1, cached=0, prompt_tokens=tokens)["cost_max_usd"]


def combine(*parts: dict) -> dict:
    """Projections of several request batches to one endpoint, added up."""
    out = dict(parts[0])
    for p in parts[1:]:
        for k in ("requests", "cached", "prompt_tokens", "completion_tokens_max", "cost_prompt_usd", "cost_max_usd"):
            out[k] += p[k]
    out["assumptions"] = list(dict.fromkeys(a for p in parts for a in p["assumptions"]))
    return out


def _with_system(endpoint: Endpoint, messages: list[dict]) -> list[dict]:
    """The messages as ChatRunner sends them (its endpoint's system prompt first), so keys match the cache."""
    if endpoint.system_prompt and not (messages and messages[0].get("role") == "system"):
        return [{"role": "system", "content": endpoint.system_prompt}] + list(messages)
    return list(messages)


def _cached_records(session: Session, endpoint: Endpoint, requests: list[list[dict]]) -> dict[str, dict]:
    from app.db.models import TeacherResponse

    keys = [cache_key(endpoint, _with_system(endpoint, m)) for m in requests]
    out: dict[str, dict] = {}
    for i in range(0, len(keys), 500):  # bounded IN lists
        for key, record in session.execute(select(TeacherResponse.cache_key, TeacherResponse.record)
                                           .where(TeacherResponse.cache_key.in_(keys[i:i + 500]))):
            out[key] = record
    return out


def project_collect(session: Session, settings, *, dataset_id: int, endpoint_id: int,
                    retry_failed: bool = False) -> dict:
    """What collecting a dataset's teacher responses from an endpoint would send and cost."""
    from app.services.datasets import dataset_examples, get_dataset
    from app.services.endpoints import get_endpoint, to_gad

    get_dataset(session, dataset_id)
    endpoint = to_gad(get_endpoint(session, endpoint_id), settings)
    requests = [ex.messages for ex in dataset_examples(session, dataset_id)]
    return {"kind": "collect", **project(requests, endpoint, _cached_records(session, endpoint, requests),
                                         retry_final=retry_failed)}


def project_evaluation(session: Session, settings, *, n_models: int, sets: list[str], judge_endpoint_id: int,
                       limit: int | None = None, max_new_tokens: int = eval_default("max_new_tokens"),
                       both_orders: bool = False) -> dict:
    """What an evaluation would send its judge: one reference answer per prompt (looked up in the
    cache), then one verdict per model, prompt and order. A verdict's prompt holds answers not
    written yet, so it is counted as uncached, with the reference and the model's answer at their
    token bounds."""
    from app.services.datasets import dataset_examples
    from app.services.endpoints import get_endpoint, to_gad
    from gad.llm.evaluate import load_set
    from gad.llm.judge import judge_messages

    judge = to_gad(get_endpoint(session, judge_endpoint_id), settings)
    prompts: list[list[dict]] = []
    for name in sets:
        if name.startswith("dataset:"):
            prompts += [ex.messages for ex in dataset_examples(session, int(name[8:]), "test")][:limit]
        else:
            prompts += [ex.messages for ex in load_set(name, limit)[1]]
    refs = project(prompts, judge, _cached_records(session, judge, prompts))
    answers = (judge.max_tokens or DEFAULT_COMPLETION_BOUND) + max_new_tokens
    copies = n_models * (2 if both_orders else 1)
    template = sum(_estimate_tokens(_with_system(judge, judge_messages(_question(m), "", ""))) for m in prompts)
    verdicts = priced(judge, requests=len(prompts) * copies, cached=0,
                      prompt_tokens=copies * (template + len(prompts) * answers))
    verdicts["assumptions"].append(f"each verdict reads a reference and a model answer at their bounds "
                                   f"({answers} tokens) and is not cached yet")
    return {"kind": "evaluate", **combine(refs, verdicts)}


def _question(messages: list[dict]) -> str:
    return next((str(m.get("content", "")) for m in reversed(messages) if m.get("role") == "user"), "")


def project_study(session: Session | None = None, settings=None, *, judge_endpoint_id: int | None = None,
                  n_items: int = 50, max_new_tokens: int = 256) -> dict:
    """Both models answer locally (endpoints are refused), so a study costs nothing unless it has a judge
    (active annotation, app.services.study_judge): then one verdict per item in each order, with both answers
    at their token bound, none cached yet (the answers are not written)."""
    if judge_endpoint_id is None:
        return {"kind": "study", "requests": 0, "cached": 0, "prompt_tokens": 0, "completion_tokens_max": 0,
                "price_prompt": 0.0, "price_completion": 0.0, "cost_prompt_usd": 0.0, "cost_max_usd": 0.0,
                "priced": False, "assumptions": ["both models generate locally: no paid endpoint is called"]}
    from app.services.endpoints import get_endpoint, to_gad
    from gad.llm.judge import judge_messages

    judge = to_gad(get_endpoint(session, judge_endpoint_id), settings)
    template = _estimate_tokens(_with_system(judge, judge_messages("", "", "")))
    verdicts = priced(judge, requests=2 * n_items, cached=0,
                      prompt_tokens=2 * n_items * (template + 2 * max_new_tokens))
    verdicts["assumptions"] += ["both models generate locally (free); the judge rates each item in both orders",
                                f"each verdict reads the prompt and both answers at their bound ({max_new_tokens} "
                                f"tokens each); prompts are not counted"]
    return {"kind": "study", **verdicts}


def checked_cap(max_cost_usd: float | None) -> float | None:
    """A job's cap as given: a positive number of dollars, or None for no cap."""
    if max_cost_usd is not None and not max_cost_usd > 0:
        raise InvalidInput("max_cost_usd must be a positive number of dollars (or none for no cap)",
                           field="max_cost_usd")
    return max_cost_usd


class CostCapReached(EndpointError):
    """The job's spend reached its cap (or its next request could pass it). An EndpointError on purpose:
    ChatRunner stops on one the clean way (no new request is sent, requests in flight land and are
    recorded, then it raises)."""

    def __init__(self, spent: float, cap: float, next_cost: float = 0.0, what: str = "request"):
        self.spent, self.cap, self.next_cost = spent, cap, next_cost
        passing = (f"; the next {what} could cost up to ${next_cost:.6f} and would pass it"
                   if spent < cap else "")
        super().__init__(f"paused: spent ${spent:.6f} of the ${cap:.6f} cap{passing}; raise the cap to resume")


class CostCap:
    """The cap a job's response store checks before each request is sent. `spent()`: the job's exact
    spend so far (earlier attempts included). `next_cost`: the projected bound of one request; 0 pauses
    only once the spend has reached the cap. Requests already in flight are not counted (with an
    endpoint's concurrency above 1 they land after the check, as for every cap)."""

    def __init__(self, cap: float, spent: Callable[[], float], next_cost: float = 0.0, what: str = "request"):
        self.cap, self.spent, self.next_cost, self.what = cap, spent, next_cost, what

    def check(self) -> None:
        spent = self.spent()
        if spent >= self.cap or spent + self.next_cost > self.cap:
            raise CostCapReached(spent, self.cap, self.next_cost, self.what)
