"""Where a served request's time goes (issue 18 item 4): the category champion (and cash flow) against the identity
floor, served by `mlflow models serve --env-manager local` on 127.0.0.1, profiled inside the serving process.

    python -m benchmarks.serving_profile                      # trains category + cash flow in a throw-away store
    python -m benchmarks.serving_profile --models category --requests 1000 --keep
    python -m benchmarks.serving_profile --reuse /tmp/titans-bench-xxxx   # a kept workspace: no training

Three measurements, each with the load average beside it (findings: benchmarks/PROFILE.md):

1. **Stage timers inside the server.** A sitecustomize written into the workspace (only the `uvicorn` process
   reads it; nothing in the repository changes) wraps, with `time.perf_counter`, the ASGI app call
   (FastAPI.__call__), `asyncio.to_thread` (the hand-off to the worker thread and back), MLflow's `invocations`,
   its JSON parsing (`_parse_json_data`) and writing (`predictions_to_json`), `PyFuncModel.predict`, and for our
   pyfuncs `LedgerModel.predict`, the contract (`LedgerPredictor.prepare`), the predictor's `predict` and the
   category answer frame (`CategoryPredictor.answer`); `gc.callbacks` times the collector. The server writes each
   request's figures on SIGUSR1. Two conditions: *interleaved*, through `rest_bench.interleaved` itself (floor
   request, model request, then both through `pyfunc.predict` in this process, alternating order), which gives
   this run's *beyond floor + model*, decomposed by pairing each request's client time with its server timers;
   and *back to back* (one server alone, sequential requests on one keep-alive session).
2. **py-spy** (`py-spy record --idle --nonblocking -f raw`; stacks waiting in epoll, the executor's queue or a
   threading wait are dropped here) attached to the `uvicorn` process during a second back-to-back pass: active
   samples by stage (the deepest stage marker on each stack), as a share and as ms a request (samples x interval
   / requests, with the nominal and the effective interval).
3. **In process**: the same single-row request through `mlflow.pyfunc.load_model(...).predict` in a hot loop and
   with a sleep between calls (a cold model); and the answer's JSON as MLflow writes the frame against the
   proposed fix (plain records).

`--gc-freeze` makes every server call gc.collect(); gc.freeze() once its model is loaded. With `--models category`
the floor gets one request a round, as the champion does (with several models it gets one per model).

Every server is stopped by its process group (tools/servers.py) whatever happens.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import os
import re
import signal
import statistics
import subprocess
import textwrap
import time
from io import StringIO
from pathlib import Path

from benchmarks.common import PYTHON, REPO, Workspace, load_average, load_pyfunc, run_measured, say
from benchmarks.models import BENCHMARK_EXPERIMENT, Requests, identity_models
from benchmarks.rest_bench import FLOOR, _group_pids, _parsed, _payloads, interleaved, latency
from tools.servers import model_server, running

PY_SPY = str(Path(PYTHON).with_name("py-spy"))
MODELS_FILE = "serving_profile_models.json"
TIMERS_ENV = "SERVING_PROFILE_TIMERS"

# The serving process's stage timers. Only the uvicorn process with TIMERS_ENV set is patched.
SITECUSTOMIZE = textwrap.dedent('''
    import os
    import sys

    if os.path.basename(sys.argv[0] if sys.argv else "") == "uvicorn" and os.environ.get("%(env)s"):
        import functools
        import json
        import signal
        from time import perf_counter

        _out = os.environ["%(env)s"]
        _records = []
        _now = {}

        def _timed(name, fn, moments=False):
            @functools.wraps(fn)
            def wrapper(*args, **kwargs):
                begin = perf_counter()
                if moments:
                    _now[name + "_begin"] = begin
                try:
                    return fn(*args, **kwargs)
                finally:
                    end = perf_counter()
                    _now[name] = _now.get(name, 0.0) + end - begin
                    if moments:
                        _now[name + "_end"] = end
            return wrapper

        from fastapi import FastAPI
        _app_call = FastAPI.__call__

        async def _timed_app_call(self, scope, receive, send):
            global _now
            if scope.get("type") != "http" or scope.get("path") != "/invocations":
                return await _app_call(self, scope, receive, send)
            begin = perf_counter()
            _now = {"asgi_begin": begin}

            async def _send(message):
                await send(message)
                if message.get("type") == "http.response.body" and not message.get("more_body"):
                    _now["sent"] = perf_counter()  # the answer is on the socket: what the client waits for

            try:
                return await _app_call(self, scope, receive, _send)
            finally:
                _now["asgi_end"] = end = perf_counter()
                _now["asgi"] = end - begin
                _records.append(_now)

        FastAPI.__call__ = _timed_app_call

        import asyncio
        _to_thread = asyncio.to_thread

        async def _timed_to_thread(function, *args, **kwargs):
            _now["submitted"] = perf_counter()
            try:
                return await _to_thread(function, *args, **kwargs)
            finally:
                _now["resumed"] = perf_counter()

        asyncio.to_thread = _timed_to_thread

        import mlflow.pyfunc
        from mlflow.pyfunc import scoring_server as _server

        _server.invocations = _timed("invocations", _server.invocations, moments=True)
        for _name in ("_parse_json_data", "predictions_to_json"):
            setattr(_server, _name, _timed(_name, getattr(_server, _name)))
        mlflow.pyfunc.PyFuncModel.predict = _timed("pyfunc_predict", mlflow.pyfunc.PyFuncModel.predict)
        _init = _server.init

        def _init_patched(model):
            # Our classes come from the model's own code folder (MLflow reloads them from there): patch them
            # as the loaded model has them.
            try:
                python_model = model.unwrap_python_model()
            except Exception:
                python_model = None
            if python_model is not None and hasattr(python_model, "predictor"):
                kind = type(python_model)
                kind.predict = _timed("ledger_model_predict", kind.predict)
                predictor = type(python_model.predictor)
                for klass in predictor.__mro__:
                    if "prepare" in vars(klass):
                        klass.prepare = _timed("contract", klass.prepare)
                        break
                predictor.predict = _timed("predictor_predict", predictor.predict)
                if "answer" in vars(predictor):
                    predictor.answer = classmethod(_timed("answer", predictor.answer.__func__))
            return _init(model)

        _server.init = _init_patched

        import gc
        _gc_began = [0.0]

        def _gc_timer(phase, info):  # the collector's pauses, a request's total and its full (gen 2) collections
            if phase == "start":
                _gc_began[0] = perf_counter()
            else:
                _now["gc"] = _now.get("gc", 0.0) + perf_counter() - _gc_began[0]
                if info.get("generation") == 2:
                    _now["gc_full_collections"] = _now.get("gc_full_collections", 0) + 1

        gc.callbacks.append(_gc_timer)
        if os.environ.get("%(env)s_GC_FREEZE"):  # the candidate fix: the loaded model out of the collector's way
            _init_unfrozen = _server.init

            def _init_frozen(model):
                app = _init_unfrozen(model)
                gc.collect()
                gc.freeze()
                return app

            _server.init = _init_frozen

        def _dump(signum, frame):
            with open(_out + ".tmp", "w") as handle:
                json.dump(_records, handle)
            os.replace(_out + ".tmp", _out)

        signal.signal(signal.SIGUSR1, _dump)
''') % {"env": TIMERS_ENV}

# Stage markers for py-spy stacks: (stage, function name, file-path fragment). On each stack the deepest specific
# marker gives the stage; the generic ones (the web stack, asyncio, threads) only where no specific one is found.
SPECIFIC = [
    ("request parsing (MLflow _parse_json_data)", "_parse_json_data", "scoring_server"),
    ("JSON writing (MLflow predictions_to_json)", "predictions_to_json", "scoring_server"),
    ("MLflow handler, other (invocations)", "invocations", "scoring_server"),
    ("MLflow PyFuncModel.predict wrapper", "predict", "mlflow/pyfunc/__init__.py"),
    ("our pyfunc, other (LedgerModel.predict, serve)", "predict", "pyfunc_models/serving.py"),
    ("our pyfunc, other (LedgerModel.predict, serve)", "serve", "pyfunc_models/predictor.py"),
    ("contract (prepare_ledger)", "prepare", "pyfunc_models/predictor.py"),
    ("contract (prepare_ledger)", "as_frame", "pyfunc_models/ledger.py"),
    ("model", "predict", "pyfunc_models/category.py"),
    ("model", "predict", "pyfunc_models/cashflow.py"),
    ("answer building", "answer", "pyfunc_models/category.py"),
    ("identity model", "predict", "identity_model.py"),
]
GENERIC = [  # path fragments as py-spy shows them (relative to site-packages or the standard library)
    ("Starlette / FastAPI / uvicorn / h11", ("starlette/", "fastapi/", "uvicorn/", "h11/", "httptools", "anyio/")),
    ("uvicorn's access log (logging)", ("logging/",)),
    ("asyncio loop and worker-thread hand-off", ("asyncio/", "selectors.py", "concurrent/futures/", "threading.py",
                                                 "queue.py")),
]
# A thread waiting, not working (py-spy's own idle test does not tell them apart here: recorded with --idle).
IDLE_LEAVES = (("_worker", "concurrent/futures/thread.py"), ("select", "selectors.py"), ("wait", "threading.py"),
               ("get", "queue.py"))
_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>.*):(?P<line>\d+)\)$")


def _cashflow_answer_lines() -> range:
    """Lines of CashflowPredictor.predict that build its answer frame (its final `return pd.DataFrame(...)`)."""
    from pyfunc_models.cashflow import CashflowPredictor

    lines, first = inspect.getsourcelines(CashflowPredictor.predict)
    start = next(i for i, text in enumerate(lines) if text.strip().startswith("return pd.DataFrame("))
    return range(first + start, first + len(lines))


def classify(stack: str, cashflow_answer: range) -> str:
    specific, generic = None, None
    for frame in stack.split(";"):
        match = _FRAME.match(frame.strip())
        if not match:
            continue
        function, file, line = match["function"].rsplit(".", 1)[-1], match["file"], int(match["line"])
        for stage, name, fragment in SPECIFIC:
            if function == name and fragment in file:
                specific = stage
        if function == "predict" and "pyfunc_models/cashflow.py" in file and line in cashflow_answer:
            specific = "answer building"
        if specific is None:
            for stage, fragments in GENERIC:
                if any(file.startswith(fragment) or "/" + fragment in file for fragment in fragments):
                    generic = stage
    return specific or generic or "other (GC, import machinery, ...)"


def _idle(stack: str) -> bool:
    match = _FRAME.match(stack.rsplit(";", 1)[-1].strip())
    return bool(match) and any(match["function"].rsplit(".", 1)[-1] == name and fragment in match["file"]
                               for name, fragment in IDLE_LEAVES)


def read_profile(path: Path, requests_sent: int, rate: int, seconds: float) -> dict:
    """Active samples of a py-spy raw profile (recorded with --idle; waiting stacks dropped here) by stage: share,
    and ms a request = samples x interval / requests, with the nominal interval (1 / rate) and with the effective
    one (recording seconds / ticks; a tick is one sample of the event-loop thread, which --idle always records)."""
    answer_lines = _cashflow_answer_lines()
    stages: dict = {}
    ticks = idle = 0
    for text in path.read_text().splitlines():
        stack, _, count = text.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        if stack.startswith("<module> (uvicorn"):
            ticks += int(count)
        if _idle(stack):
            idle += int(count)
            continue
        stage = classify(stack, answer_lines)
        stages[stage] = stages.get(stage, 0) + int(count)
    total = sum(stages.values())
    interval = seconds / ticks if ticks else 1 / rate
    return {"active_samples": total, "idle_samples": idle, "ticks": ticks, "seconds": seconds, "rate": rate,
            "effective_interval_ms": interval * 1e3, "requests": requests_sent,
            "stages": {stage: {"samples": count, "share": count / total if total else 0.0,
                               "ms_per_request": count / rate / requests_sent * 1e3,
                               "ms_per_request_effective": count * interval / requests_sent * 1e3}
                       for stage, count in sorted(stages.items(), key=lambda item: -item[1])}}


# --- the models ------------------------------------------------------------------------------------------------

def reuse_workspace(path: str) -> tuple[Workspace, dict]:
    """A workspace kept by an earlier run (--keep): its store and its models, trained once."""
    saved = json.loads((Path(path) / MODELS_FILE).read_text())
    workspace = Workspace(keep=False)
    workspace.close()  # the fresh directory is not needed: point the object at the kept one
    workspace.root = Path(path)
    workspace.tracking_uri, workspace.logs, workspace.ledgers = saved["tracking_uri"], Path(path) / "logs", \
        Path(path) / "ledgers"
    workspace.keep = True
    for rows_seed, ledger in saved.get("ledgers", {}).items():
        rows, seed = map(int, rows_seed.split(":"))
        workspace.adopt_ledger(rows, Path(ledger), seed)
    return workspace, saved["uris"]


def train(workspace: Workspace, kinds: list, rows: int) -> dict:
    """Each model type trained by the real entry point (`python -m entrypoints.train <kind>`, the candidate the
    registry's gate would promote), and the identity floor; their URIs, saved in the workspace for --reuse."""
    import mlflow

    workspace.prepare_store(BENCHMARK_EXPERIMENT)
    ledger = workspace.ledger(rows)
    uris = {}
    for kind in kinds:
        say(f"training {kind} on {rows:,} rows (load average {load_average()})")
        measured = run_measured([PYTHON, "-m", "entrypoints.train", kind, "--data", str(ledger),
                                 "--experiment-name", BENCHMARK_EXPERIMENT], workspace, f"train_{kind}", echo=False)
        found = re.findall(r"^model: (\S+)", Path(measured.log).read_text(), re.M)
        if measured.returncode != 0 or not found:
            raise RuntimeError(f"train {kind} failed ({measured.returncode}):\n{measured.tail}")
        uris[kind] = found[-1]
        say(f"{kind}: {uris[kind]} in {measured.wall_seconds:.0f} s")
    mlflow.set_tracking_uri(workspace.tracking_uri)
    uris.update(identity_models(workspace))
    ledgers = {f"{rows}:{seed}": str(path) for (rows, seed), path in workspace._ledger_paths.items()}
    (workspace.root / MODELS_FILE).write_text(json.dumps({"tracking_uri": workspace.tracking_uri, "uris": uris,
                                                          "ledgers": ledgers}))
    return uris


# --- the serving process ---------------------------------------------------------------------------------------

def uvicorn_pid(server) -> int:
    """The process that serves: `mlflow models serve` starts uvicorn as a child in the same process group."""
    for pid in sorted(_group_pids(server.process.pid)):
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if any(Path(part.decode(errors="replace")).name == "uvicorn" for part in argv[:2]):
                return pid
    raise RuntimeError(f"no uvicorn process under {server.process.pid}")


def stage_timings(server, timers: Path, previous: int = 0) -> list:
    """The stage timers of the server's requests after the first `previous` (SIGUSR1 makes it write them)."""
    before = timers.stat().st_mtime_ns if timers.exists() else 0
    os.kill(uvicorn_pid(server), signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if timers.exists() and timers.stat().st_mtime_ns != before:
            with contextlib.suppress(json.JSONDecodeError):
                return json.loads(timers.read_text())[previous:]
        time.sleep(0.05)
    raise RuntimeError(f"the server wrote no stage timers to {timers}")


STAGES = ("asgi", "invocations", "_parse_json_data", "pyfunc_predict", "ledger_model_predict", "contract",
          "predictor_predict", "answer", "predictions_to_json")


def stage_medians(records: list) -> dict:
    """Median ms a request of each stage, and of the derived rests (what encloses a stage minus its parts)."""
    derived = []
    for r in records:
        row = {key: value for key, value in r.items() if not key.endswith(("_begin", "_end"))
               and key not in ("submitted", "resumed", "sent", "gc_full_collections")}
        row["asgi_minus_invocations"] = r["asgi"] - r.get("invocations", 0.0)
        if "submitted" in r and "invocations_begin" in r:
            row["asgi_before_to_thread"] = r["submitted"] - r["asgi_begin"]
            row["to_thread_start"] = r["invocations_begin"] - r["submitted"]  # worker thread wakes, takes the GIL
            row["to_thread_return"] = r["resumed"] - r["invocations_end"]  # the event loop wakes, takes the GIL
            row["asgi_after_to_thread"] = r["asgi_end"] - r["resumed"]
        if "sent" in r:
            row["until_sent"] = r["sent"] - r["asgi_begin"]
            row["after_to_thread_until_sent"] = r["sent"] - r.get("resumed", r["asgi_begin"])
        row["invocations_other"] = r.get("invocations", 0.0) - r.get("_parse_json_data", 0.0) \
            - r.get("pyfunc_predict", 0.0) - r.get("predictions_to_json", 0.0)
        if "predictor_predict" in r:
            row["model_without_answer"] = r["predictor_predict"] - r.get("answer", 0.0)
            row["pyfunc_wrapper"] = r["pyfunc_predict"] - r["ledger_model_predict"]
            row["ours_other"] = r["ledger_model_predict"] - r["contract"] - r["predictor_predict"]
        derived.append(row)
    keys = sorted({key for row in derived for key in row})
    return {key: statistics.median(row[key] for row in derived if key in row) * 1e3 for key in keys}


def _parts(record: dict, client: float) -> dict:
    """One request's client time as additive parts (seconds): the app until the worker thread is handed the
    request, the hand-off, MLflow's parsing, predict, JSON writing and the rest of `invocations`, the way back to
    the event loop, and the rest: the app after it (Starlette's middleware, the answer's write), loopback both ways,
    uvicorn's HTTP parsing, waking the server, the client. (The moment the answer is written is recorded too, but
    the write wakes the client, which may run before the server reads its clock: not a clean boundary.)"""
    inside = record["resumed"] - record["asgi_begin"]
    invocations = record["invocations"]
    return {
        "client": client,
        "app before the hand-off": record["submitted"] - record["asgi_begin"],
        "hand-off to the worker thread": record["invocations_begin"] - record["submitted"],
        "MLflow JSON parsing": record["_parse_json_data"], "pyfunc predict": record["pyfunc_predict"],
        "MLflow JSON writing": record["predictions_to_json"],
        "invocations, other": invocations - record["_parse_json_data"] - record["pyfunc_predict"]
        - record["predictions_to_json"],
        "back to the event loop": record["resumed"] - record["invocations_end"],
        "rest: app after the hand-back, loopback, uvicorn, client": client - inside,
        "(garbage collection, within the above)": record.get("gc", 0.0),
        "(full collections a request)": record.get("gc_full_collections", 0) / 1e3}


def decompose(samples: dict, champion: list, floor: list) -> dict:
    """Mean ms of each part for the champion's requests and for the floor requests sent beside them (paired with
    the client's timings in order), with the in-process means; means add up, so *beyond floor + model* in means
    is the sum of the parts' differences less the in-process difference."""
    def means(records, clients):
        rows = [_parts(record, client) for record, client in zip(records, clients)]
        return {key: statistics.fmean(row[key] for row in rows) * 1e3 for key in rows[0]}

    model, base = means(champion, samples["served"]), means(floor, samples["floor_served"])
    in_process = statistics.fmean(samples["in_process"]) * 1e3
    floor_in_process = statistics.fmean(samples["floor_in_process"]) * 1e3
    return {"champion": model, "floor": base, "in_process": in_process, "floor_in_process": floor_in_process,
            "beyond_floor_and_model_mean": model["client"] - base["client"] - (in_process - floor_in_process),
            "paired": len(champion) == len(samples["served"]) and len(floor) == len(samples["floor_served"])}


@contextlib.contextmanager
def py_spy(pid: int, out: Path, rate: int):
    """py-spy recording the process until the block ends (SIGINT makes it write the profile)."""
    command = [PY_SPY, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw", "--output", str(out),
               "--idle", "--nonblocking"]
    recorder = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    window = {"seconds": 0.0}
    try:
        time.sleep(1.5)  # attach
        if recorder.poll() is not None:
            raise RuntimeError(f"py-spy exited: {recorder.stdout.read().decode()[-500:]}")
        begin = time.monotonic()
        yield window
        window["seconds"] = time.monotonic() - begin + 1.5  # recorded from attach (about) to the stop
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(recorder.pid, signal.SIGINT)
        try:
            output, _ = recorder.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(recorder.pid, signal.SIGKILL)
            output, _ = recorder.communicate()
        (out.parent / (out.name + ".log")).write_bytes(output or b"")


# --- in process ------------------------------------------------------------------------------------------------

def in_process(model, rows, count: int, sleep: float) -> dict:
    """ms of `model.predict(rows)`: back to back (sleep 0), or with `sleep` seconds between calls."""
    samples = []
    for _ in range(count):
        if sleep:
            time.sleep(sleep)
        begin = time.perf_counter()
        model.predict(rows)
        samples.append(time.perf_counter() - begin)
    ordered = sorted(samples)
    return {"sleep_ms": sleep * 1e3, "n": count, "p50": ordered[len(ordered) // 2] * 1e3,
            "p90": ordered[int(len(ordered) * 0.9)] * 1e3, "min": ordered[0] * 1e3}


def json_costs(model, rows, count: int = 500) -> dict:
    """ms of MLflow writing the model's answer (`predictions_to_json`: DataFrame.to_dict(orient='records') then
    json.dump with NumpyEncoder), against the proposed fix (PROFILE.md): the answer turned into plain records by
    `_plain_records` and written by the same function (a list is passed through); and whether the texts match."""
    from mlflow.pyfunc.scoring_server import predictions_to_json

    answer = model.predict(rows)

    def timed(action):
        action()
        samples = []
        for _ in range(count):
            begin = time.perf_counter()
            action()
            samples.append(time.perf_counter() - begin)
        return statistics.median(samples) * 1e3

    def written(value):
        out = StringIO()
        predictions_to_json(value, out)
        return out.getvalue()

    return {"frame_ms": timed(lambda: predictions_to_json(answer, StringIO())),
            "plain_records_ms": timed(lambda: predictions_to_json(_plain_records(answer), StringIO())),
            "same_json": written(answer) == written(_plain_records(answer)), "json": written(answer)[:400]}


def _plain_records(frame) -> list:
    """The answer frame as plain records, as the proposed fix in LedgerModel.predict would hand them to MLflow when
    serving (a missing value, e.g. a Float64 confidence, becomes None: null, as MLflow writes it today)."""
    columns = list(frame.columns)
    return [dict(zip(columns, row)) for row in frame.to_numpy(dtype=object, na_value=None).tolist()]


# --- the run ---------------------------------------------------------------------------------------------------

def run(args) -> dict:
    if args.reuse:
        workspace, uris = reuse_workspace(args.reuse)
    else:
        workspace = Workspace(keep=args.keep)
        uris = None
    result = {"load_average": {"start": load_average()}, "args": vars(args)}
    import mlflow

    mlflow.set_tracking_uri(workspace.tracking_uri)  # in-process loads read the workspace's store, never ./mlflow.db
    try:
        if uris is None:
            uris = train(workspace, args.models, args.rows)
        kinds = [kind for kind in args.models if kind in uris]
        result["uris"] = uris
        site = workspace.root / "profile_site"
        site.mkdir(exist_ok=True)
        (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
        requests_ = Requests(workspace)
        names = [FLOOR, *kinds]
        count, warmup = args.requests, args.warmup
        bodies = {name: _payloads(requests_, name, 1, count + warmup) for name in names}
        # The floor's body for cash flow is the category row (as rest_bench does); one floor server serves both.
        timers = {name: workspace.logs / f"timers_{name}.json" for name in names}
        servers = {}
        for name in names:
            extra = {TIMERS_ENV: str(timers[name])}
            if args.gc_freeze:
                extra[TIMERS_ENV + "_GC_FREEZE"] = "1"
            env = workspace.env(PYTHONPATH=os.pathsep.join([str(site), str(REPO)]), **extra)
            servers[name] = model_server(uris[name], cwd=workspace.root, env=env, log_dir=workspace.logs,
                                         name=f"profile_{name}")
        models = {name: load_pyfunc(uris[name]) for name in names}
        say(f"serving {', '.join(names)} side by side on 127.0.0.1 (load average {load_average()})")
        with running(*servers.values()):
            seen = {name: 0 for name in names}

            def server_stages(name):
                records = stage_timings(servers[name], timers[name], seen[name])
                seen[name] += len(records)
                return records

            # 1. interleaved, as rest_bench times it
            say(f"interleaved: {count} rounds after {warmup} of warm-up (load average {load_average()})")
            samples = interleaved(servers, models, bodies, warmup)
            result["load_average"]["after_interleaved"] = load_average()
            floor_records = server_stages(FLOOR)
            result["interleaved"] = {}
            for name in kinds:
                s = {key: statistics.median(values) * 1e3 for key, values in samples[name].items()}
                records = server_stages(name)[warmup:]
                s["_records"] = records
                # the floor server answered every champion's rounds: its records are in the order sent
                s["beyond_floor_and_model"] = (s["served"] - s["floor_served"]
                                               - (s["in_process"] - s["floor_in_process"]))
                s["server"] = stage_medians(records)
                result["interleaved"][name] = s
            result["interleaved"][FLOOR] = {"server": stage_medians(floor_records[warmup * len(kinds):])}
            for index, name in enumerate(kinds):
                floor_own = floor_records[warmup * len(kinds) + index::len(kinds)]
                champion_own = result["interleaved"][name].pop("_records")
                result["interleaved"][name]["decomposition"] = decompose(
                    samples[name], champion_own, floor_own)
            for name in kinds:
                s = result["interleaved"][name]
                say(f"interleaved {name}: served {s['served']:.2f} ms, floor {s['floor_served']:.2f}, in process "
                    f"{s['in_process']:.2f} (floor {s['floor_in_process']:.2f}); beyond floor + model "
                    f"{s['beyond_floor_and_model']:+.2f} ms")

            # 2. back to back, each server alone, under py-spy
            result["back_to_back"] = {}
            for name in names:
                spy_out = workspace.logs / f"py-spy_{name}.txt"
                load_before = load_average()
                latency(servers[name].url, bodies[name][:warmup], warmup=0)
                server_stages(name)
                plain = latency(servers[name].url, bodies[name][warmup:], warmup=0)
                plain_stages = stage_medians(server_stages(name))
                with py_spy(uvicorn_pid(servers[name]), spy_out, args.rate) as window:
                    spied = latency(servers[name].url, bodies[name][warmup:], warmup=0)
                spied_stages = stage_medians(server_stages(name))
                profile = read_profile(spy_out, len(bodies[name]) - warmup, args.rate, window["seconds"])
                profile["py_spy_log"] = (spy_out.parent / (spy_out.name + ".log")).read_text()[-300:]
                result["back_to_back"][name] = {
                    "load_average": [load_before, load_average()],
                    "client": {k: v * 1e3 for k, v in plain.items() if k != "n"}, "server": plain_stages,
                    "client_under_py_spy": {k: v * 1e3 for k, v in spied.items() if k != "n"},
                    "server_under_py_spy": spied_stages, "py_spy": profile}
                say(f"back to back {name}: p50 {plain['p50'] * 1e3:.2f} ms ({spied['p50'] * 1e3:.2f} under py-spy), "
                    f"{profile['active_samples']} active samples (load average {load_average()})")
        result["load_average"]["after_serving"] = load_average()

        # 3. in process: hot against cold, and the answer's JSON
        result["in_process"] = {}
        for name in names:
            rows = _parsed(models[name], bodies[name][warmup])
            in_process(models[name], rows, 50, 0)
            runs = [in_process(models[name], rows, args.in_process_calls, sleep)
                    for sleep in (0, 0.002, 0.01, 0.02, 0.05)]
            result["in_process"][name] = {"runs": runs, "json": json_costs(models[name], rows)}
            say(f"in process {name}: " + ", ".join(f"sleep {r['sleep_ms']:.0f} ms: p50 {r['p50']:.3f}" for r in runs)
                + f"; JSON {result['in_process'][name]['json']['frame_ms']:.3f} ms as MLflow writes the frame, "
                  f"{result['in_process'][name]['json']['plain_records_ms']:.3f} as plain records")
        result["load_average"]["end"] = load_average()
    finally:
        workspace.close()
    result["workspace"] = str(workspace.root)
    return result


def report(result: dict) -> str:
    """The figures as markdown tables (pasted into benchmarks/PROFILE.md)."""
    lines = [f"Load average (1, 5, 15 min): {result['load_average']}", ""]
    inter = result["interleaved"]
    kinds = [name for name in inter if name != FLOOR]
    lines += ["Interleaved (as rest_bench): median ms a request", "",
              "| | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
    for key in ("served", "floor_served", "in_process", "floor_in_process", "beyond_floor_and_model"):
        lines.append(f"| {key} | " + " | ".join(f"{inter[k][key]:.3f}" for k in kinds) + " |")
    for name in kinds:
        d = inter[name]["decomposition"]
        lines += ["", f"Interleaved {name}: mean ms a request by part (paired: {d['paired']}); beyond floor + model in "
                      f"means {d['beyond_floor_and_model_mean']:+.3f} ms", "",
                  "| part | champion | floor | champion - floor |", "|---|---|---|---|"]
        for part in d["champion"]:
            lines.append(f"| {part} | {d['champion'][part]:.3f} | {d['floor'][part]:.3f} | "
                         f"{d['champion'][part] - d['floor'][part]:+.3f} |")
        lines.append(f"| in process (pyfunc.predict here) | {d['in_process']:.3f} | {d['floor_in_process']:.3f} | "
                     f"{d['in_process'] - d['floor_in_process']:+.3f} |")
    stage_names = sorted({s for name in inter for s in inter[name]["server"]}, key=_stage_order)
    lines += ["", "Server stage timers, interleaved: median ms a request", "",
              "| stage | " + " | ".join(inter) + " |", "|---|" + "---|" * len(inter)]
    for stage in stage_names:
        lines.append(f"| {stage} | " + " | ".join(f"{inter[n]['server'].get(stage, float('nan')):.3f}"
                                                  for n in inter) + " |")
    b2b = result["back_to_back"]
    stage_names = sorted({s for name in b2b for s in b2b[name]["server"]}, key=_stage_order)
    lines += ["", "Back to back (one server alone): client p50 and server stage timers, median ms a request", "",
              "| stage | " + " | ".join(b2b) + " |", "|---|" + "---|" * len(b2b),
              "| client p50 | " + " | ".join(f"{b2b[n]['client']['p50']:.3f}" for n in b2b) + " |",
              "| client p50 under py-spy | " + " | ".join(f"{b2b[n]['client_under_py_spy']['p50']:.3f}" for n in b2b)
              + " |"]
    for stage in stage_names:
        lines.append(f"| {stage} | " + " | ".join(f"{b2b[n]['server'].get(stage, float('nan')):.3f}" for n in b2b)
                     + " |")
    for name in b2b:
        profile = b2b[name]["py_spy"]
        lines += ["", f"py-spy, {name}: {profile['active_samples']} active samples ({profile['idle_samples']} idle) "
                      f"at {profile['rate']} Hz asked, {profile['ticks']} ticks in {profile['seconds']:.2f} s "
                      f"(effective interval {profile['effective_interval_ms']:.2f} ms), {profile['requests']} "
                      f"requests", "", "| stage | share | ms a request (nominal interval) | ms a request (effective) |",
                  "|---|---|---|---|"]
        for stage, figures in profile["stages"].items():
            lines.append(f"| {stage} | {figures['share'] * 100:.1f}% | {figures['ms_per_request']:.3f} | "
                         f"{figures['ms_per_request_effective']:.3f} |")
    lines += ["", "In process, `pyfunc.predict` of the same row: p50 ms by sleep between calls", "",
              "| model | " + " | ".join(f"sleep {r['sleep_ms']:.0f} ms" for r in
                                        next(iter(result["in_process"].values()))["runs"])
              + " | MLflow JSON of the answer frame | records (the fix), conversion included | same JSON |",
              "|---|" + "---|" * 8]
    for name, figures in result["in_process"].items():
        j = figures["json"]
        lines.append(f"| {name} | " + " | ".join(f"{r['p50']:.3f}" for r in figures["runs"])
                     + f" | {j['frame_ms']:.3f} | {j['plain_records_ms']:.3f} | {j['same_json']} |")
    return "\n".join(lines)


def _stage_order(stage: str) -> int:
    order = ["asgi", "asgi_minus_invocations", "asgi_before_to_thread", "to_thread_start", "to_thread_return",
             "asgi_after_to_thread", "until_sent", "after_to_thread_until_sent", "invocations", "_parse_json_data",
             "pyfunc_predict", "pyfunc_wrapper",
             "ledger_model_predict", "ours_other", "contract", "predictor_predict", "model_without_answer", "answer",
             "predictions_to_json", "invocations_other"]
    return order.index(stage) if stage in order else len(order)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=lambda text: text.split(","), default=["category", "cashflow"])
    parser.add_argument("--rows", type=int, default=20_000, help="ledger rows the models train on")
    parser.add_argument("--requests", type=int, default=600, help="timed requests a condition")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--rate", type=int, default=1000, help="py-spy samples a second")
    parser.add_argument("--in-process-calls", type=int, default=300)
    parser.add_argument("--gc-freeze", action="store_true",
                        help="every server calls gc.collect(); gc.freeze() once its model is loaded (a tried fix)")
    parser.add_argument("--reuse", help="a workspace kept by an earlier run (--keep): its models, no training")
    parser.add_argument("--keep", action="store_true", help="keep the workspace (for --reuse)")
    parser.add_argument("--output", help="write the figures as JSON here")
    args = parser.parse_args(argv)
    result = run(args)
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=1, default=str))
    print(report(result))


if __name__ == "__main__":
    main()
