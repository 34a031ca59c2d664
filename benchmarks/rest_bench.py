"""REST latency and throughput of `mlflow models serve`, against the server's own floor, with the same
requests through `pyfunc.predict` in this process.

Every model is served the way the README says (`mlflow models serve -m <uri> --env-manager local`, one
uvicorn worker) on a free loopback port, all side by side, and stopped by its process group afterwards. The
floor is a trivial identity pyfunc served the same way in the same run (no signature: the champions log no
input schema either), one floor server per champion: each answers only the floor requests sent beside its
champion, so it is as idle between requests as the champion's server. (One floor server answering for every
champion ran warmer than any of them and put 0.4 to 2 ms on each champion's distance: benchmarks/PROFILE.md.)

- latency, interleaved: in every round, for each champion, one single-row `dataframe_records` request to the
  floor and one to the champion (which goes first alternates by round), each on its own keep-alive
  `requests.Session`; then the same two requests' rows through `pyfunc.predict` here, parsed as the server
  parses them. A busy neighbour slows the floor and the champion alike, and each champion's ratio is taken
  against the floor requests sent beside its own. Cash flow needs a history: its "single" request is 100
  transactions spread over the ledger;
- throughput: sequential 1,000-row requests, rows per second (one model at a time, after the latency rounds).

Goals (issue 18): served single-row p50 at most 2.0x the floor for category, 2.5x for amount and anomaly,
3.0x for cash flow; p99 is reported beside them.

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

FLOOR = "identity"  # the floor a champion is compared with: the same server around a model that does nothing
GOALS = {"category": 2.0, "amount": 2.5, "anomaly": 2.5, "cashflow": 3.0}  # largest served p50 / floor p50
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
    for name in (FLOOR, "category"):
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


def _parsed(model, body: bytes):
    """The request's rows as the server hands them to `pyfunc.predict` (MLflow's own JSON parsing)."""
    from mlflow.pyfunc import scoring_server

    return scoring_server._parse_json_data(body, model.metadata, model.metadata.get_input_schema()).data


def _timed(action) -> float:
    begin = time.perf_counter()
    action()
    return time.perf_counter() - begin


def interleaved(servers: dict, models: dict, bodies: dict, warmup: int, floors: dict | None = None) -> dict:
    """Seconds per request, served and in process, of every champion and of the floor beside it (see the
    module docstring): {champion: {"served", "floor_served", "in_process", "floor_in_process": [...]}}.
    `floors`: the server each champion's floor requests go to (its own, `own_floor`); by default the one FLOOR
    server answers them all, and is then warmer than any champion's server (benchmarks/PROFILE.md)."""
    floors = floors or {}
    names = [name for name in servers if name != FLOOR and name not in floors.values()]
    floors = {name: floors.get(name, FLOOR) for name in names}
    samples = {name: {"served": [], "floor_served": [], "in_process": [], "floor_in_process": []} for name in names}
    sessions = {name: requests.Session() for name in servers}
    parsed = {name: [_parsed(models[name], body) for body in bodies[name]] for name in servers}
    try:
        for i in range(len(bodies[FLOOR])):
            for name in names:
                pair = [(floors[name], "floor_"), (name, "")]
                for who, prefix in (pair if i % 2 == 0 else pair[::-1]):
                    url = f"{servers[who].url}/invocations"
                    served = _post(sessions[who].post, url, bodies[who][i])
                    local = _timed(lambda: models[who].predict(parsed[who][i]))
                    if i >= warmup:
                        samples[name][prefix + "served"].append(served)
                        samples[name][prefix + "in_process"].append(local)
    finally:
        for session in sessions.values():
            session.close()
    return samples


def _figures(values: list) -> dict:
    return {"n": len(values), "p50": percentile(values, 0.5), "p99": percentile(values, 0.99)}


def own_floor(name: str) -> str:
    return f"{FLOOR}_for_{name}"


def run(workspace: Workspace, model_uris: dict, identity_uris: dict, quick: bool = False,
        workers: bool = True) -> dict:
    from tools.servers import model_server

    requests_ = Requests(workspace)
    count = 100 if quick else 600
    warmup = 10 if quick else 30
    batch_requests = 5 if quick else 30
    uris = {FLOOR: identity_uris[FLOOR], **{name: model_uris[name] for name in MODEL_TYPES if name in model_uris}}
    champions = [name for name in uris if name != FLOOR]
    floors = {name: own_floor(name) for name in champions}  # each champion's own, as idle between requests as it
    uris.update({floor: identity_uris[FLOOR] for floor in floors.values()})
    say(f"rest: serving {', '.join(uris)} side by side (load average {load_average()})")
    servers = {name: model_server(uri, cwd=workspace.root, env=workspace.env(), log_dir=workspace.logs,
                                  name=f"serve_{name}") for name, uri in uris.items()}
    models = {name: load_pyfunc(uri) for name, uri in uris.items()}
    bodies = {name: _payloads(requests_, name, 1, count + warmup) for name in [FLOOR, *champions]}
    bodies.update({floor: bodies[FLOOR] for floor in floors.values()})
    load = {"before": load_average()}
    with running(*servers.values()):
        say(f"rest: {count} interleaved rounds after {warmup} of warm-up (load average {load_average()})")
        samples = interleaved(servers, models, bodies, warmup, floors)
        load["after_latency"] = load_average()
        batch = {}
        for name in [FLOOR, *champions]:
            server = servers[name]
            batch[name] = throughput(server.url, _payloads(requests_, name, 1000, batch_requests), 1000)
            say(f"rest: {name}: {batch[name]['rows_per_second']:,.0f} rows/s at 1,000-row requests")
    served = {}
    for name, timings in samples.items():
        figures = {key: _figures(values) for key, values in timings.items()}
        model, floor = figures["served"], figures["floor_served"]
        local, floor_local = figures["in_process"], figures["floor_in_process"]
        served[name] = {
            "uri": uris[name], "single_rows": 100 if name == "cashflow" else 1, **figures, "batch": batch[name],
            "p50_ratio": model["p50"] / floor["p50"], "p99_ratio": model["p99"] / floor["p99"],
            # What serving adds for the model beyond what it adds for the identity (~0: nothing).
            "beyond_floor_and_model": model["p50"] - floor["p50"] - (local["p50"] - floor_local["p50"]),
            "goal": GOALS[name]}
        served[name]["met"] = served[name]["p50_ratio"] <= GOALS[name]
        say(f"rest: {name}: p50 {model['p50'] * 1e3:.2f} ms ({served[name]['p50_ratio']:.2f}x the floor's "
            f"{floor['p50'] * 1e3:.2f}), p99 {model['p99'] * 1e3:.2f} ms; in process {local['p50'] * 1e3:.2f} ms")
    result = {"served": served, "floor": FLOOR, "floor_uri": uris[FLOOR], "floor_batch": batch[FLOOR],
              "rounds": count, "warmup": warmup, "batch_requests": batch_requests, "load_average": load,
              "client_tcp_nodelay": _client_nodelay()}
    if workers:
        result["workers"] = workers_experiment(workspace, {name: uris[name] for name in [FLOOR, *champions]},
                                               requests_, max(60, count // 2), warmup)
    return result


def markdown(result: dict) -> str:
    from benchmarks.report import met, table

    ms = lambda seconds: f"{seconds * 1e3:.2f}"  # noqa: E731
    load = result["load_average"]
    lines = [f"`mlflow models serve --env-manager local` (1 uvicorn worker each), the champions and a floor server "
             f"for each of them side by side on loopback; one sequential client with a keep-alive "
             f"`requests.Session` per server. "
             f"{result['rounds']} interleaved rounds after {result['warmup']} of warm-up: in each, for every "
             f"champion, one single-row `dataframe_records` request to its floor (`{result['floor']}`, the identity "
             f"pyfunc served the same way, one server per champion so that each is as idle as its champion's) and "
             f"one to the champion, the order alternating by round, then the same "
             f"two requests through `pyfunc.predict` in the benchmark's process (rows parsed as the server parses "
             f"them). Cash flow's request is a 100-transaction history. Each ratio is the champion's against the "
             f"floor requests sent beside its own. Load average (1, 5, 15 min) {load['before']} before, "
             f"{load['after_latency']} after the rounds. Goals (issue 18): served p50 at most "
             + ", ".join(f"{GOALS[name]}x the floor for {name}" for name in GOALS) + ".", ""]
    rows = []
    for name, s in result["served"].items():
        rows.append([name, ms(s["served"]["p50"]), ms(s["served"]["p99"]), ms(s["floor_served"]["p50"]),
                     ms(s["floor_served"]["p99"]), f"{s['p50_ratio']:.2f}x", f"{s['p99_ratio']:.2f}x",
                     ms(s["in_process"]["p50"]), ms(s["in_process"]["p99"]), f"{s['beyond_floor_and_model'] * 1e3:+.2f}",
                     f"{s['batch']['rows_per_second']:,.0f}", f"<= {s['goal']}x: {met(s['met'])}"])
    lines.append(table(["served model", "p50 ms", "p99 ms", "floor p50 ms", "floor p99 ms", "p50 / floor",
                        "p99 / floor", "in-process p50 ms", "in-process p99 ms", "beyond floor + model ms",
                        "rows/s (1,000-row requests)", "goal p50"], rows))
    lines += ["", f"The floor alone: {result['floor_batch']['rows_per_second']:,.0f} rows/s at 1,000-row requests; "
                  f"in process it answers in about "
                  f"{min(s['floor_in_process']['p50'] for s in result['served'].values()) * 1e3:.2f} ms. "
                  "*beyond floor + model* is the champion's served p50 minus its floor's, minus the difference of the "
                  "two in-process p50s: about 0 means the server adds nothing for a model beyond what it adds for the "
                  "identity, and the distance to the floor is the model's own work."]
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
