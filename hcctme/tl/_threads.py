"""Thread limits for work made of many small fits."""

from __future__ import annotations

from threadpoolctl import threadpool_limits


def one_blas_thread() -> threadpool_limits:
    """Limit BLAS to one thread (a context manager).

    Many tiny fits (PyDESeq2's L-BFGS-B per gene, ``call_states``' logistic regressions per seeding) are several times
    slower with a multi-threaded BLAS (thread start-up per call), the more so on a busy machine (on two cores shared
    with another process, ``call_states`` on 300 cells of a simulated cohort took 48 s with two BLAS threads and 18 s
    with one, the same calls and confidences).
    """
    return threadpool_limits(limits=1, user_api="blas")
