"""Cells on Dask distributed: a LocalCluster of N single-threaded worker processes, or any running
cluster by scheduler address (tcp://host:8786) or scheduler file (the usual HPC pattern).

Each cell is still one papermill execution into its own run directory, now inside a worker; the
run and report folders must be on a filesystem that every worker sees at the same path (checked
before anything is submitted, as is the vae_lib version the workers import). Only the driver
builds the report. A cell that raises (its notebook failed) is retried ``retries`` times; a worker
that dies mid-cell is replaced by the scheduler and the cell, rescheduled, resumes from its
checkpoint (the dead worker's kernel exits with its parent, and the run-directory lock, an flock,
dies with it). A cell that keeps killing workers ends as KilledWorker: it is marked failed, the
others finish, and rerunning the same command resumes it.

This module is imported only when ``--workers`` > 1 or ``--scheduler`` is given; the default
serial loop does not need Dask.
"""
from __future__ import annotations

import logging
import os
import time
import uuid
from pathlib import Path

from ..errors import ConfigError


class CellFailed(RuntimeError):
    """A cell's notebook failed (its run directory holds failure.json); raised so Dask retries it."""


def _threads_of_this_worker() -> int:
    from distributed import get_worker

    return max(1, int(get_worker().state.nthreads))


# Failures that another attempt right away fixes: two kernels starting at once and colliding on a
# port; the run directory still locked by the kernel of a worker that just died (that kernel exits
# within a second or two of its parent, and the lock goes with it).
TRANSIENT = ("Address already in use", "Another process is running in")


def run_cell_task(cell, notebooks, data_dir, rerun, checkpoint_every=30.0, patience_seconds=60.0):
    """What a worker runs for one cell: ``run_cell`` with TensorFlow held to the worker's threads.
    Transient failures (:data:`TRANSIENT`) and a cell found busy (its run directory locked: the
    kernel of a worker that just died letting go, or another job running it) are tried again for up
    to ``patience_seconds`` (then a busy cell is left to the other process, reported 'busy'); any
    other failure raises CellFailed, so that Dask's retries apply."""
    from .io import read_json
    from .rundir import FAILURE, failure_summary
    from .cells import run_cell

    threads = _threads_of_this_worker()
    give_up = time.monotonic() + patience_seconds
    while True:
        status = run_cell(cell, notebooks, data_dir, rerun, threads=threads,
                          checkpoint_every=checkpoint_every)
        failure = read_json(cell.run_dir / FAILURE) if status == "failed" else {}
        message = failure.get("message") or ""
        # busy: a dead worker's kernel letting go, or another job's process
        again = status == "busy" or any(t in message for t in TRANSIENT)
        if not again or time.monotonic() > give_up:
            break
        time.sleep(2.0)
    if status != "failed":
        return status
    raise CellFailed(f"{cell.label}: {failure_summary(failure)}")


def _probe(token_paths: dict, expected: dict) -> dict:
    """Run on every worker: can it read the tokens the driver wrote, and which vae_lib is it?"""
    import vae_lib
    from vae_lib.pipeline.provenance import git_state

    seen = {name: (Path(path).is_file() and Path(path).read_text() == token)
            for name, (path, token) in token_paths.items()}
    return dict(seen=seen, version=vae_lib.__version__, commit=git_state()["commit"],
                host=os.uname().nodename, pid=os.getpid())


def check_workers(client, folders: dict) -> None:
    """Refuse (ConfigError) unless every worker sees each of ``folders`` (name -> path) at the same
    path and imports the same vae_lib (version and git commit) as the driver."""
    import vae_lib
    from .provenance import git_state

    tokens = {}
    for name, folder in folders.items():
        folder = Path(folder).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f".dask-check-{uuid.uuid4().hex}"
        path.write_text(path.name)
        tokens[name] = (str(path), path.name)
    try:
        answers = client.run(_probe, tokens, {})
    finally:
        for path, _ in tokens.values():
            Path(path).unlink(missing_ok=True)
    if not answers:
        raise ConfigError("The Dask cluster has no workers. Start some, or use --workers N.")
    mine = (vae_lib.__version__, git_state()["commit"])
    problems = []
    for worker, answer in sorted(answers.items()):
        missing = [name for name, ok in answer["seen"].items() if not ok]
        if missing:
            problems.append(f"{worker} ({answer['host']}) does not see the {' and '.join(missing)} "
                            f"folder(s) at {', '.join(str(folders[m]) for m in missing)}")
        if (answer["version"], answer["commit"]) != mine:
            problems.append(f"{worker} ({answer['host']}) runs vae_lib {answer['version']} at commit "
                            f"{answer['commit']}, the driver {mine[0]} at {mine[1]}")
    if problems:
        raise ConfigError("The Dask workers cannot run these cells: " + "; ".join(problems)
                          + ". Put the run and report folders on a filesystem every worker mounts "
                            "at the same path, and install the same checkout everywhere.")


def one_cell_per_worker(client) -> dict:
    """Submit options that keep a worker to one cell at a time. A cell's TensorFlow takes all its
    worker's threads, so a worker with T threads running T cells at once would run T x T threads.
    Single-threaded workers need nothing; workers with more threads must declare the resource
    ``cell=1`` (``dask worker --nthreads 8 --resources cell=1``), which every cell then asks for;
    a cluster with wider workers that do not is refused (ConfigError)."""
    workers = client.scheduler_info()["workers"]
    if all(w["nthreads"] == 1 for w in workers.values()):
        return {}
    lacking = sorted(f"{address} ({w['nthreads']} thread{'s' if w['nthreads'] > 1 else ''})"
                     for address, w in workers.items() if (w.get("resources") or {}).get("cell", 0) < 1)
    if lacking:
        raise ConfigError("A cell runs TensorFlow on all its worker's threads, so a worker with more "
                          "than one thread must run one cell at a time: start every worker with "
                          "`--resources cell=1` (e.g. `dask worker --nthreads 8 --resources cell=1`), "
                          "or with `--nthreads 1`. Without the resource: " + ", ".join(lacking) + ".")
    return {"resources": {"cell": 1}}


WORKER_WAIT_SECONDS = 120.0  # how long a scheduler's first worker may take to register


def wait_for_a_worker(client, scheduler: str, timeout: float | None = None) -> None:
    """Wait (at most ``timeout`` seconds, default WORKER_WAIT_SECONDS, or $VAE_WORKER_WAIT) for
    the scheduler to have a worker: batch systems (dask-jobqueue, a job array of `dask worker`)
    start workers after the scheduler, and the grid should not fail because the queue was slow.
    Then a ConfigError that says how to start one."""
    import os

    timeout = float(os.environ.get("VAE_WORKER_WAIT", WORKER_WAIT_SECONDS)) if timeout is None else timeout
    try:
        client.wait_for_workers(1, timeout=timeout)
    except TimeoutError:
        client.close()
        raise ConfigError(f"No Dask worker registered with the scheduler {scheduler} within {timeout:.0f} s. "
                          f"Start workers (`dask worker {scheduler if '://' in scheduler else '--scheduler-file ' + scheduler} "
                          f"--nthreads 1`), or wait longer with VAE_WORKER_WAIT=SECONDS.") from None


def connect(workers: int, scheduler: str | None):
    """A Client: to the scheduler given (address, or scheduler file), else to a new LocalCluster of
    ``workers`` single-threaded processes. Returns (client, cluster or None)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError("--workers and --scheduler run cells on Dask, which is not installed: "
                          "pip install -e '.[dask]' (or leave both out to run the cells one after "
                          "another).") from None

    if scheduler:
        if scheduler.endswith(".json") or Path(scheduler).is_file():
            if not Path(scheduler).is_file():
                raise ConfigError(f"No scheduler file at {scheduler}. Start the scheduler with "
                                  f"`dask scheduler --scheduler-file {scheduler}` first.")
            client = Client(scheduler_file=scheduler, timeout="30s")
        else:
            client = Client(scheduler, timeout="30s")
        wait_for_a_worker(client, scheduler)
        return client, None
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           dashboard_address=":0")
    return Client(cluster), cluster


def run_cells(cells, notebooks, data_dir=None, rerun=False, workers=2, scheduler=None, retries=1,
              runs_dir=None, report_dir=None, checkpoint_every=30.0, log=print) -> dict:
    """Run ``cells`` on Dask; counts of done/skipped/failed. Cells are independent: their order
    of completion does not matter, the records and the report do not depend on it."""
    client, cluster = connect(workers, scheduler)  # first: it says so if Dask is not installed
    from distributed import as_completed

    counts = {"done": 0, "skipped": 0, "failed": 0}
    try:
        if client.dashboard_link:
            log(f"Dask dashboard: {client.dashboard_link}")
        check_workers(client, {"runs": runs_dir, "report": report_dir})
        options = one_cell_per_worker(client)
        futures = {client.submit(run_cell_task, cell, notebooks, data_dir, rerun, checkpoint_every,
                                 key=f"cell-{cell.run_dir.name}", pure=False, retries=retries,
                                 **options): cell
                   for cell in cells}
        started = time.perf_counter()
        for i, future in enumerate(as_completed(futures), 1):
            cell = futures[future]
            try:
                status = future.result()
            except Exception as err:  # CellFailed after its retries, or KilledWorker
                status = "failed"
                _note_failure(cell, err)
            counts[status] = counts.get(status, 0) + 1
            running = sum(f.status == "pending" for f in futures)
            log(f"[{i}/{len(cells)}] {cell.label}: {status} "
                f"({counts['done'] + counts['skipped']} done, {running} waiting or running, "
                f"{counts['failed']} failed" + (f", {counts['busy']} busy in another process"
                                                 if counts.get("busy") else "")
                + f"; {time.perf_counter() - started:.0f} s)", flush=True)
    finally:
        client.close()
        if cluster is not None:
            # Every cell is over; a worker still shutting down after the nannies' 4 s is
            # killed, and saying so would only alarm.
            logging.getLogger("distributed.nanny").setLevel(logging.ERROR)
            cluster.close()
    return counts


def _note_failure(cell, err) -> None:
    """A cell that failed outside its notebook (a worker kept dying: KilledWorker) gets a
    failure.json and a failed record like any other; CellFailed already has them."""
    from .cells import write_failure
    from .rundir import CONFIG, copy_record

    if isinstance(err, CellFailed):
        return
    write_failure(cell, err)
    if (cell.run_dir / CONFIG).is_file():
        copy_record(cell.run_dir, cell.record_dir)
