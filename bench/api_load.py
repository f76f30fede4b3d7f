"""Load on the web server over loopback: 50 concurrent connections against a run's detail, its
metrics (a run of 2,400 steps x 30 metrics, downsampled to 500 points per series) and /health.

The server runs in its own process (`gad-studio serve --no-ui`, uvicorn, one process) so the load
generator does not share its interpreter. Every route gets the same bounded number of requests
(and a time cap); the report is p50/p95 latency and requests per second per route, and the ratio
of the metrics route's p95 to /health's p95 measured in the same run (machines here are shared and
noisy: compare ratios, not absolute times).

    python bench/api_load.py [--requests 600] [--concurrency 50] [--db sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from gad.training.metric_catalog import M

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import start_server  # noqa: E402

STEPS, N_METRICS = 2400, 30



def seed(data_dir: Path, db_url: str) -> tuple[int, str]:
    """A studio with one finished run of STEPS x N_METRICS metrics and a researcher token."""
    from sqlalchemy import insert

    from app.context import make_context
    from app.db.models import Run, RunMetric, RunStep
    from app.db.session import session_scope
    from app.services import users
    from app.settings import Settings

    ctx = make_context(Settings(GAD_DATA_DIR=data_dir, DATABASE_URL=db_url))
    names = [f"metric_{i:02d}" for i in range(N_METRICS - 1)] + [M.DISC_LOSS]
    with ctx.engine.begin() as conn:
        run_id = conn.execute(insert(Run).returning(Run.id), [{
            "name": "load test", "method": "gad", "output_dir": str(data_dir / "r"),
            "config": {"method": "gad", "student": "Qwen/Qwen2.5-0.5B-Instruct", "data": "prompts.jsonl",
                       "output": str(data_dir / "r")},
            "status": "succeeded", "step": STEPS, "total_steps": STEPS, "attempts": 1, "cancel_requested": False,
            "stage": "adversarial"}]).scalar_one()
        conn.execute(insert(RunStep), [{"run_id": run_id, "step": s, "stage": "warmup" if s <= 200 else "adversarial"}
                                       for s in range(1, STEPS + 1)])
        for name in names:
            conn.execute(insert(RunMetric), [{"run_id": run_id, "name": name, "step": s, "value": (s % 97) / 97}
                                             for s in range(1, STEPS + 1)])
    with session_scope(ctx.sessions) as s:
        user = users.create_user(s, "bench", "researcher", "bench-password")
        token = users.create_token(s, user, "bench")[1]
    ctx.close()
    return run_id, token


async def hammer(url: str, headers: dict, requests: int, concurrency: int, cap_s: float) -> dict:
    import httpx

    latencies: list[float] = []
    errors = 0
    todo = iter(range(requests))
    deadline = time.monotonic() + cap_s
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(headers=headers, timeout=60, limits=limits) as client:
        async def one_connection():
            nonlocal errors
            for _ in todo:
                if time.monotonic() > deadline:
                    return
                t0 = time.perf_counter()
                r = await client.get(url)
                latencies.append(time.perf_counter() - t0)
                errors += r.status_code != 200

        t0 = time.perf_counter()
        await asyncio.gather(*(one_connection() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    latencies.sort()
    return {"requests": len(latencies), "errors": errors, "rps": round(len(latencies) / wall, 1),
            "p50_ms": round(1000 * statistics.median(latencies), 2),
            "p95_ms": round(1000 * latencies[int(0.95 * (len(latencies) - 1))], 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=600, help="Requests per route (bounded).")
    ap.add_argument("--concurrency", type=int, default=50, help="Concurrent connections.")
    ap.add_argument("--cap-seconds", type=float, default=60.0, help="Time cap per route.")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "api_load.json"))
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="gad-api-load-"))
    db_url = f"sqlite:///{tmp / 'studio.db'}"
    run_id, token = seed(tmp / "data", db_url)
    env = {**os.environ, "GAD_DATA_DIR": str(tmp / "data"), "DATABASE_URL": db_url, "OMP_NUM_THREADS": "1"}
    env.pop("CELERY_BROKER_URL", None)
    server, base = start_server(env)
    try:
        import httpx

        headers = {"Authorization": f"Bearer {token}"}
        routes = {"health": "/health", "run_detail": f"/api/runs/{run_id}",
                  "metrics": f"/api/runs/{run_id}/metrics?max_points=500"}
        points = httpx.get(base + routes["metrics"], headers=headers, timeout=60).json()
        n_points = sum(len(v["step"]) for v in points["series"].values())
        results = {}
        for name, path in routes.items():  # a warm-up pass, then the measured one
            asyncio.run(hammer(base + path, headers, min(100, args.requests), args.concurrency, args.cap_seconds))
            results[name] = asyncio.run(hammer(base + path, headers, args.requests, args.concurrency, args.cap_seconds))
    finally:
        server.terminate()
        server.wait(timeout=30)
    report = {"concurrency": args.concurrency, "run": f"{STEPS} steps x {N_METRICS} metrics",
              "metrics_points_returned": n_points, "routes": results,
              "ratio_metrics_p95_to_health_p95": round(results["metrics"]["p95_ms"] / results["health"]["p95_ms"], 2),
              "ratio_run_detail_p95_to_health_p95": round(results["run_detail"]["p95_ms"]
                                                          / results["health"]["p95_ms"], 2)}
    print(f"{'route':12s} {'requests':>8s} {'errors':>6s} {'req/s':>8s} {'p50 ms':>8s} {'p95 ms':>8s}")
    for name, r in results.items():
        print(f"{name:12s} {r['requests']:8d} {r['errors']:6d} {r['rps']:8.1f} {r['p50_ms']:8.1f} {r['p95_ms']:8.1f}")
    print(f"metrics p95 / health p95 = {report['ratio_metrics_p95_to_health_p95']}  "
          f"(metrics returns {n_points} points: 30 series x <=500)")
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
