"""REST latency and throughput of `mlflow models serve`, against the server's own floor.

Every model is served the way the README says (`mlflow models serve -m <uri> --env-manager local`, one
uvicorn worker by default) on a free loopback port and stopped by its process group afterwards. The
floor is a trivial identity pyfunc served the same way in the same run: once without a signature, once
with the category model's transaction input schema (so the difference is MLflow's schema enforcement).

- latency: sequential single-row `dataframe_records` requests on one keep-alive `requests.Session`
  (500+ in a full run, after a warm-up), p50/p99; cash flow needs a history, so its "single" request is
  100 transactions spread over the ledger;
- throughput: sequential 1,000-row requests, rows per second.

Goal: each model's single-row p50 at most 1.5x the floor's (the identity with the same schema).

Then `--workers 2`: the floor and the category model with 2 workers on a keep-alive connection, on a
fresh connection per request, with the listening socket given TCP_NODELAY (benchmarks/nodelay), and
under gunicorn's UvicornWorker; strace shows whether the server sets TCP_NODELAY on accepted sockets.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import requests

from benchmarks.common import PYTHON, Workspace, load_average, load_pyfunc, percentile, say
from benchmarks.models import MODEL_TYPES, Requests
from tools.servers import Server, free_port, running, stop_group

FLOOR = "identity_schema"  # the floor a champion is compared with: same server, same input schema
GOAL_P50_RATIO = 1.5
NODELAY_DIR = Path(__file__).resolve().parent / "nodelay"
HEADERS = {"Content-Type": "application/json"}
_ACCEPTED = re.compile(r"accept4.*\) = \d+$")  # a connection accepted (not EAGAIN)


def _payloads(requests_: Requests, model_type: str, size: int, count: int) -> list:
    """`count` different request bodies of `size` rows (cash flow: one history, reused)."""
    kind = "category" if model_type.startswith("identity") else model_type
    if kind == "cashflow":
        size = max(size, 100)
        body = json.dumps({"dataframe_split": requests_.rows(kind, size).to_dict(orient="split", index=False)})
        return [body.encode()] * count
    frame = requests_.rows(kind, min(size * count, 10_000) if size == 1 else size)
    if size == 1:
        records = frame.to_dict(orient="records")
        return [json.dumps({"dataframe_records": [records[i % len(records)]]}).encode() for i in range(count)]
    bodies = []
    for i in range(count):
        part = requests_.rows(kind, size, offset=i * size)
        bodies.append(json.dumps({"dataframe_split": part.to_dict(orient="split", index=False)}).encode())
    return bodies


def _post(send, url: str, body: bytes) -> float:
    begin = time.perf_counter()
    response = send(url, data=body, headers=HEADERS, timeout=120)
    elapsed = time.perf_counter() - begin
    if response.status_code != 200:
        raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:500]}")
    return elapsed


def latency(base: str, bodies: list, warmup: int, fresh_connection: bool = False) -> dict:
    """Sequential requests; one keep-alive session, or (fresh_connection) a new TCP connection each."""
    url = f"{base}/invocations"
    with requests.Session() as session:
        if fresh_connection:
            def send(*args, **kwargs):
                return requests.post(*args, **{**kwargs, "headers": {**HEADERS, "Connection": "close"}})
        else:
            send = session.post
        for body in bodies[:warmup]:
            _post(send, url, body)
        samples = [_post(send, url, body) for body in bodies]
    return {"n": len(samples), "p50": percentile(samples, 0.5), "p90": percentile(samples, 0.9),
            "p99": percentile(samples, 0.99), "mean": sum(samples) / len(samples), "max": max(samples)}


def throughput(base: str, bodies: list, rows_per_body: int, clients: int = 1) -> dict:
    """Rows per second over all bodies, sent by `clients` threads each with its own keep-alive session."""
    url = f"{base}/invocations"
    with requests.Session() as session:
        _post(session.post, url, bodies[0])  # warm-up
    errors: list = []

    def worker(share):
        try:
            with requests.Session() as session:
                for body in share:
                    _post(session.post, url, body)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    shares = [bodies[i::clients] for i in range(clients)]
    threads = [threading.Thread(target=worker, args=(share,)) for share in shares]
    begin = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - begin
    if errors:
        raise errors[0]
    return {"requests": len(bodies), "rows_per_request": rows_per_body, "clients": clients, "seconds": seconds,
            "rows_per_second": len(bodies) * rows_per_body / seconds}


# --- why `--workers 2` is slow on keep-alive ----------------------------------------------------

def _group_pids(pgid: int) -> list:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == pgid:
                    pids.append(int(entry.name))
    return pids


def nodelay_trace(base: str, server_pgid: int, body: bytes, workspace: Workspace, name: str) -> dict:
    """strace the server's processes while a few new connections make a request each: does the server call
    setsockopt(TCP_NODELAY) on the sockets it accepts?"""
    if not shutil.which("strace"):
        return {"available": False}
    pids = _group_pids(server_pgid)
    out = workspace.logs / f"strace_{name}.txt"
    command = ["strace", "-f", "-qq", "-e", "trace=accept4,setsockopt", "-o", str(out)]
    for pid in pids:
        command += ["-p", str(pid)]
    tracer = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        time.sleep(1.5)  # attach
        for _ in range(4):
            requests.post(f"{base}/invocations", data=body, headers={**HEADERS, "Connection": "close"}, timeout=60)
        time.sleep(0.5)
    finally:
        stop_group(tracer, signal.SIGINT, timeout=10)
    text = out.read_text() if out.exists() else ""
    if not text:
        return {"available": False, "error": (tracer.stderr.read() or b"").decode()[-300:]}
    accepted = sum(1 for line in text.splitlines() if _ACCEPTED.search(line))
    nodelay = sum(1 for line in text.splitlines() if "TCP_NODELAY, [1]" in line)
    return {"available": True, "processes": len(pids), "accepted": accepted, "nodelay_setsockopt": nodelay,
            "trace": str(out)}


@contextlib.contextmanager
def _gunicorn(model_uri: str, workspace: Workspace, name: str, workers: int):
    """The same MLflow scoring app under gunicorn's UvicornWorker (gunicorn sets TCP_NODELAY on its
    listener). The model path goes through MLflow's private `__pyfunc_model_path__` variable."""
    from mlflow.pyfunc import scoring_server

    port = free_port()
    command = [str(Path(PYTHON).with_name("gunicorn")), "-w", str(workers), "-k", "uvicorn.workers.UvicornWorker",
               "-b", f"127.0.0.1:{port}", "mlflow.pyfunc.scoring_server.app:app"]
    env = workspace.env(**{scoring_server._SERVER_MODEL_PATH: model_uri})
    with running(Server(command, port, cwd=workspace.root, env=env, log_path=workspace.logs / f"{name}.log")) \
            as (server,):
        yield server


def workers_experiment(workspace: Workspace, uris: dict, requests_: Requests, count: int, warmup: int) -> list:
    variants = [
        ("1 worker, keep-alive", {"workers": 1}, {}),
        ("2 workers, keep-alive", {"workers": 2}, {}),
        ("2 workers, new connection per request", {"workers": 2}, {"fresh_connection": True}),
        ("2 workers, keep-alive, listener TCP_NODELAY (benchmarks/nodelay)", {"workers": 2, "nodelay": True}, {}),
        ("gunicorn -w 2 -k uvicorn.workers.UvicornWorker, keep-alive", {"workers": 2, "gunicorn": True}, {}),
    ]
    found = []
    for name in ("identity_schema", "category"):
        if name not in uris:
            continue
        bodies = _payloads(requests_, name, 1, count)
        for label, server, client in variants:
            say(f"rest: {name}, {label} (load average {load_average()})")
            tag = f"{name}_{label.split(',')[0].replace(' ', '_')}_{'nodelay' if server.get('nodelay') else ''}" \
                  f"{'fresh' if client else ''}"
            try:
                if server.get("gunicorn"):
                    context = _gunicorn(uris[name], workspace, f"gunicorn_{tag}", server["workers"])
                else:
                    env = None
                    if server.get("nodelay"):  # the workaround's directory first on the server's PYTHONPATH
                        pythonpath = os.pathsep.join([str(NODELAY_DIR), workspace.env()["PYTHONPATH"]])
                        env = workspace.env(PYTHONPATH=pythonpath)
                    context = workspace.serve(uris[name], f"serve_{tag}", workers=server["workers"], env=env)
                with context as serving:
                    base, group = serving.url, serving.process.pid
                    figures = latency(base, bodies, warmup, **client)
                    trace = nodelay_trace(base, group, bodies[0], workspace, tag) if not client else None
                found.append({"model": name, "variant": label, **figures, "strace": trace})
                say(f"rest: {name}, {label}: p50 {figures['p50'] * 1e3:.1f} ms, p99 {figures['p99'] * 1e3:.1f} ms"
                    + (f"; strace: {trace['accepted']} accepted, {trace['nodelay_setsockopt']} TCP_NODELAY"
                       if trace and trace.get("available") else ""))
            except Exception as error:  # noqa: BLE001 - one failed variant does not lose the others
                found.append({"model": name, "variant": label, "error": str(error)[-800:]})
                say(f"rest: {name}, {label}: FAILED {str(error)[:300]}")
    return found


def _client_nodelay() -> bool:
    """Whether the client (requests over urllib3) already sets TCP_NODELAY on its sockets."""
    import socket

    from urllib3.connection import HTTPConnection

    return (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1) in (HTTPConnection.default_socket_options or [])


def in_process(uri: str, requests_: Requests, name: str, count: int) -> float:
    """Median seconds of the same single request's rows through `pyfunc.predict` in this process: what the
    model itself costs, so `served - floor - in-process` is what serving adds beyond its own floor."""
    import statistics

    model = load_pyfunc(uri)
    kind = "category" if name.startswith("identity") else name
    rows = requests_.rows(kind, 100 if kind == "cashflow" else 1)
    model.predict(rows)
    samples = []
    for _ in range(count):
        begin = time.perf_counter()
        model.predict(rows)
        samples.append(time.perf_counter() - begin)
    return statistics.median(samples)


def run(workspace: Workspace, model_uris: dict, identity_uris: dict, quick: bool = False,
        workers: bool = True) -> dict:
    requests_ = Requests(workspace)
    count = 100 if quick else 600
    warmup = 10 if quick else 30
    batch_requests = 5 if quick else 30
    uris = {**identity_uris, **model_uris}
    served = {}
    for name in ("identity", "identity_schema", *MODEL_TYPES):
        if name not in uris:
            continue
        say(f"rest: serving {name} ({uris[name]}; load average {load_average()})")
        try:
            with workspace.serve(uris[name], f"serve_{name}") as serving:
                base = serving.url
                single = latency(base, _payloads(requests_, name, 1, count), warmup)
                say(f"rest: {name}: single-row p50 {single['p50'] * 1e3:.2f} ms, p99 {single['p99'] * 1e3:.2f} ms")
                rows = 1000
                batch = throughput(base, _payloads(requests_, name, rows, batch_requests), rows)
                say(f"rest: {name}: {batch['rows_per_second']:,.0f} rows/s at {rows:,}-row requests")
            served[name] = {"uri": uris[name], "single": single, "batch": batch,
                            "single_rows": 100 if name == "cashflow" else 1,
                            "in_process_p50": in_process(uris[name], requests_, name, count // 2)}
        except Exception as error:  # noqa: BLE001
            served[name] = {"uri": uris[name], "error": str(error)[-800:]}
            say(f"rest: {name}: FAILED {str(error)[:300]}")
    floor = served.get(FLOOR, {}).get("single", {}).get("p50")
    for name in MODEL_TYPES:
        if name in served and "single" in served[name] and floor:
            served[name]["p50_ratio"] = served[name]["single"]["p50"] / floor
            served[name]["met"] = served[name]["p50_ratio"] <= GOAL_P50_RATIO
            # What serving adds beyond the floor and the model's own in-process time (~0: nothing).
            served[name]["beyond_floor_and_model"] = (served[name]["single"]["p50"] - floor
                                                      - served[name]["in_process_p50"]
                                                      + served[FLOOR]["in_process_p50"])
    result = {"served": served, "floor": FLOOR, "requests_per_latency_run": count,
              "batch_requests": batch_requests, "client_tcp_nodelay": _client_nodelay()}
    if workers:
        result["workers"] = workers_experiment(workspace, uris, requests_, max(60, count // 2), warmup)
    return result


def markdown(result: dict) -> str:
    from benchmarks.report import met, table

    lines = [f"`mlflow models serve --env-manager local` (1 uvicorn worker), loopback, one sequential client with a "
             f"keep-alive `requests.Session`: {result['requests_per_latency_run']} single-row `dataframe_records` "
             f"requests after a warm-up (cash flow: one 100-transaction history per request), then "
             f"{result['batch_requests']} requests of 1,000 rows for throughput. Floor: the identity pyfunc without a "
             f"signature, and with the category model's input schema (`{FLOOR}`, the one each model is compared with). "
             f"Goal: single-row p50 at most {GOAL_P50_RATIO}x the floor.", ""]
    rows = []
    for name, s in result["served"].items():
        if "error" in s:
            rows.append([name, "-", "-", "-", "-", "-", "-", f"failed: {s['error'][:200]}"])
            continue
        ratio = f"{s['p50_ratio']:.2f}x" if "p50_ratio" in s else "(floor)"
        beyond = f"{s['beyond_floor_and_model'] * 1e3:+.2f}" if "beyond_floor_and_model" in s else "-"
        rows.append([name, f"{s['single']['p50'] * 1e3:.2f}", f"{s['single']['p99'] * 1e3:.2f}", ratio,
                     f"{s['in_process_p50'] * 1e3:.2f}", beyond, f"{s['batch']['rows_per_second']:,.0f}",
                     met(s.get("met")) if "met" in s else "-"])
    lines.append(table(["served model", "p50 ms", "p99 ms", "p50 / floor", "in-process p50 ms", "beyond floor + "
                        "model ms", "rows/s (1,000-row requests)", f"goal p50 <= {GOAL_P50_RATIO}x floor"], rows))
    lines += ["", "*in-process p50* is the same request's rows through `pyfunc.predict` in the benchmark's own "
                  "process; *beyond floor + model* is served p50 minus the floor's served p50 minus the difference "
                  "of the two in-process times: about 0 means the server adds nothing for a model beyond what it "
                  "adds for the identity, and the gap to the floor is the model's own work."]
    if result.get("workers"):
        nodelay = "sets" if result.get("client_tcp_nodelay") else "does not set"
        lines += ["", "**`--workers 2`** (single-row requests, one sequential client; *strace* counts the "
                      "connections the server accepted and its `setsockopt(TCP_NODELAY, 1)` calls while four new "
                      f"connections were made; the client, requests over urllib3, {nodelay} TCP_NODELAY on its own "
                      "sockets in every row):", ""]
        wrows = []
        for w in result["workers"]:
            if "error" in w:
                wrows.append([w["model"], w["variant"], "-", "-", f"failed: {w['error'][:160]}"])
                continue
            trace = w.get("strace") or {}
            traced = (f"{trace['accepted']} accepted, {trace['nodelay_setsockopt']} TCP_NODELAY"
                      if trace.get("available") else "-")
            wrows.append([w["model"], w["variant"], f"{w['p50'] * 1e3:.2f}", f"{w['p99'] * 1e3:.2f}", traced])
        lines.append(table(["served model", "server and client", "p50 ms", "p99 ms", "strace"], wrows))
    return "\n".join(lines)
