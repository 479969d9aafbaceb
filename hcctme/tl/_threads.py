"""Thread limits for work made of many small fits."""

from __future__ import annotations

from threadpoolctl import threadpool_limits


def one_blas_thread() -> threadpool_limits:
    """Limit BLAS to one thread (a context manager).

    Many tiny fits (PyDESeq2's L-BFGS-B per gene, ``call_states``' logistic regressions per seeding) are several times
    slower with a multi-threaded BLAS (thread start-up per call), the more so on a busy machine
    (``benchmarks/states_threads.py``: ``call_states`` on an 800-cell simulated cohort 6.6 s with one BLAS thread and
    8.9 s with two on an idle 2-core machine, 11 s and 48 s with a second such process beside it, as under
    ``pytest -n 2``; the same calls and confidences).
    """
    return threadpool_limits(limits=1, user_api="blas")
