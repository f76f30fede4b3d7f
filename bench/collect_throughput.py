"""Teacher-collection throughput against the local server, as a ratio of the ideal.

With a fixed server latency L and concurrency C, no client can exceed C / L requests per second.
We report achieved/ideal (aim: >= 0.9 at C = 64), and how many requests an identical second run
makes (must be 0: everything comes from the cache).

    python bench/collect_throughput.py [--latency 0.25 --concurrency 64 --requests 1280]
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gad.data.examples import Example  # noqa: E402
from gad.llm.api_client import Endpoint  # noqa: E402
from gad.llm.teacher import collect_api  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _count(base_url: str) -> int:
    with urllib.request.urlopen(base_url.replace("/v1", "/_control/requests")) as resp:
        return len(json.loads(resp.read()))


class ServerProcess:
    def __init__(self, latency: float):
        self.port = _free_port()
        self.cmd = [sys.executable, "-m", "app.cli", "devserver", "--port", str(self.port), "--latency", str(latency)]

    def __enter__(self) -> str:
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     cwd=Path(__file__).resolve().parents[1])
        self.proc.stdout.readline()  # "OpenAI-compatible dev server on ..." once it listens
        return f"http://127.0.0.1:{self.port}/v1"

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--latency", type=float, default=0.25)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[8, 64])
    ap.add_argument("--requests", type=int, default=1280)
    args = ap.parse_args()
    import openai  # noqa: F401  (a one-time import cost is start-up, not throughput)
    print(f"{'C':>4} {'ideal rps':>10} {'achieved':>9} {'ratio':>6} {'2nd-run requests':>17}")
    for c in args.concurrency:
        work = Path(tempfile.mkdtemp(prefix="gad-collect-bench-"))
        n = max(args.requests * c // max(args.concurrency), 4 * c)
        exs = [Example(f"p{i}", [{"role": "user", "content": f"benchmark prompt {i}"}]) for i in range(n)]
        # The server runs in its own process, as a real endpoint would: no GIL shared with the client.
        with ServerProcess(args.latency) as base_url:
            ep = Endpoint(base_url=base_url, model="dev", api_key_env=None, concurrency=c)
            t0 = time.perf_counter()
            res = collect_api(exs, ep, work / "out.jsonl")
            elapsed = time.perf_counter() - t0
            first = _count(base_url)
            collect_api(exs, ep, work / "out.jsonl")
            second = _count(base_url) - first
        ok = sum(r["status"] == "ok" for r in res.records)
        assert ok == n, f"{n - ok} requests failed"
        ideal = c / args.latency
        achieved = n / elapsed
        print(f"{c:4d} {ideal:10.1f} {achieved:9.1f} {achieved / ideal:6.2f} {second:17d}")


if __name__ == "__main__":
    main()
