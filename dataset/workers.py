"""Worker processes whose every exit is checked. Workers are started with ``spawn`` so that each one holds only what
it imports (a forked child would inherit, and be charged in RSS for, the parent's memory). A job that raises fails
the stage with the job's name; a worker that dies outright (killed for memory, a crash in native code) does too,
instead of hanging the pool.
"""
import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from pipeline.errors import DataError, ExtremeBertError
from pipeline.log_setup import setup_script_logging


def _init_worker():
    # One Rust thread per worker: the parallelism comes from the processes, and more threads would oversubscribe.
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    setup_script_logging()  # the level and log file the parent handed down


def run_jobs(function, jobs, workers: int, name_of):
    """Run ``function(job)`` for every job on ``workers`` processes, yielding ``(job, result)`` as they finish; at
    most ``workers`` jobs are in flight, so memory does not depend on the number of jobs. ``name_of(job)`` names a
    job in error messages (e.g. the shard file)."""
    jobs = list(jobs)
    if not jobs:
        return
    pending = iter(jobs)
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_init_worker) as pool:
        in_flight = {}

        def submit_next():
            job = next(pending, None)
            if job is not None:
                in_flight[pool.submit(function, job)] = job

        for _ in range(workers):
            submit_next()
        try:
            while in_flight:
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    job = in_flight.pop(future)
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        raise DataError(f"a worker process died while processing {name_of(job)} (killed for memory? "
                                        f"lower the worker count or raise the memory cap)") from None
                    except ExtremeBertError as e:
                        raise type(e)(f"{name_of(job)}: {e}") from None
                    except Exception as e:
                        raise DataError(f"{name_of(job)} failed: {type(e).__name__}: {e}") from e
                    yield job, result
                    submit_next()
        except BaseException:
            for future in in_flight:
                future.cancel()
            raise


def run_in_child(function, *args):
    """``function(*args)`` in a fresh process (keeps heavy imports such as transformers out of this one)."""
    for _, result in run_jobs(_call, [(function, args)], 1, lambda job: job[0].__name__):
        return result


def _call(packed):
    function, args = packed
    return function(*args)
