#!/usr/bin/env python3
"""A fault-injecting HTTP proxy on loopback, in front of an S3 store (radosgw cannot be told to fail).

    python3 Scripts/s3-fault-proxy.py --upstream 127.0.0.1:7480 --control FILE [--port 0]

Prints "listening on 127.0.0.1:PORT" when ready. Every request is forwarded unchanged (the Host header too,
so SigV4 signatures stay valid) unless the control file says otherwise; it is re-read on every request:

    none        forward everything
    every N     answer 503 SlowDown to every Nth request, forward the others
    all         answer 503 SlowDown to every request (a storm)

Each injected failure is counted; `GET /__faults` answers the count (not forwarded). Standard library only.
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import sys
import threading

SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True, help="HOST:PORT of the real store")
    parser.add_argument("--control", required=True, help="file holding the fault mode")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    upstream_host, upstream_port = args.upstream.rsplit(":", 1)
    lock = threading.Lock()
    state = {"requests": 0, "faults": 0}

    def mode() -> tuple[str, int]:
        try:
            with open(args.control, encoding="utf-8") as f:
                words = f.read().split()
        except OSError:
            return ("none", 0)
        if words[:1] == ["every"] and len(words) == 2 and words[1].isdigit() and int(words[1]) > 0:
            return ("every", int(words[1]))
        if words[:1] == ["all"]:
            return ("all", 0)
        return ("none", 0)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_: object) -> None:  # quiet
            pass

        def relay(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if self.path == "/__faults":
                text = str(state["faults"]).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)
                return
            kind, every = mode()
            with lock:
                state["requests"] += 1
                fail = kind == "all" or (kind == "every" and state["requests"] % every == 0)
                if fail:
                    state["faults"] += 1
            if fail:
                self.send_response(503)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(SLOW_DOWN)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(SLOW_DOWN)
                return
            connection = http.client.HTTPConnection(upstream_host, int(upstream_port), timeout=120)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection",)}
                connection.request(self.command, self.path, body=body if length else None, headers=headers)
                response = connection.getresponse()
                data = response.read()
                self.send_response(response.status)
                for name, value in response.getheaders():
                    # A HEAD answer keeps the object's Content-Length (its size); others get the body's.
                    if name.lower() not in ("connection", "transfer-encoding", "content-length"):
                        self.send_header(name, value)
                    elif name.lower() == "content-length" and self.command == "HEAD":
                        self.send_header(name, value)
                if self.command != "HEAD":
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
            except OSError:
                self.send_response(502)
                self.send_header("Content-Length", "0")
                self.end_headers()
            finally:
                connection.close()

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = relay

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(f"listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
