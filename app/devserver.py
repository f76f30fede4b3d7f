"""A local OpenAI-compatible chat server with injectable latency and faults (stdlib only).

For tests, benchmarks and dry runs of a collection or evaluation before money is spent.
It serves `POST /v1/chat/completions` (plain and streaming, with usage counts) and `GET /v1/models`.
Answers are deterministic functions of the request: by default an echo-like "teacher" answer; a
request whose messages contain "Assistant 1" and "Assistant 2" gets a judge-style verdict whose
scores are derived from the answers' lengths, so judge pipelines can be exercised end to end.

Faults are rules matched against the last user message (substring; "*" matches all):
    {"match": "boom", "fault": "429", "times": 2, "retry_after": 0.2}
fault is one of 429, 500, 503, 400, 401, 404, timeout, malformed, reset, content_filter, empty, or
reply (answer `text` instead, e.g. a judge that returns garbage: {"fault": "reply", "text": "dunno"}).
`times` limits how often a rule fires (None: always). Every request is logged (`requests()` in
process), which is how tests count what a client really sent. Rules can be set at start or over HTTP:
`POST /_control/faults` (JSON list), `GET /_control/requests` (the log), `POST /_control/reset`.

    gad-studio devserver --port 8001 --latency 0.2
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAULTS = {"429", "500", "503", "400", "401", "404", "timeout", "malformed", "reset", "content_filter", "empty",
          "reply"}


@dataclass
class FaultRule:
    match: str
    fault: str
    times: int | None = None
    retry_after: float | None = None
    text: str | None = None     # the answer of a 'reply' rule
    fired: int = 0

    def applies(self, text: str) -> bool:
        if self.times is not None and self.fired >= self.times:
            return False
        return self.match == "*" or self.match in text


@dataclass
class ServerState:
    latency: float = 0.0
    timeout_sleep: float = 30.0
    rules: list[FaultRule] = field(default_factory=list)
    log: list[dict] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def set_rules(self, rules: list[dict]) -> None:
        for r in rules:
            if str(r.get("fault")) not in FAULTS:
                raise ValueError(f"unknown fault {r.get('fault')!r}; expected one of {sorted(FAULTS)}")
        with self.lock:
            self.rules = [FaultRule(str(r["match"]), str(r["fault"]), r.get("times"), r.get("retry_after"),
                                    r.get("text")) for r in rules]

    def pick_fault(self, text: str) -> FaultRule | None:
        with self.lock:
            for rule in self.rules:
                if rule.applies(text):
                    rule.fired += 1
                    return rule
        return None


def count_tokens(text: str) -> int:
    """A stand-in tokenizer: words and punctuation marks."""
    return len(re.findall(r"\w+|[^\w\s]", text))


JUDGE_MARKERS = ("Assistant 1", "Assistant 2")


def default_answer(messages: list[dict], model: str) -> str:
    last = next((m.get("content") or "" for m in reversed(messages) if m.get("role") == "user"), "")
    if isinstance(last, list):
        last = " ".join(p.get("text", "") for p in last if isinstance(p, dict))
    if all(k in last for k in JUDGE_MARKERS):
        return judge_answer(last)
    digest = hashlib.sha256(f"{model}\0{last}".encode()).hexdigest()[:8]
    words = last.split()
    topic = " ".join(words[:12])
    return (f"Here is a careful answer about: {topic}. "
            f"First, consider the key points. Second, weigh them. [ref {digest}]")


def judge_answer(prompt: str) -> str:
    """Scores 1-10 from the two answers' lengths (longer = better, capped): deterministic and checkable."""
    parts = re.split(r"\[The (?:Start|End) of Assistant [12]'s Answer\]", prompt)
    a1 = parts[1] if len(parts) > 1 else ""
    a2 = parts[3] if len(parts) > 3 else ""

    def score(text: str) -> int:
        return max(1, min(10, 1 + count_tokens(text) // 10))

    return f"{score(a1)} {score(a2)}\nAssistant 1 scored {score(a1)} and Assistant 2 scored {score(a2)} by length."


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: DevServer

    def log_message(self, *args):  # quiet: the request log is in memory
        pass

    def setup(self):
        super().setup()
        # Headers and body go out as two writes; without TCP_NODELAY, Nagle + delayed ACK add ~40 ms each.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _send(self, status: int, body: dict | str | bytes, headers: dict[str, str] | None = None) -> None:
        data = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (e.g. its timeout): fine
            self.close_connection = True

    def _error(self, status: int, message: str, kind: str, headers=None) -> None:
        self._send(status, {"error": {"message": message, "type": kind, "code": str(status)}}, headers)

    def do_GET(self):
        state = self.server.state
        if self.path == "/v1/models":
            self._send(200, {"object": "list", "data": [{"id": "dev-teacher", "object": "model"}]})
        elif self.path == "/_control/requests":
            with state.lock:
                self._send(200, list(state.log))
        else:
            self._error(404, f"no route {self.path}", "not_found")

    def do_POST(self):
        state = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            return self._error(400, "request body is not JSON", "invalid_request_error")
        if self.path == "/_control/faults":
            try:
                state.set_rules(body)
            except (ValueError, KeyError, TypeError) as err:
                return self._error(400, str(err), "invalid_request_error")
            return self._send(200, {"ok": True})
        if self.path == "/_control/reset":
            with state.lock:
                state.log.clear()
                state.rules.clear()
            return self._send(200, {"ok": True})
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            return self._error(404, f"no route {self.path}", "not_found")
        self._chat(body)

    def _chat(self, body: dict) -> None:
        state = self.server.state
        messages = body.get("messages") or []
        if not isinstance(messages, list) or not messages:
            return self._error(400, "'messages' must be a non-empty list", "invalid_request_error")
        model = str(body.get("model") or "dev-teacher")
        last = str(messages[-1].get("content", "")) if isinstance(messages[-1], dict) else ""
        rule = state.pick_fault(last)
        with state.lock:
            state.log.append({"t": time.time(), "model": model, "prompt": last,
                              "fault": rule.fault if rule else None,
                              "auth": bool(self.headers.get("Authorization"))})  # never the key itself
        if state.latency:
            time.sleep(state.latency)
        if rule is not None:
            f = rule.fault
            if f == "429":
                headers = {"Retry-After": str(rule.retry_after)} if rule.retry_after is not None else None
                return self._error(429, "rate limit reached", "rate_limit_error", headers)
            if f in ("500", "503"):
                headers = {"Retry-After": str(rule.retry_after)} if rule.retry_after is not None else None
                return self._error(int(f), "server overloaded", "server_error", headers)
            if f == "400":
                return self._error(400, "this prompt is not accepted", "invalid_request_error")
            if f == "401":
                return self._error(401, "invalid API key", "authentication_error")
            if f == "404":
                return self._error(404, f"The model '{model}' does not exist", "not_found_error")
            if f == "timeout":
                time.sleep(state.timeout_sleep)
                return self._error(504, "took too long", "timeout")
            if f == "malformed":
                return self._send(200, b'{"id": "x", "choices": [ this is not json')
            if f == "reset":
                self.close_connection = True
                self.connection.shutdown(2)  # the client sees the connection drop mid-request
                return None
        answer = ("" if rule is not None and rule.fault == "empty"
                  else str(rule.text or "") if rule is not None and rule.fault == "reply"
                  else default_answer(messages, model))
        finish = "content_filter" if rule is not None and rule.fault == "content_filter" else "stop"
        if finish == "content_filter":
            answer = ""
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        words = answer.split(" ")
        if max_tokens and count_tokens(answer) > int(max_tokens):
            kept = []
            for w in words:
                if count_tokens(" ".join(kept + [w])) > int(max_tokens):
                    break
                kept.append(w)
            answer, finish = " ".join(kept), "length"
        prompt_tokens = sum(count_tokens(str(m.get("content", ""))) for m in messages if isinstance(m, dict))
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": count_tokens(answer),
                 "total_tokens": prompt_tokens + count_tokens(answer)}
        cid = "chatcmpl-" + hashlib.sha256(f"{time.time_ns()}{last}".encode()).hexdigest()[:12]
        if body.get("stream"):
            return self._stream(cid, model, answer, finish, usage, body)
        self._send(200, {"id": cid, "object": "chat.completion", "created": int(time.time()), "model": model,
                         "choices": [{"index": 0, "message": {"role": "assistant", "content": answer},
                                      "finish_reason": finish}],
                         "usage": usage})

    def _stream(self, cid, model, answer, finish, usage, body) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def chunk(obj: dict) -> None:
            data = f"data: {json.dumps(obj)}\n\n".encode()
            self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")

        base = {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
        pieces = re.findall(r"\S+\s*", answer) or [""]
        for i, piece in enumerate(pieces):
            delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
            chunk({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
        chunk({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            chunk({**base, "choices": [], "usage": usage})
        data = b"data: [DONE]\n\n"
        self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n0\r\n\r\n")


class DevServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, host: str = "127.0.0.1", port: int = 0, latency: float = 0.0,
                 faults: list[dict] | None = None, timeout_sleep: float = 30.0):
        super().__init__((host, port), _Handler)
        self.state = ServerState(latency=latency, timeout_sleep=timeout_sleep)
        if faults:
            self.state.set_rules(faults)
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> DevServer:
        self._thread = threading.Thread(target=self.serve_forever, name="gad-devserver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def requests(self, fault: str | None | Any = ...) -> list[dict]:
        with self.state.lock:
            log = list(self.state.log)
        return log if fault is ... else [r for r in log if r["fault"] == fault]

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def load_faults(path: str) -> list[dict]:
    """A JSON file of fault rules, checked here so a typo is a one-line error, not a traceback."""
    from gad.training.config import ConfigError

    try:
        rules = json.loads(open(path, encoding="utf-8").read())
    except FileNotFoundError:
        raise ConfigError(f"--faults {path}: file not found") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"--faults {path}:{err.lineno}: not valid JSON ({err.msg})") from None
    if not isinstance(rules, list) or not all(isinstance(r, dict) and "match" in r and "fault" in r for r in rules):
        raise ConfigError(f"--faults {path}: expected a JSON list of {{\"match\": ..., \"fault\": ...}} rules")
    bad = [r["fault"] for r in rules if str(r["fault"]) not in FAULTS]
    if bad:
        raise ConfigError(f"--faults {path}: unknown fault {bad[0]!r}; expected one of {', '.join(sorted(FAULTS))}")
    return rules


def serve(host: str, port: int, latency: float, faults_file: str | None) -> None:
    faults = load_faults(faults_file) if faults_file else None
    server = DevServer(host, port, latency, faults)
    print(f"OpenAI-compatible dev server on {server.base_url} (latency {latency}s); Ctrl-C stops it", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
