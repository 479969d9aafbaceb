"""UCell scores (Andreatta & Carmona 2021) computed by numba kernels that read only nonzeros.

Semantics are those of the ``pyucell`` package (0.8, ``compute_ucell_scores`` with its defaults
``ties_method="average"``, ``missing_genes="impute"``, ``w_neg=1``), which the tests check to 1e-5:

* in each cell the *nonzero* values are ranked in decreasing order, ties get their average rank;
  zeros are not ranked: a gene at zero has rank ``max_rank`` (pyucell's sparse convention);
* ranks above ``max_rank`` are set to ``max_rank`` (a tied group straddling ``max_rank`` keeps its
  average rank when that average is ``<= max_rank``);
* a signature gene absent from the data counts as rank ``max_rank`` and still counts in ``n``;
* ``U = 1 - (sum(ranks) - n(n+1)/2) / (n * max_rank - n(n+1)/2)`` (0 when the denominator is 0);
* a signed signature scores ``max(0, U_up - w_neg * U_down)``.

(R UCell gives zeros and capped genes rank ``max_rank + 1`` and divides by ``n * max_rank``; its
scores differ from pyucell's by at most ``(n + 3) / (2 max_rank)``, 0.011 for 30 genes and
``max_rank=1500``. hcctme follows pyucell, the reference its tests check against.)

Kernel: each cell's stored values are read once (CSR row, in place; dense blocks are converted
to CSR one block at a time): the values of the signature genes are gathered and a histogram of the
row's distinct nonzero values is built in a small hash table. Zeros are never ranked or sorted.
The exact average rank of every signature gene then follows from sorting whichever set is smaller,
the row's distinct values (a dozen or so for count-derived data, by insertion sort) or the
signature genes' distinct values, and counting the nonzeros above and equal to each. Rank sums are
half-integers, accumulated exactly in float64. No cell depends on another, so results are
bit-identical whatever the chunking or the number of threads (cells are split between numba
threads with ``prange`` when ``n_jobs > 1``).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numba
import numpy as np
import scipy.sparse as sp
from numba import njit, prange

# flags written per cell by the kernels
FLAG_NONFINITE = np.int8(1)
FLAG_NEGATIVE = np.int8(2)


@dataclass(frozen=True)
class UCellPlan:
    """Signatures as index arrays over the columns of the matrix (AnnData-free).

    ``up[s]``/``down[s]`` are column positions of the genes present in the data;
    ``n_up[s]``/``n_down[s]`` count every gene of the signature, present or not (UCell imputes
    absent genes at ``max_rank``).
    """

    n_genes: int
    gene_map: np.ndarray  # (n_genes,) int32: compact index of a signature gene, -1 otherwise
    gs_ptr: np.ndarray  # (n_union + 1,) int64: compact gene -> sets (CSR pointer)
    gs_sets: np.ndarray  # set ids; set 2s = up genes of signature s, 2s + 1 = down genes
    set_n: np.ndarray  # (2 n_sigs,) float64: size of each set including absent genes
    n_union: int
    n_sigs: int


def make_plan(n_genes: int, up: list[np.ndarray], down: list[np.ndarray], n_up: list[int],
              n_down: list[int]) -> UCellPlan:
    """Build the kernel's index arrays from per-signature column positions."""
    n_sigs = len(up)
    members: list[np.ndarray] = []
    for s in range(n_sigs):
        members.append(np.unique(np.asarray(up[s], dtype=np.int64)))
        members.append(np.unique(np.asarray(down[s], dtype=np.int64)))
    allpos = np.concatenate(members) if members else np.zeros(0, np.int64)
    union = np.unique(allpos)
    gene_map = np.full(n_genes, -1, dtype=np.int32)
    gene_map[union] = np.arange(union.size, dtype=np.int32)
    # gene -> sets
    pairs_gene = []
    pairs_set = []
    for set_id, pos in enumerate(members):
        pairs_gene.append(gene_map[pos].astype(np.int64))
        pairs_set.append(np.full(pos.size, set_id, dtype=np.int64))
    g = np.concatenate(pairs_gene) if pairs_gene else np.zeros(0, np.int64)
    st = np.concatenate(pairs_set) if pairs_set else np.zeros(0, np.int64)
    order = np.lexsort((st, g))
    g, st = g[order], st[order]
    gs_ptr = np.zeros(union.size + 1, dtype=np.int64)
    np.add.at(gs_ptr, g + 1, 1)
    gs_ptr = np.cumsum(gs_ptr)
    set_n = np.zeros(2 * n_sigs, dtype=np.float64)
    set_n[0::2] = np.asarray(n_up, dtype=np.float64)
    set_n[1::2] = np.asarray(n_down, dtype=np.float64)
    return UCellPlan(n_genes=n_genes, gene_map=gene_map, gs_ptr=gs_ptr, gs_sets=st.astype(np.int64),
                     set_n=set_n, n_union=int(union.size), n_sigs=n_sigs)


# --------------------------------------------------------------------------------------------------
# Kernels
# --------------------------------------------------------------------------------------------------
@njit(cache=True, inline="always")
def _lower_bound(arr, n, x):
    """First index t in arr[:n] (ascending) with arr[t] >= x."""
    lo = 0
    hi = n
    while lo < hi:
        mid = (lo + hi) >> 1
        if arr[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, inline="always")
def _slot(key, mask):
    k = np.int64(key)
    k ^= k >> 33
    k *= np.int64(-49064778989728563)  # 0xff51afd7ed558ccd (murmur3 fmix64)
    k ^= k >> 33
    return k & mask


_FEW = 64  # rows with at most this many distinct nonzero values rank them by insertion sort


@njit(cache=True, inline="always")
def _add_rank(rank, mr, g, gs_ptr, gs_sets, acc):
    """Add one signature gene's capped rank (as an offset from max_rank) to its sets' sums."""
    if rank > mr:
        rank = mr
    delta = rank - mr
    for q in range(gs_ptr[g], gs_ptr[g + 1]):
        acc[gs_sets[q]] += delta


@njit(cache=True)
def _ranks_few(sv, su, k, tval, tcount, slots, n_slots, fval, fcount, fgt, mr, gs_ptr, gs_sets, acc):
    """Rank a row with few distinct values (count-derived data).

    Sort the values with their counts by insertion sort; a value's average rank is
    (nonzeros greater) + (ties + 1) / 2.
    """
    for q in range(n_slots):
        h = slots[q]
        x = tval[h]
        c = tcount[h]
        t = q
        while t > 0 and fval[t - 1] > x:  # slots hold distinct values
            fval[t] = fval[t - 1]
            fcount[t] = fcount[t - 1]
            t -= 1
        fval[t] = x
        fcount[t] = c
    run = 0
    for t in range(n_slots - 1, -1, -1):
        fgt[t] = run
        run += fcount[t]
    for j in range(k):
        t = _lower_bound(fval, n_slots, sv[j])
        _add_rank(fgt[t] + (fcount[t] + 1) * 0.5, mr, su[j], gs_ptr, gs_sets, acc)


@njit(cache=True)
def _ranks_many(sv, su, k, tval, tcount, slots, n_slots, spill, n_spill, usv, gt, eq, mr, gs_ptr,
                gs_sets, acc):
    """Rank a row with many distinct values.

    Sort the (fewer) distinct signature values instead, and count the row's values above / equal to
    each by one binary search per distinct row value.
    """
    for j in range(k):
        usv[j] = sv[j]
    usv[:k].sort()
    ku = 1
    for j in range(1, k):
        if usv[j] != usv[ku - 1]:
            usv[ku] = usv[j]
            ku += 1
    for t in range(ku + 1):
        gt[t] = 0
    for t in range(ku):
        eq[t] = 0
    lowest = usv[0]
    # a row value x (multiplicity c) is > usv[t] for every t < p and == usv[p] when it matches
    for q in range(n_slots):
        h = slots[q]
        x = tval[h]
        if x < lowest:
            continue
        p = _lower_bound(usv, ku, x)
        c = tcount[h]
        gt[p] += c
        if p < ku and usv[p] == x:
            eq[p] += c
    for q in range(n_spill):
        x = spill[q]
        if x < lowest:
            continue
        p = _lower_bound(usv, ku, x)
        gt[p] += 1
        if p < ku and usv[p] == x:
            eq[p] += 1
    run = 0  # gt[t] <- nonzeros strictly greater than usv[t]: suffix sums over p > t
    for t in range(ku, -1, -1):
        c = gt[t]
        gt[t] = run
        run += c
    for j in range(k):
        t = _lower_bound(usv, ku, sv[j])
        _add_rank(gt[t] + (eq[t] + 1) * 0.5, mr, su[j], gs_ptr, gs_sets, acc)


@njit(cache=True)
def _score_cell(vals, keys, cols, row_id, gene_map, gs_ptr, gs_sets, set_n, max_rank, w_neg, n_sigs,
                sv, su, usv, gt, eq, acc, tag, tkey, tval, tcount, slots, spill, fval, fcount, fgt,
                out_row):
    """Score one cell from its stored values and their columns; returns the cell's flags.

    One pass over the row gathers the signature genes' values and a histogram of the row's
    distinct nonzero values (open hash table keyed on the values' bits, tagged with the row id so
    it never needs clearing; a value whose slot is taken by another goes to ``spill``). The exact
    average ranks then come from sorting whichever is smaller: the row's distinct values or the
    signature's.
    """
    flag = 0
    k = 0
    n_slots = 0
    n_spill = 0
    mask = tag.shape[0] - 1
    for j in range(vals.shape[0]):
        x = vals[j]
        if x == 0:
            continue
        if not np.isfinite(x):
            flag |= 1
        elif x < 0:
            flag |= 2
        u = gene_map[cols[j]]
        if u >= 0:
            sv[k] = x
            su[k] = u
            k += 1
        key = keys[j]
        h = _slot(key, mask)
        if tag[h] != row_id:
            tag[h] = row_id
            tkey[h] = key
            tval[h] = x
            tcount[h] = 1
            slots[n_slots] = h
            n_slots += 1
        elif tkey[h] == key:
            tcount[h] += 1
        else:
            spill[n_spill] = x
            n_spill += 1
    for t in range(acc.shape[0]):
        acc[t] = 0.0
    mr = float(max_rank)
    if k > 0:
        if n_spill == 0 and n_slots <= _FEW:
            _ranks_few(sv, su, k, tval, tcount, slots, n_slots, fval, fcount, fgt, mr, gs_ptr, gs_sets,
                       acc)
        else:
            _ranks_many(sv, su, k, tval, tcount, slots, n_slots, spill, n_spill, usv, gt, eq, mr,
                        gs_ptr, gs_sets, acc)
    for s in range(n_sigs):
        up = _u_stat(set_n[2 * s], acc[2 * s], mr)
        down = _u_stat(set_n[2 * s + 1], acc[2 * s + 1], mr)
        score = up - w_neg * down
        if score < 0:
            score = 0.0
        out_row[s] = score
    return flag


@njit(cache=True, inline="always")
def _u_stat(n, acc, mr):
    if n == 0:
        return 0.0
    s_min = n * (n + 1.0) / 2.0
    s_max = n * mr
    if s_max == s_min:
        return 0.0
    rank_sum = n * mr + acc
    return 1.0 - (rank_sum - s_min) / (s_max - s_min)


_TABLE = 1024  # slots of the per-thread value histogram (a power of two)


@njit(cache=True)
def _buffers(n_union, n_sets, max_len, dtype_like):
    sv = np.empty(n_union, dtype=dtype_like.dtype)
    usv = np.empty(n_union, dtype=dtype_like.dtype)
    su = np.empty(n_union, dtype=np.int64)
    gt = np.empty(n_union + 1, dtype=np.int64)
    eq = np.empty(n_union, dtype=np.int64)
    acc = np.empty(n_sets, dtype=np.float64)
    tag = np.full(_TABLE, -1, dtype=np.int64)
    tkey = np.empty(_TABLE, dtype=np.int64)
    tval = np.empty(_TABLE, dtype=dtype_like.dtype)
    tcount = np.empty(_TABLE, dtype=np.int64)
    slots = np.empty(_TABLE, dtype=np.int64)
    spill = np.empty(max(max_len, 1), dtype=dtype_like.dtype)
    fval = np.empty(_FEW, dtype=dtype_like.dtype)
    fcount = np.empty(_FEW, dtype=np.int64)
    fgt = np.empty(_FEW, dtype=np.int64)
    return sv, usv, su, gt, eq, acc, tag, tkey, tval, tcount, slots, spill, fval, fcount, fgt


@njit(cache=True)
def _csr_range(indptr, indices, data, keys, start, stop, gene_map, gs_ptr, gs_sets, set_n, max_rank,
               w_neg, n_sigs, n_union, max_len, out, flags):
    sv, usv, su, gt, eq, acc, tag, tkey, tval, tcount, slots, spill, fval, fcount, fgt = _buffers(
        n_union, set_n.shape[0], max_len, data[:1])
    for i in range(start, stop):
        a = indptr[i]
        b = indptr[i + 1]
        flags[i] = _score_cell(data[a:b], keys[a:b], indices[a:b], i, gene_map, gs_ptr, gs_sets, set_n,
                               max_rank, w_neg, n_sigs, sv, su, usv, gt, eq, acc, tag, tkey, tval, tcount,
                               slots, spill, fval, fcount, fgt, out[i])


@njit(cache=True)
def _ucell_csr_serial(indptr, indices, data, keys, gene_map, gs_ptr, gs_sets, set_n, max_rank, w_neg,
                      n_sigs, n_union, max_len, out, flags):
    _csr_range(indptr, indices, data, keys, 0, out.shape[0], gene_map, gs_ptr, gs_sets, set_n, max_rank,
               w_neg, n_sigs, n_union, max_len, out, flags)


@njit(cache=True, parallel=True)
def _ucell_csr_parallel(indptr, indices, data, keys, gene_map, gs_ptr, gs_sets, set_n, max_rank, w_neg,
                        n_sigs, n_union, max_len, out, flags, n_blocks):
    n = out.shape[0]
    step = (n + n_blocks - 1) // n_blocks
    for blk in prange(n_blocks):
        start = blk * step
        stop = min(n, start + step)
        if start < stop:
            _csr_range(indptr, indices, data, keys, start, stop, gene_map, gs_ptr, gs_sets, set_n,
                       max_rank, w_neg, n_sigs, n_union, max_len, out, flags)


# --------------------------------------------------------------------------------------------------
# Python entry points
# --------------------------------------------------------------------------------------------------
def max_threads() -> int:
    return int(numba.config.NUMBA_NUM_THREADS)


@contextmanager
def numba_threads(n_jobs: int):
    """Set numba's thread count for the duration of a call, then restore it."""
    previous = numba.get_num_threads()
    numba.set_num_threads(max(1, min(int(n_jobs), max_threads())))
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def _as_kernel_dtype(values: np.ndarray) -> np.ndarray:
    """Cast values to a dtype the kernels are compiled for (float32 or float64).

    Integers are cast to float64 (exact below 2**53, so equal values stay equal) and other floats to
    the nearest of the two.
    """
    if values.dtype in (np.float32, np.float64):
        return values
    if values.dtype == np.float16:
        return values.astype(np.float32)
    return values.astype(np.float64)


def _keys(values: np.ndarray) -> np.ndarray:
    """Integer view of the values' bits (zero-copy): the key of the per-cell value histogram.

    Equal values have equal bits except 0.0 / -0.0, which the kernel skips as zeros.
    """
    return values.view(np.int32 if values.dtype == np.float32 else np.int64)


def score_csr_rows(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, plan: UCellPlan, *,
                   max_rank: int, w_neg: float = 1.0, n_jobs: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """UCell scores of the rows described by a CSR ``indptr`` (may be a slice of a larger matrix).

    ``indptr`` holds absolute offsets into ``indices``/``data``, so a row range of an in-memory
    CSR matrix is scored in place (only integer data is copied, chunk by chunk, to float64).
    Returns ``(scores float32 (rows, sigs), flags int8)``.
    """
    n_rows = indptr.shape[0] - 1
    out = np.zeros((n_rows, plan.n_sigs), dtype=np.float64)
    flags = np.zeros(n_rows, dtype=np.int8)
    if n_rows == 0:
        return out.astype(np.float32), flags
    first, last = int(indptr[0]), int(indptr[-1])
    indptr = np.asarray(indptr, dtype=np.int64) - first
    data = _as_kernel_dtype(np.ascontiguousarray(data[first:last]))
    indices = np.ascontiguousarray(indices[first:last])
    if indices.dtype not in (np.int32, np.int64):
        indices = indices.astype(np.int64)
    max_len = int(np.diff(indptr).max())
    args = (indptr, indices, data, _keys(data), plan.gene_map, plan.gs_ptr, plan.gs_sets, plan.set_n,
            int(max_rank), float(w_neg), plan.n_sigs, max(plan.n_union, 1), max_len, out, flags)
    if n_jobs > 1 and n_rows > 1:
        with numba_threads(n_jobs):
            _ucell_csr_parallel(*args, min(n_rows, 8 * numba.get_num_threads()))
    else:
        _ucell_csr_serial(*args)
    return out.astype(np.float32), flags


def score_block(block, plan: UCellPlan, *, max_rank: int, w_neg: float = 1.0,
                n_jobs: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """UCell scores of an in-memory block.

    Any scipy sparse format, or dense (converted to CSR one block at a time, which costs less than the
    dense array itself).
    """
    if not sp.issparse(block):
        block = sp.csr_matrix(_as_kernel_dtype(np.asarray(block)))
    elif block.format != "csr":
        block = block.tocsr()
    if not block.has_canonical_format:
        block = block.copy()
        block.sum_duplicates()
    return score_csr_rows(block.indptr, block.indices, block.data, plan, max_rank=max_rank,
                          w_neg=w_neg, n_jobs=n_jobs)
