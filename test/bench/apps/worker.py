# The bench's Python debuggee: worker.js's protocol (JSON lines on stdio, {"ready":true} first) for
# the ops rtt, download and dns, with Python's own http.client and socket (no Tether code), so that
# under the native layer it measures what a Python program sees.
import hashlib, http.client, json, re, socket, sys, time
from urllib.parse import urlsplit

def block():
    seed, parts = b"tether-bench", []
    for _ in range(2048):
        seed = hashlib.sha256(seed).digest()
        parts.append(seed)
    return b"".join(parts)

BLOCK = block()

def expected_sha(n):
    h = hashlib.sha256()
    while n > 0:
        c = BLOCK if n >= len(BLOCK) else BLOCK[:n]
        h.update(c)
        n -= len(c)
    return h.hexdigest()

def conn(url):
    u = urlsplit(url)
    return http.client.HTTPConnection(u.hostname, u.port or 80, timeout=300), u.path + (f"?{u.query}" if u.query else "")

def rtt(url, n, warmup=20, expectServedBy=None, **_):
    c, path = conn(url)
    ms, errors, wrong, sample = [], 0, 0, None
    for i in range(warmup + n):
        t0 = time.perf_counter()
        try:
            c.request("GET", path)
            r = c.getresponse()
            body = r.read()
            took = (time.perf_counter() - t0) * 1000
            served = r.getheader("x-served-by") or ""
            if r.status != 200 or (expectServedBy and not re.search(expectServedBy, served)):
                wrong += 1
                sample = sample or f"{r.status} {served} {body[:100]!r}"
            if i >= warmup:
                ms.append(took)
        except Exception:
            errors += 1
            c.close()
            c, path = conn(url)
    c.close()
    return {"ms": ms, "errors": errors, "wrong": wrong, "sample": sample}

def download(url, bytes, runs=1, **_):
    results = []
    for _ in range(runs):
        c, path = conn(f"{url}?n={bytes}")
        t0 = time.perf_counter()
        c.request("GET", path)
        r = c.getresponse()
        h, got = hashlib.sha256(), 0
        while True:
            d = r.read(1 << 20)
            if not d:
                break
            got += len(d)
            h.update(d)
        ms = (time.perf_counter() - t0) * 1000
        results.append({"ms": ms, "bytes": got, "ok": r.status == 200 and got == bytes and h.hexdigest() == expected_sha(bytes), "servedBy": r.getheader("x-served-by")})
        c.close()
    return {"results": results}

def dns(name, n, warmup=5, **_):
    ms, errors, address = [], 0, ""
    for i in range(warmup + n):
        t0 = time.perf_counter()
        try:
            address = socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
            if i >= warmup:
                ms.append((time.perf_counter() - t0) * 1000)
        except OSError:
            errors += 1
    return {"ms": ms, "errors": errors, "address": address}

OPS = {"rtt": rtt, "download": download, "dns": dns, "ping": lambda **_: {"pid": __import__("os").getpid()}}
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    if not line.strip():
        continue
    msg = json.loads(line)
    try:
        args = {k: v for k, v in msg.items() if k not in ("id", "op")}
        out = {"id": msg["id"], "result": OPS[msg["op"]](**args)}
    except Exception as e:
        out = {"id": msg["id"], "error": repr(e)}
    print(json.dumps(out), flush=True)
