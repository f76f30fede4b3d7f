"""Concurrency against one web server: 50 annotators each sending every vote 3 times at once, and
60 concurrent /v1 chat requests to one local model, at the same time, while /health is probed.

The server runs in its own process (`gad-studio serve --no-ui`, one uvicorn process) so its RSS is
its own. Reported: status codes per route (500s must be 0), /health p50/p95 idle and under load
(and their ratio: machines here are shared and noisy, compare ratios), the server's RSS at rest and
its peak (VmHWM), and the most counted votes any item got against the study's quota.

    python bench/web_concurrency.py [--db sqlite|postgresql] [--annotators 50] [--chats 60]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import start_server, throwaway_database  # noqa: E402


def seed(env: dict, annotators: int, items: int, quota: int) -> tuple[int, str, list[str]]:
    """An open study, a researcher token and one token per annotator."""
    from app.context import make_context
    from app.db.models import Study, StudyItem
    from app.db.session import session_scope
    from app.services import users as user_service
    from app.settings import Settings

    ctx = make_context(Settings(GAD_DATA_DIR=env["GAD_DATA_DIR"], DATABASE_URL=env["DATABASE_URL"]))
    with session_scope(ctx.sessions) as s:
        study = Study(name="bench", model_a='{"label": "a"}', model_b='{"label": "b"}', status="open",
                      annotators_per_item=quota)
        if hasattr(Study, "blind_secret"):  # absent before migration 0004: lets the script measure the old code
            study.blind_secret = os.urandom(32).hex()
        s.add(study)
        s.flush()
        s.add_all(StudyItem(study_id=study.id, position=i, prompt=f"p{i}", response_a="x", response_b="y",
                            a_on_left=bool(i % 2)) for i in range(items))
        researcher = user_service.create_user(s, "researcher", "researcher")
        token = user_service.create_token(s, researcher)[1]
        tokens = [user_service.create_token(s, user_service.create_user(s, f"ann{i:02d}", "annotator"))[1]
                  for i in range(annotators)]
        study_id = study.id
    ctx.close()
    return study_id, token, tokens


def rss_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            fields[line.split(":")[0]] = int(line.split()[1])
    return fields


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return round(1000 * values[int(q * (len(values) - 1))], 1) if values else float("nan")


def annotator(base: str, token: str, study_id: int, codes: Counter, lock: threading.Lock) -> None:
    import httpx

    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=120) as c, \
            ThreadPoolExecutor(3) as pool:
        for _ in range(500):  # bounded
            r = c.get(f"/api/annotate/{study_id}/next")
            with lock:
                codes[("next", r.status_code)] += 1
            if r.status_code != 200:
                return
            item = r.json()["item_id"]
            votes = [pool.submit(c.post, f"/api/annotate/{study_id}/votes", json={"item_id": item, "side": "left"})
                     for _ in range(3)]
            for f in votes:
                with lock:
                    codes[("vote", f.result().status_code)] += 1


def chat(base: str, token: str, model: str, codes: Counter, lock: threading.Lock) -> None:
    import httpx

    body = {"model": model, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 64, "temperature": 0}
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=180) as c:
        code = c.post("/v1/chat/completions", json=body).status_code
    with lock:
        codes[("v1", code)] += 1


def probe_health(base: str, stop: threading.Event, out: list[float], codes: Counter) -> None:
    import httpx

    with httpx.Client(base_url=base, timeout=30) as c:
        while not stop.is_set():
            t = time.perf_counter()
            try:
                codes[("health", c.get("/health").status_code)] += 1
            except httpx.HTTPError:
                codes[("health", "timeout")] += 1
            out.append(time.perf_counter() - t)
            time.sleep(0.05)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--annotators", type=int, default=50)
    ap.add_argument("--items", type=int, default=20)
    ap.add_argument("--quota", type=int, default=3)
    ap.add_argument("--chats", type=int, default=60)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    from gad.toy.tiny import build_tiny_model

    tmp = Path(tempfile.mkdtemp(prefix="gad-web-conc-"))
    model = build_tiny_model(tmp / "tiny", seed=0)
    db_url, drop = throwaway_database(args.db, tmp)
    env = {**os.environ, "GAD_DATA_DIR": str(tmp / "data"), "DATABASE_URL": db_url, "OMP_NUM_THREADS": "1",
           "GAD_BASE_MODELS": str(model)}
    env.pop("CELERY_BROKER_URL", None)
    study_id, token, tokens = seed(env, args.annotators, args.items, args.quota)
    server, base = start_server(env, tmp / "server.log")
    codes, lock, stop = Counter(), threading.Lock(), threading.Event()
    try:
        import httpx

        # Load the model once, so the figures are about concurrency, not the first load.
        httpx.post(f"{base}/v1/chat/completions", headers={"Authorization": f"Bearer {token}"}, timeout=120,
                   json={"model": "base/tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
        idle: list[float] = []
        with httpx.Client(base_url=base, timeout=30) as c:  # one connection, as the prober under load uses
            for _ in range(40):
                t = time.perf_counter()
                c.get("/health")
                idle.append(time.perf_counter() - t)
                time.sleep(0.05)
        rest = rss_kib(server.pid)
        loaded: list[float] = []
        prober = threading.Thread(target=probe_health, args=(base, stop, loaded, codes), daemon=True)
        prober.start()
        started = time.perf_counter()
        with ThreadPoolExecutor(args.annotators + args.chats) as pool:
            jobs = [pool.submit(annotator, base, t, study_id, codes, lock) for t in tokens]
            jobs += [pool.submit(chat, base, token, "base/tiny", codes, lock) for _ in range(args.chats)]
            for j in jobs:
                j.result()
        wall = time.perf_counter() - started
        stop.set()
        prober.join(timeout=60)
        peak = rss_kib(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    with engine.connect() as c:
        per_item = [n for (n,) in c.execute(text(
            "SELECT count(*) FROM votes v JOIN study_items i ON i.id = v.item_id WHERE i.study_id = :s "
            "AND v.choice != 'skip' GROUP BY v.item_id"), {"s": study_id})]
        dup = c.execute(text("SELECT count(*) FROM (SELECT item_id, annotator_id FROM votes GROUP BY item_id, "
                             "annotator_id HAVING count(*) > 1) d")).scalar()
    engine.dispose()
    drop()
    by_route = {}
    for (route, code), n in sorted(codes.items(), key=str):
        by_route.setdefault(route, {})[str(code)] = n
    report = {
        "db": args.db, "annotators": args.annotators, "votes_sent_at_once": 3, "items": args.items,
        "quota": args.quota, "chats": args.chats, "wall_s": round(wall, 1), "status_codes": by_route,
        "count_500": sum(n for (_, code), n in codes.items() if isinstance(code, int) and code >= 500),
        "health_idle_p50_ms": percentile(idle, 0.5), "health_idle_p95_ms": percentile(idle, 0.95),
        "health_load_p50_ms": percentile(loaded, 0.5), "health_load_p95_ms": percentile(loaded, 0.95),
        "health_load_probes": len(loaded),
        "health_p95_ratio_load_to_idle": round(percentile(loaded, 0.95) / max(percentile(idle, 0.95), 0.1), 1),
        "rss_rest_mib": round(rest["VmRSS"] / 1024, 1), "rss_peak_mib": round(peak["VmHWM"] / 1024, 1),
        "rss_after_mib": round(peak["VmRSS"] / 1024, 1),
        "max_votes_per_item": max(per_item, default=0), "items_full": sum(1 for n in per_item if n == args.quota),
        "duplicate_vote_rows": dup,
    }
    print(json.dumps(report, indent=2))
    out = Path(args.out or REPO / "bench" / "results" / f"web_concurrency_{args.db}.json")
    out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
