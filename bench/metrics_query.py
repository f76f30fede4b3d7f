"""Chart-query cost on a realistic metrics table, as a ratio to a primary-key lookup in the same run.

Inserts one run of 2,400 steps x 30 metrics plus 300 other runs (default 200 steps x 30 metrics
each), then times (median of many repeats):
  - baseline: SELECT a run by primary key;
  - chart: one metric of the big run, downsampled to 500 points (what the dashboard asks for);
  - full: the same metric, all 2,400 points.

    python bench/metrics_query.py [--db sqlite|postgresql|URL] [--other-steps 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert, select, text  # noqa: E402

from app.db.migrate import upgrade  # noqa: E402
from app.db.models import Run, RunMetric  # noqa: E402
from app.db.session import make_engine, make_sessionmaker  # noqa: E402
from app.services.run_views import metric_series  # noqa: E402
from bench.common import throwaway_database  # noqa: E402
from gad.training.metric_catalog import M

METRICS = [f"metric_{i:02d}" for i in range(29)] + [M.DISC_LOSS]


def _database(kind: str) -> tuple[str, callable]:
    """A throwaway SQLite file or PostgreSQL database, or a URL given as it is (kept)."""
    if kind in ("sqlite", "postgresql"):
        return throwaway_database(kind, Path(tempfile.mkdtemp()))
    return kind, lambda: None


def _time(fn, repeats: int) -> float:
    fn()  # warm
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default="sqlite", help="sqlite, postgresql (a throwaway database) or a URL")
    ap.add_argument("--other-runs", type=int, default=300)
    ap.add_argument("--other-steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=200)
    args = ap.parse_args()

    url, cleanup = _database(args.db)
    try:
        upgrade(url)
        engine = make_engine(url)
        sessions = make_sessionmaker(engine)
        t0 = time.perf_counter()
        with engine.begin() as conn:
            ids = conn.execute(insert(Run).returning(Run.id), [
                {"name": f"run {i}", "method": "gad", "config": {}, "output_dir": "", "status": "succeeded",
                 "step": 0, "attempts": 0, "cancel_requested": False}
                for i in range(args.other_runs + 1)]).scalars().all()
        big, others = ids[0], ids[1:]
        rows = 0
        plan = [(big, 2400)] + [(r, args.other_steps) for r in others]
        for run_id, steps in plan:
            batch = [{"run_id": run_id, "name": m, "step": s, "value": (s % 97) / 97.0}
                     for s in range(1, steps + 1) for m in METRICS]
            with engine.begin() as conn:
                conn.execute(insert(RunMetric), batch)
            rows += len(batch)
        if engine.dialect.name == "postgresql":
            with engine.begin() as conn:
                conn.execute(text("ANALYZE"))
        print(f"{engine.dialect.name}: {rows:,} metric rows in {time.perf_counter() - t0:.1f}s "
              f"(1 run x 2,400 steps x 30 metrics + {args.other_runs} runs x {args.other_steps} steps x 30)")

        with sessions() as s:
            def pk():
                s.execute(select(Run.id, Run.status, Run.step).where(Run.id == others[len(others) // 2])).one()

            def chart():
                assert len(metric_series(s, big, M.DISC_LOSS, max_points=500)) <= 500

            def full():
                assert len(metric_series(s, big, M.DISC_LOSS, max_points=10_000)) == 2400

            base = _time(pk, args.repeats)
            t_chart = _time(chart, args.repeats)
            t_full = _time(full, max(20, args.repeats // 4))
        print(f"primary-key lookup (baseline):      {base * 1e3:8.3f} ms")
        print(f"chart query, 500 points downsampled: {t_chart * 1e3:8.3f} ms  ratio {t_chart / base:6.1f}x")
        print(f"full series, 2,400 points:           {t_full * 1e3:8.3f} ms  ratio {t_full / base:6.1f}x")
        engine.dispose()
    finally:
        cleanup()


if __name__ == "__main__":
    main()
