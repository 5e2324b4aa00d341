#!/usr/bin/env python3
"""A malicious peer for the trust-boundary tests: an HTTP proxy on loopback in front of one or more real nodes.

    python3 Scripts/test-peer-proxy.py --default HOST:PORT [--route PREFIX=HOST:PORT]... \
        [--canned PATH=STATUS:FILE]... [--port 0]

Prints "listening on 127.0.0.1:PORT" when ready. A request whose path is a --canned PATH (exact, query
excluded) is answered with that status and the file's bytes and not forwarded; otherwise it goes, unchanged
(the Host header too, so signed requests stay valid), to the node of the longest matching --route prefix,
else to --default. With routes, one peer can show its grant endpoints one log and its witness endpoints
another (a split view). Standard library only; loopback only; it serves until it is killed.
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--default", required=True, help="HOST:PORT of the node that gets every other request")
    parser.add_argument("--route", action="append", default=[], help="PREFIX=HOST:PORT")
    parser.add_argument("--canned", action="append", default=[], help="PATH=STATUS:FILE")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    routes = sorted(
        ((prefix, target) for prefix, target in (r.split("=", 1) for r in args.route)),
        key=lambda route: -len(route[0]),
    )
    canned = {}
    for entry in args.canned:
        path, answer = entry.split("=", 1)
        status, file = answer.split(":", 1)
        with open(file, "rb") as f:
            canned[path] = (int(status), f.read())

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_: object) -> None:
            pass

        def relay(self) -> None:
            path = self.path.split("?", 1)[0]
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if path in canned:
                status, payload = canned[path]
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            target = next((t for prefix, t in routes if path.startswith(prefix)), args.default)
            host, port = target.rsplit(":", 1)
            upstream = http.client.HTTPConnection(host, int(port), timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "content-length")}
            upstream.request(self.command, self.path, body=body or None, headers=headers)
            answer = upstream.getresponse()
            payload = answer.read()
            self.send_response(answer.status)
            for name, value in answer.getheaders():
                if name.lower() not in ("connection", "content-length", "transfer-encoding"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            upstream.close()

        do_GET = relay
        do_POST = relay

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
