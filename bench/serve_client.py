#!/usr/bin/env python3
"""A small load generator from the standard library, for machines without `hey` (the GPU machine reaches
no package registry): N POST requests of one body from C concurrent clients (keep-alive connections),
then stops. Prints one JSON object: req/s, p50/p99 latency (ms), status codes, transport errors.

usage: bench/serve_client.py URL BODY_FILE N C
"""
import http.client
import json
import statistics
import sys
import threading
import time
import urllib.parse


def main() -> int:
    url, body_path, n, c = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    with open(body_path, "rb") as f:
        body = f.read()
    target = urllib.parse.urlparse(url)
    per_client = max(1, n // c)
    latencies, codes, errors = [], {}, []
    lock = threading.Lock()

    def client() -> None:
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=120)
        for _ in range(per_client):
            t = time.perf_counter()
            try:
                conn.request("POST", target.path, body=body, headers={"content-type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                status = resp.status
            except Exception as e:  # a refused or reset connection is a result, not a crash of the client
                with lock:
                    errors.append(repr(e))
                conn.close()
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=120)
                continue
            with lock:
                latencies.append((time.perf_counter() - t) * 1000)
                codes[str(status)] = codes.get(str(status), 0) + 1
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(c)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    latencies.sort()
    pct = lambda p: latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] if latencies else None
    print(json.dumps({"clients": c, "requests": per_client * c, "rps": len(latencies) / wall, "p50_ms": pct(50),
                      "p99_ms": pct(99), "median_ms": statistics.median(latencies) if latencies else None,
                      "codes": codes, "transport_errors": len(errors)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
