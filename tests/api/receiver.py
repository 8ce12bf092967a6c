"""A real local HTTP receiver for webhook tests: answers from a script, keeps every request (and the client's
address, so a test sees whether connections were kept alive). HTTP/1.1: connections stay open."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """``answer(n, body)`` gives the status of the n-th request (0-based); 204 by default."""

    def __init__(self, answer=None):
        self.requests: list[dict] = []
        self.answers: list[int] = []
        self._lock = threading.Lock()
        receiver = self
        answer = answer or (lambda n, body: 204)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 - http.server's name
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                body = json.loads(raw)
                with receiver._lock:
                    status = answer(len(receiver.requests), body)
                    receiver.requests.append({"raw": raw, "body": body, "headers": dict(self.headers),
                                              "client": self.client_address, "at": time.time()})
                    receiver.answers.append(status)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def accepted(self) -> list[dict]:
        with self._lock:
            return [r["body"] for r, a in zip(self.requests, self.answers, strict=True) if a < 300]

    def close(self):
        self.server.shutdown()
        self.server.server_close()
