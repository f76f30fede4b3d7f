"""Hostile uploads and bodies against one real server: what each gets back, the server's memory
(RSS) peak during it and after it, and how /health answers meanwhile.

The server is `gad-studio serve --no-ui` in its own process (SQLite, defaults: 200 MB uploads,
200,000 records), as bench/api_load.py starts it, beside an io worker (`gad-studio worker --queues io`:
uploads are parsed by its jobs). A sampler reads both processes' RSS every 20 ms; a prober GETs
/health every 100 ms throughout. Cases, one after another:

  baseline     nothing (3 s)
  anon-chunked 20 concurrent anonymous uploads, chunked (no Content-Length), 200 MB each offered
  bomb-zeros   a .jsonl.gz of 2 GiB of zeros (2 MB on the wire; the audit's kind of bomb)
  bomb-blank   a .jsonl.gz of 4 GiB of newlines (the costliest content: read to the 10x cap)
  lines-csv    1,000,000 one-character lines under a 'prompt' header (.csv)
  lines-jsonl  1,000,000 one-character lines (.jsonl)
  nested-json  20 concurrent logins whose body nests 1,000,000 levels deep (2 MB)

Reported per case: answers (status: count), the server's RSS peak and RSS 2 s after, both as ratios
to the baseline RSS, the worker's RSS peak (and its ratio to its baseline), and /health p95 (and its
ratio to the baseline p95) and failures. Compare ratios across machines, not times.

    python bench/web_abuse.py [--json bench/results/web_abuse.json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed(data_dir: Path, db_url: str) -> str:
    from app.context import make_context
    from app.db.session import session_scope
    from app.services import users
    from app.settings import Settings

    ctx = make_context(Settings(GAD_DATA_DIR=data_dir, DATABASE_URL=db_url))
    with session_scope(ctx.sessions) as s:
        token = users.create_token(s, users.create_user(s, "bench", "researcher", "bench-password"), "bench")[1]
    ctx.close()
    return token


class Watch:
    """RSS samples of the server (and of the worker with its children), and /health latencies, while a
    case runs."""

    def __init__(self, pid: int, url: str, worker_pid: int | None = None):
        import psutil

        self.proc, self.url = psutil.Process(pid), url
        self.worker = psutil.Process(worker_pid) if worker_pid else None
        self.rss: list[int] = []
        self.worker_rss: list[int] = []
        self.health: list[float] = []
        self.health_failures = 0
        self._stop = threading.Event()

    def __enter__(self):
        self._threads = [threading.Thread(target=self._sample, daemon=True),
                         threading.Thread(target=self._probe, daemon=True)]
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=15)

    def _sample(self):
        while not self._stop.is_set():
            self.rss.append(self.proc.memory_info().rss)
            if self.worker is not None:
                self.worker_rss.append(tree_rss(self.worker))
            self._stop.wait(0.02)

    def _probe(self):
        while not self._stop.is_set():
            t0 = time.perf_counter()
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=10) as r:
                    r.read()
                self.health.append(time.perf_counter() - t0)
            except OSError:
                self.health_failures += 1
            self._stop.wait(0.1)


def tree_rss(proc) -> int:
    """RSS of a process and its children (a worker may run its job in a child)."""
    import psutil

    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def p95(values: list[float]) -> float | None:
    return statistics.quantiles(values, n=20)[-1] if len(values) >= 20 else (max(values) if values else None)


def raw_request(url: str, head: bytes, body_chunks, timeout: float = 120) -> int:
    """Send head, then body chunks until the server answers or hangs up; the status (0: none)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(head)
        s.setblocking(False)
        got = b""
        for chunk in body_chunks:
            try:
                got += s.recv(65536)
            except BlockingIOError:
                pass
            if got:
                break
            try:
                s.setblocking(True)
                s.sendall(chunk)
                s.setblocking(False)
            except OSError:
                break
        s.setblocking(True)
        try:
            while b"\r\n" not in got:
                more = s.recv(65536)
                if not more:
                    break
                got += more
        except OSError:
            pass
    return int(got.split(b" ", 2)[1]) if got.startswith(b"HTTP/") else 0


def chunked_upload(url: str, token: str | None, filename: str, size: int, block: bytes = b"x" * 2**20) -> int:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    head = (f"POST /api/datasets HTTP/1.1\r\nHost: bench\r\n{auth}Content-Type: multipart/form-data; boundary=zz\r\n"
            f"Transfer-Encoding: chunked\r\n\r\n").encode()

    def chunks():
        yield _chunk(b'--zz\r\nContent-Disposition: form-data; name="file"; filename="' + filename.encode()
                     + b'"\r\n\r\n')
        for _ in range(size // len(block)):
            yield _chunk(block)
        yield _chunk(b"\r\n--zz--\r\n") + b"0\r\n\r\n"

    return raw_request(url, head, chunks())


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def upload_file(url: str, token: str, name: str, data: bytes) -> int:
    import httpx

    r = httpx.post(f"{url}/api/datasets", headers={"Authorization": f"Bearer {token}"},
                   files={"file": (name, data)}, timeout=600)
    return r.status_code


def gzip_bomb(byte: bytes, gib: int) -> bytes:
    """gib GiB of one byte, gzip-compressed: one 256 MiB member repeated (a valid multi-member gzip file)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = byte * 2**20
    member = b"".join(comp.compress(block) for _ in range(256)) + comp.flush()
    return member * (4 * gib)


def run_case(name: str, action, pid: int, url: str, baseline: dict | None, worker_pid: int | None = None) -> dict:
    with Watch(pid, url, worker_pid) as watch:
        t0 = time.perf_counter()
        statuses = action()
        seconds = time.perf_counter() - t0
        time.sleep(0.5)
    time.sleep(2)
    after = Watch(pid, url).proc.memory_info().rss
    out = {"case": name, "answers": {str(k): statuses.count(k) for k in sorted(set(statuses))},
           "seconds": round(seconds, 2), "rss_peak_mb": round(max(watch.rss) / 2**20, 1),
           "rss_after_mb": round(after / 2**20, 1), "health_p95_ms": round(1000 * (p95(watch.health) or 0), 1),
           "health_failures": watch.health_failures, "health_probes": len(watch.health),
           "worker_rss_peak_mb": round(max(watch.worker_rss or [0]) / 2**20, 1)}
    if baseline:
        out["worker_rss_peak_x"] = round(out["worker_rss_peak_mb"] / max(baseline["worker_rss_peak_mb"], 0.1), 2)
        out["rss_peak_x"] = round(max(watch.rss) / (baseline["rss_peak_mb"] * 2**20), 2)
        out["rss_after_x"] = round(after / (baseline["rss_peak_mb"] * 2**20), 2)
        out["health_p95_x"] = round(out["health_p95_ms"] / max(baseline["health_p95_ms"], 0.1), 1)
    print(json.dumps(out), flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "web_abuse.json")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="gad-abuse-"))
    data = tmp / "data"
    db_url = f"sqlite:///{data / 'studio.db'}"
    token = seed(data, db_url)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "GAD_DATA_DIR": str(data), "DATABASE_URL": db_url, "PYTHONPATH": str(REPO),
           "OMP_NUM_THREADS": "1"}
    env.pop("CELERY_BROKER_URL", None)
    log = (tmp / "server.log").open("ab")
    server = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--no-ui", "--port", str(port),
                               "--log-level", "warning"], env=env, cwd=REPO, stdout=log, stderr=log)
    worker = subprocess.Popen([sys.executable, "-m", "app.cli", "worker", "--queues", "io", "--loglevel", "WARNING"],
                              env=env, cwd=REPO, stdout=log, stderr=log)
    try:
        deadline = time.time() + 90
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2).read()
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise SystemExit(f"server did not start: {(tmp / 'server.log').read_text()[-2000:]}") from None
                time.sleep(0.3)
        bombs = {"zeros": gzip_bomb(b"\0", 2), "blank": gzip_bomb(b"\n", 4)}
        lines_csv = b"prompt\n" + b"x\n" * 1_000_000
        lines_jsonl = b"x\n" * 1_000_000
        nested = b'{"username": ' + b"[" * 1_000_000 + b"]" * 1_000_000 + b"}"

        def login_nested():
            import httpx

            return httpx.post(f"{url}/api/auth/login", content=nested,
                              headers={"Content-Type": "application/json"}, timeout=120).status_code

        def parallel(fn, n):
            with ThreadPoolExecutor(n) as pool:
                return list(pool.map(lambda _: fn(), range(n)))

        time.sleep(5)  # the worker's imports, so that its baseline is its resting size
        results = [run_case("baseline", lambda: [time.sleep(3)] and [], server.pid, url, None, worker.pid)]
        base = results[0]
        cases = [
            ("anon-chunked", lambda: parallel(lambda: chunked_upload(url, None, "big.jsonl", 200 * 2**20), 20)),
            ("bomb-zeros", lambda: [upload_file(url, token, "bomb.jsonl.gz", bombs["zeros"])]),
            ("bomb-blank", lambda: [upload_file(url, token, "bomb.jsonl.gz", bombs["blank"])]),
            ("lines-csv", lambda: [upload_file(url, token, "lines.csv", lines_csv)]),
            ("lines-jsonl", lambda: [upload_file(url, token, "lines.jsonl", lines_jsonl)]),
            ("nested-json", lambda: parallel(login_nested, 20)),
        ]
        for name, action in cases:
            results.append(run_case(name, action, server.pid, url, base, worker.pid))
        print(f"bomb sizes on the wire: zeros {len(bombs['zeros']):,} B, blank {len(bombs['blank']):,} B")
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"server": "gad-studio serve --no-ui + an io worker, SQLite, default caps",
                                         "cases": results}, indent=1) + "\n")
    finally:
        worker.terminate()
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
