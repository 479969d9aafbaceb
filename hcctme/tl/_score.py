"""``hcctme.tl.score``: signature scores for every cell, from a laptop to atlas scale.

This module handles AnnData (validation, gene matching, chunking, writing); the arithmetic lives
in AnnData-free private modules: :mod:`hcctme.tl._ucell` (numba kernels),
:mod:`hcctme.tl._mean_score` (scanpy ``score_genes`` semantics) and
:mod:`hcctme.tl._decoupler_score` (AUCell / ULM through decoupler).
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from hcctme import _validate
from hcctme._constants import Defaults, Keys, Suffix
from hcctme._logging import logger
from hcctme._settings import settings
from hcctme.tl import _dask, _decoupler_score, _mean_score, _ucell

METHODS = ("ucell", "mean", "aucell", "ulm")
RANK_METHODS = ("ucell", "aucell")
W_NEG = 1.0  # weight of genes_down in signed UCell scores (UCell / pyucell default)
CTRL_SIZE = 50  # scanpy score_genes defaults
N_BINS = 25

Method = Literal["ucell", "mean", "aucell", "ulm"]


class ScoringWarning(UserWarning):
    """Signatures left out for low gene coverage, or rank scores computed on scaled data."""


# --------------------------------------------------------------------------------------------------
# Public function
# --------------------------------------------------------------------------------------------------
def score(
    adata: AnnData,
    signatures: Any = None,
    *,
    method: Method = "ucell",
    layer: str | None = None,
    use_raw: bool | None = None,
    max_rank: int = Defaults.MAX_RANK,
    min_coverage: float = Defaults.MIN_COVERAGE,
    chunk_size: int | None = None,
    n_jobs: int | None = 1,
    random_state: int | None = Defaults.SEED,
    key_added: str = Keys.SCORES,
    copy: bool = False,
) -> AnnData | None:
    """Score every cell for gene signatures.

    Parameters
    ----------
    adata
        Cells x genes. ``X`` (or ``layer`` / ``raw``) may be a dense array, a scipy sparse matrix
        (CSR is read in place; CSC and others are converted one chunk at a time), a backed matrix
        (``anndata.read_h5ad(path, backed="r")``), or a dask array (scores are computed blockwise
        with ``map_blocks``, so the call runs on a ``dask.distributed`` cluster when a client is
        active). Normalised, log-transformed expression is what the methods expect; UCell and
        AUCell only use within-cell ranks, so counts give the same UCell scores up to ties.
    signatures
        Anything :func:`hcctme.sig.load` accepts: ``None`` (the whole curated library), library
        ids, a dict ``{name: [genes]}`` or ``{name: {"up": [...], "down": [...]}}``, a GMT or YAML
        path, a decoupler net, a :class:`~hcctme.sig.SignatureSet`.
    method
        ``"ucell"`` (default): native UCell, equal to the ``pyucell`` package (see
        :mod:`hcctme.tl._ucell` for the exact conventions): rank-based, in [0, 1], signed
        signatures score ``max(0, U_up - U_down)``, absent genes count as rank ``max_rank``.
        ``"mean"``: :func:`scanpy.tl.score_genes` (mean of the genes minus the mean of binned
        control genes, ``ctrl_size=50``, ``n_bins=25``), equal to scanpy's result for the same
        ``random_state``; signed signatures score ``score(up) - score(down)``.
        ``"aucell"`` / ``"ulm"``: :func:`decoupler.mt.aucell` / :func:`decoupler.mt.ulm`
        (AUCell scores ``genes_up``, reading the genes in the order of their names, so its ordinal ranks of
        tied values do not depend on the data's gene order; ULM uses signed weights). A cell with the same
        value in every gene (no counts) scores 0 under both.
    layer
        Score ``adata.layers[layer]`` instead of ``X``.
    use_raw
        Score ``adata.raw``. ``None`` follows scanpy: ``raw`` when it is set and no layer is given.
    max_rank
        UCell: ranks above this are capped (genes beyond the top ``max_rank`` of a cell count
        as absent). Lower it for shallow data (e.g. to the median genes per cell), but not below
        the longest signature's length (a ValueError says which: as in R UCell, a longer signature's
        U statistic leaves [0, 1]).
    min_coverage
        Signatures with a smaller fraction of their genes found in the data, or with fewer than
        ``Defaults.MIN_GENES`` (3) genes found, are left out with one warning that lists them (each with its
        reason). A library signature of fewer than 3 genes in all (TAM3_MT1G) is never scored and only logged.
    chunk_size
        Cells read and scored at once; bounds memory. Default ``Defaults.CHUNK_SIZE`` (10,000)
        for in-memory and backed sparse data, blocks of about 256 MB for a dense matrix on disk,
        and the array's own row chunks for dask arrays. A backed matrix should be CSR (row
        slices of a CSC file read every column).
    n_jobs
        Threads for the compiled kernels (cells are scored in parallel); ``-1`` uses every core
        numba may use, ``None`` takes ``hcctme.settings.n_jobs``. For dask arrays the parallelism
        is dask's (its scheduler or cluster) and each block is scored by a single-threaded kernel.
        Scores do not depend on ``n_jobs`` or ``chunk_size``.
    random_state
        Seed for the control-gene draw of ``method="mean"`` (unused by the other methods).
    key_added
        Scores go to ``adata.obsm[key_added]`` (DataFrame, cells x signatures, float32) and the
        parameters to ``adata.uns[key_added + "_params"]``: tool, method, params, library_version,
        coverage (fraction of each requested signature's genes found), genes_used (per scored
        signature), genes_down_used (signed signatures), n_genes, dropped. Read them back with
        :func:`hcctme.get.scores` and :func:`hcctme.get.params`.
    copy
        Return a scored copy instead of writing into ``adata``. A backed AnnData cannot be copied
        without loading its matrix, so ``copy=True`` with a backed object raises; with
        ``copy=False`` the scores of a backed object go to its in-memory ``obsm``/``uns`` (write
        them out with ``adata.write()`` if needed).

    Returns
    -------
    ``None``, or the scored copy when ``copy=True``.

    Notes
    -----
    Rank methods on data with negative values (scaled data): UCell and AUCell ranks remain
    defined, but ranks of scaled values no longer mean "expressed highly in this cell"; a
    :class:`ScoringWarning` says so and the scores are still returned. Score log-normalised
    data (``layer=`` or ``use_raw=``) for meaningful rank scores. ``mean`` and ``ulm`` on raw counts
    (a sample of rows read as non-negative integers) warn too: their scores would move with depth.

    NaN or infinite values raise a ValueError (nothing is written). Gene names come from
    ``var["hcctme_symbol"]`` when :func:`hcctme.pp.harmonize_genes` wrote it.
    """
    params = _check_params(adata, method=method, max_rank=max_rank, min_coverage=min_coverage,
                           chunk_size=chunk_size, n_jobs=n_jobs, random_state=random_state,
                           key_added=key_added, copy=copy, use_raw=use_raw)
    X, var_names = _validate.matrix(adata, layer=layer, use_raw=use_raw)
    used_raw = _validate.reads_raw(adata, layer, use_raw)
    names = _validate.unique_symbols(adata, var_names, raw=used_raw)
    _check_matrix(X, adata)
    if method not in RANK_METHODS and _validate.matrix_kind(X, check_finite=False) == "counts":
        warnings.warn(
            f"the matrix scored holds raw counts: {method} reads expression values as they are, so its scores move "
            "with each cell's sequencing depth (the rank methods do not); score log-normalised expression "
            "(sc.pp.normalize_total + sc.pp.log1p, or layer= / use_raw= naming it), or method='ucell'",
            ScoringWarning, stacklevel=2)
    sigs = _load_signatures(signatures)
    matched = _match(sigs, names, min_coverage=params["min_coverage"], method=method)
    if method == "ucell":
        _check_max_rank(matched, params["max_rank"])
    source = _Source.of(X, params["chunk_size"], backed=adata.isbacked)

    with _ucell.numba_threads(params["n_jobs"]):
        if method == "ucell":
            # dask blocks run in the scheduler's threads/workers: the kernel is serial inside each
            kernel_jobs = 1 if source.kind == "dask" else params["n_jobs"]
            engine: _Engine = _UCellEngine.build(matched, n_genes=X.shape[1], max_rank=params["max_rank"],
                                                 n_jobs=kernel_jobs)
        elif method == "mean":
            means = _gene_means(source)
            engine = _MeanEngine.build(matched, means, random_state=params["random_state"])
        else:
            engine = _DecouplerEngine.build(matched, names, method=method,
                                            chunk_rows=source.chunk_rows)
        values, nonfinite, negative = source.run(engine)

    if nonfinite:
        raise ValueError(_NONFINITE)
    if negative and method in RANK_METHODS:
        warnings.warn(
            f"the matrix scored has negative values (scaled data?): {method} ranks genes within each "
            "cell, which is defined but loses its meaning on centred data; score log-normalised "
            "expression instead (layer=..., use_raw=True)",
            ScoringWarning,
            stacklevel=2,
        )

    # ---- nothing is written before this line ----
    adata = adata.copy() if copy else adata
    frame = pd.DataFrame(values, index=adata.obs_names.copy(), columns=pd.Index(matched.ids))
    adata.obsm[key_added] = frame
    call = dict(signatures=_signatures_arg(signatures, sigs), method=method, layer=layer, use_raw=use_raw,
                max_rank=max_rank, min_coverage=min_coverage, chunk_size=chunk_size, n_jobs=n_jobs,
                random_state=random_state)
    adata.uns[key_added + Suffix.PARAMS] = _info(method, call, used_raw=used_raw, sigs=sigs, matched=matched)
    logger.info("scored %d signatures (%s) in %d cells -> adata.obsm[%r], parameters in adata.uns[%r]",
                len(matched.ids), method, adata.n_obs, key_added, key_added + Suffix.PARAMS)
    return adata if copy else None


_NONFINITE = _validate.NONFINITE_MESSAGE


# --------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------
def _check_params(adata: Any, **kw: Any) -> dict[str, Any]:
    _validate.anndata(adata, writes=True)
    _validate.choice(kw["method"], METHODS, name="method")
    out = {
        "max_rank": _validate.positive_int(kw["max_rank"], name="max_rank"),
        "min_coverage": _validate.fraction(kw["min_coverage"], name="min_coverage"),
        "chunk_size": _validate.positive_int(kw["chunk_size"], name="chunk_size", allow_none=True),
        "n_jobs": _n_jobs(kw["n_jobs"]),
        "random_state": _validate.random_state(kw["random_state"], allow_none=True),
    }
    _validate.key_added(kw["key_added"], adata=adata, slots=("obsm",), tool="hcctme.tl.score")
    _validate.copy_flag(kw["copy"], adata=adata, tool="hcctme.tl.score", writes="obsm and uns")
    return out


def _check_max_rank(m: _Matched, max_rank: int) -> None:
    """Refuse a signature longer than max_rank, as R UCell does: its U statistic leaves [0, 1] (reverses past 2x)."""
    longer = [f"{sid} ({max(n_up, n_down)} genes)" for sid, n_up, n_down in zip(m.ids, m.n_up, m.n_down, strict=True)
              if max(n_up, n_down) > max_rank]
    if longer:
        raise ValueError(
            f"max_rank={max_rank} is below the length of signature(s) {_validate._preview(longer)}: UCell ranks "
            "only the top max_rank genes of each cell, so a longer signature's score leaves [0, 1] and its order "
            "turns over. Raise max_rank to at least the longest signature's length (--max-rank), or leave those "
            "signatures out (signatures=)"
        )


def _n_jobs(value: Any) -> int:
    if value is None:
        value = settings.n_jobs
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"n_jobs must be an integer (-1 for all cores), got {type(value).__name__} ({value!r})")
    if value == -1:
        return _ucell.max_threads()
    if value < 1:
        raise ValueError(f"n_jobs must be >= 1 or -1 (all cores), got {value}")
    return int(min(value, _ucell.max_threads()))


def _check_matrix(X: Any, adata: AnnData) -> None:
    shape = getattr(X, "shape", None)
    if shape is None or len(shape) != 2:
        raise TypeError(f"the expression matrix must be 2-D (cells x genes), got {type(X).__name__}")
    if shape[0] != adata.n_obs:
        raise ValueError(f"the expression matrix has {shape[0]} rows but adata has {adata.n_obs} cells")
    if shape[1] == 0:
        raise ValueError("the expression matrix has no genes")
    dtype = np.dtype(X.dtype)
    if dtype == np.bool_ or not np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.complexfloating):
        raise TypeError(f"the expression matrix has dtype {dtype}; expected real numbers")


def _load_signatures(signatures: Any):
    from hcctme import sig

    sigs = sig.load(signatures)
    if len(sigs) == 0:
        raise ValueError("no signatures to score: the signature set is empty")
    return sigs


# --------------------------------------------------------------------------------------------------
# Gene matching and coverage
# --------------------------------------------------------------------------------------------------
@dataclass
class _Matched:
    ids: list[str]
    up: list[np.ndarray]  # column positions of present genes_up
    down: list[np.ndarray]
    n_up: list[int]  # genes_up in the signature, present or not
    n_down: list[int]
    weights: list[dict[str, float]]
    coverage: dict[str, float]
    n_genes: dict[str, int]
    genes_used: dict[str, list[str]] = field(default_factory=dict)
    genes_down_used: dict[str, list[str]] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)


def _data_names(sig, first: Mapping[str, int]) -> dict[str, str]:
    """A user's gene the data lack, renamed to its current symbol where the data hold that (IL8 -> CXCL8).

    After :func:`hcctme.pp.harmonize_genes` the data name genes by their current symbols; a gene set written with a
    previous symbol or an alias would otherwise lose the gene without a word. The library's genes are current
    symbols, so only the user's sets are read this way.
    """
    if sig.collection != "user":
        return {}
    from hcctme.sig._genes import current_symbol

    out = {}
    for gene in dict.fromkeys(str(g) for g in (*sig.genes_up, *sig.genes_down)):
        if gene not in first and (current := current_symbol(gene)) is not None and current in first:
            out[gene] = current
    return out


def _match(sigs, names: pd.Index, *, min_coverage: float, method: str) -> _Matched:
    """Each signature's genes among ``names`` (unique: :func:`hcctme._validate.unique_symbols`)."""
    first = {name: pos for pos, name in enumerate(pd.Index(names).astype(str))}
    m = _Matched([], [], [], [], [], [], {}, {})
    low: list[tuple[str, bool]] = []  # (entry, whether a lower min_coverage would score it)
    yours: list[tuple[str, bool]] = []  # the user's gene sets (collection "user"): named first, never cut
    short_yours: list[str] = []  # fewer than MIN_GENES genes in all: no data scores them
    short_library: list[str] = []
    renamed: dict[str, dict[str, str]] = {}
    for sig in sigs:
        named = _data_names(sig, first)
        if named:
            renamed[sig.id] = named
        up = list(dict.fromkeys(named.get(str(g), str(g)) for g in sig.genes_up))
        down = list(dict.fromkeys(named.get(str(g), str(g)) for g in sig.genes_down))
        genes = list(dict.fromkeys(up + down))
        up_p = [g for g in up if g in first]
        down_p = [g for g in down if g in first]
        present = list(dict.fromkeys(up_p + down_p))
        coverage = len(present) / len(genes) if genes else 0.0
        m.coverage[sig.id] = float(coverage)
        m.n_genes[sig.id] = len(genes)
        used = up_p if method == "aucell" else present
        if len(genes) < Defaults.MIN_GENES:  # no data and no min_coverage can score it
            (short_yours if sig.collection == "user" else short_library).append(f"{sig.id} ({len(genes)} genes)")
            m.dropped.append(sig.id)
            continue
        if coverage < min_coverage or len(used) < Defaults.MIN_GENES or not up_p:
            entry = f"{sig.id} ({len(present)}/{len(genes)} genes, {coverage:.0%})"
            if coverage >= min_coverage and len(present) >= Defaults.MIN_GENES:  # enough genes, too few up genes
                why = "aucell reads genes_up only" if method == "aucell" else "none of its genes_up is found"
                entry = f"{sig.id} ({len(up_p)} of its {len(up)} genes_up found: {why})"
            elif len(used) < Defaults.MIN_GENES:  # below the floor: no min_coverage scores it
                entry = f"{sig.id} ({len(used)}/{len(genes)} genes found, fewer than {Defaults.MIN_GENES})"
            lowering_helps = len(used) >= Defaults.MIN_GENES and bool(up_p)
            (yours if sig.collection == "user" else low).append((entry, lowering_helps))
            m.dropped.append(sig.id)
            continue
        m.ids.append(sig.id)
        m.up.append(np.array([first[g] for g in up_p], dtype=np.int64))
        m.down.append(np.array([first[g] for g in down_p], dtype=np.int64))
        m.n_up.append(len(up))
        m.n_down.append(len(down))
        m.weights.append({named.get(str(g), str(g)): w for g, w in sig.weights.items()})
        m.genes_used[sig.id] = used
        if down_p and method != "aucell":
            m.genes_down_used[sig.id] = down_p
    if not m.ids:
        best = max(m.coverage.items(), key=lambda kv: kv[1])
        up_only = "; aucell reads genes_up only" if method == "aucell" else ""
        helps = any(h for _, h in low + yours)
        if len(short_yours) == len(sigs):  # the sets are short, not the data
            raise _validate.TooFewGenesError(
                f"your gene set(s) {', '.join(short_yours)} have fewer than {Defaults.MIN_GENES} genes in all, "
                "which no min_coverage scores: add genes to each set (or read the genes one by one)")
        raise _validate.TooFewGenesError(
            f"none of the {len(sigs)} signature(s) has enough genes in the data (needs >= "
            f"{min_coverage:.0%} of its genes and >= {Defaults.MIN_GENES} genes found, genes_up among them"
            f"{up_only}; best coverage: {best[0]} with {best[1]:.0%}). {_names_hint(names, lowering_helps=helps)}"
            + (f" Your gene set(s) {', '.join(short_yours)} have fewer than {Defaults.MIN_GENES} genes in all."
               if short_yours else "")
        )
    if renamed:
        logger.info("genes read under the data's current symbols (previous symbols or aliases in the gene sets): %s",
                    "; ".join(f"{k}: {', '.join(f'{o} -> {n}' for o, n in v.items())}" for k, v in renamed.items()))
    if short_library:
        logger.info("signature(s) of fewer than %d genes are never scored: %s", Defaults.MIN_GENES,
                    ", ".join(short_library))
    if low or yours or short_yours:
        warnings.warn(_left_out(low, yours, short_yours, n_sigs=len(sigs), min_coverage=min_coverage),
                      ScoringWarning, stacklevel=3)
    return m


def _left_out(low: list[tuple[str, bool]], yours: list[tuple[str, bool]], short_yours: list[str], *, n_sigs: int,
              min_coverage: float) -> str:
    """The warning naming the signatures left out, the user's first, each group with the fix that works for it.

    ``low`` / ``yours``: (entry, whether a lower ``min_coverage`` would score it) of the library's / the user's.
    """
    def listed(entries: list[str], mine: list[str]) -> str:
        shown = ", ".join(entries[:30]) + (f", ... ({len(entries)} in all)" if len(entries) > 30 else "")
        return "; ".join(filter(None, [f"your gene set(s) {', '.join(mine)}" if mine else "", shown]))

    parts = []
    coverage = listed([e for e, h in low if h], [e for e, h in yours if h])
    if coverage:
        parts.append(f"fewer than {min_coverage:.0%} of their genes found in the data: {coverage}. Lower "
                     "min_coverage (--min-coverage) to score them anyway")
    floor = listed([e for e, h in low if not h], [e for e, h in yours if not h])
    if floor:
        parts.append(f"fewer than {Defaults.MIN_GENES} of their genes (or none of genes_up) found: {floor}, which no "
                     "min_coverage scores")
    if short_yours:
        parts.append(f"your gene set(s) {', '.join(short_yours)} have fewer than {Defaults.MIN_GENES} genes in all, "
                     "which no min_coverage scores (add genes, or read them one by one)")
    return (f"{len(low) + len(yours) + len(short_yours)} of {n_sigs} signature(s) left out: " + "; ".join(parts)
            + ". Run hcctme.pp.harmonize_genes(adata) if gene names differ (aliases, Ensembl ids, mouse)")


def _names_hint(names: pd.Index, *, lowering_helps: bool = True) -> str:
    """What to do when no signature has enough genes, from what the gene names look like."""
    from hcctme.sig import _genes

    kind = _genes.gene_id_type(list(names))
    if kind["id_type"] == "symbol" and kind["species"] == "human":
        fix = ("lower min_coverage (--min-coverage) to score them anyway" if lowering_helps else
               f"no min_coverage scores them: each has fewer than {Defaults.MIN_GENES} of its genes measured")
        return (f"The data's {len(names):,} gene names are human symbols: they measure too few of these "
                f"signatures' genes (a targeted panel or a gene subset?); {fix}")
    return (f"The data's gene names look like {_validate._preview(names[:5])}: if they are Ensembl ids or mouse "
            "symbols, run hcctme.pp.harmonize_genes(adata) first; otherwise check the species and the signatures' "
            "gene symbols")


# --------------------------------------------------------------------------------------------------
# Engines: one block of rows in, scores out (picklable, for dask workers)
# --------------------------------------------------------------------------------------------------
class _Engine(ABC):
    n_sigs: int

    @abstractmethod
    def block(self, block: Any) -> tuple[np.ndarray, bool, bool]:
        """Scores (rows x signatures) of one block of rows, and its negative / non-finite flags."""

    def csr_rows(self, X: sp.spmatrix, start: int, stop: int) -> tuple[np.ndarray, bool, bool]:
        return self.block(X[start:stop])


def _block_flags(block: Any) -> tuple[bool, bool]:
    values = block.data if sp.issparse(block) else np.asarray(block)
    if values.size == 0:
        return False, False
    if np.issubdtype(values.dtype, np.integer):
        return False, bool(values.min() < 0)
    finite = np.isfinite(values)
    nonfinite = not bool(finite.all())
    negative = bool(np.any(values[finite] < 0)) if nonfinite else bool(values.min() < 0)
    return nonfinite, negative


@dataclass
class _UCellEngine(_Engine):
    plan: _ucell.UCellPlan
    max_rank: int
    n_jobs: int

    @classmethod
    def build(cls, m: _Matched, *, n_genes: int, max_rank: int, n_jobs: int) -> _UCellEngine:
        plan = _ucell.make_plan(n_genes, m.up, m.down, m.n_up, m.n_down)
        return cls(plan=plan, max_rank=max_rank, n_jobs=n_jobs)

    @property
    def n_sigs(self) -> int:  # type: ignore[override]
        return self.plan.n_sigs

    def _finish(self, result: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, bool, bool]:
        values, flags = result
        any_flags = np.bitwise_or.reduce(flags) if flags.size else 0
        return values, bool(any_flags & _ucell.FLAG_NONFINITE), bool(any_flags & _ucell.FLAG_NEGATIVE)

    def block(self, block: Any) -> tuple[np.ndarray, bool, bool]:
        return self._finish(_ucell.score_block(block, self.plan, max_rank=self.max_rank, w_neg=W_NEG,
                                               n_jobs=self.n_jobs))

    def csr_rows(self, X: sp.spmatrix, start: int, stop: int) -> tuple[np.ndarray, bool, bool]:
        # zero-copy: the kernel reads the rows in place through absolute indptr offsets
        return self._finish(_ucell.score_csr_rows(X.indptr[start:stop + 1], X.indices, X.data, self.plan,
                                                  max_rank=self.max_rank, w_neg=W_NEG, n_jobs=self.n_jobs))


@dataclass
class _MeanEngine(_Engine):
    index: _mean_score.SetIndex
    layout: list[tuple[int, int, int, int]]
    n_sigs: int

    @classmethod
    def build(cls, m: _Matched, gene_means: np.ndarray, *, random_state: int | None) -> _MeanEngine:
        if not np.all(np.isfinite(gene_means)):
            raise ValueError(_NONFINITE)
        n_genes = gene_means.shape[0]
        cut = _mean_score.bins(gene_means, N_BINS)
        sets: list[np.ndarray] = []
        layout = []
        for sid, up, down in zip(m.ids, m.up, m.down, strict=True):
            cols = []
            for part in (up, down):
                if part.size == 0:
                    cols += [-1, -1]
                    continue
                ctrl = _mean_score.control_genes(part, cut, n_genes=n_genes, ctrl_size=CTRL_SIZE,
                                                 random_state=random_state)
                if ctrl.size == 0:
                    raise ValueError(
                        f"signature {sid!r}: no control genes found in its expression bins (method='mean'); "
                        "the data has too few genes outside the signature"
                    )
                cols += [len(sets), len(sets) + 1]
                sets += [part, ctrl]
            layout.append(tuple(cols))
        return cls(index=_mean_score.set_index(n_genes, sets), layout=layout, n_sigs=len(m.ids))

    def block(self, block: Any) -> tuple[np.ndarray, bool, bool]:
        nonfinite, negative = _block_flags(block)
        means = _mean_score.set_means(block, self.index)
        return _mean_score.combine(means, self.layout).astype(np.float32), nonfinite, negative

    def csr_rows(self, X: sp.spmatrix, start: int, stop: int) -> tuple[np.ndarray, bool, bool]:
        first, last = int(X.indptr[start]), int(X.indptr[stop])
        nonfinite, negative = _block_flags(X.data[first:last])
        means = _mean_score.set_means_csr(X.indptr[start:stop + 1], X.indices, X.data, self.index)
        return _mean_score.combine(means, self.layout).astype(np.float32), nonfinite, negative


@dataclass
class _DecouplerEngine(_Engine):
    method: str
    net: pd.DataFrame
    ids: list[str]
    var_names: pd.Index
    bsize: int
    n_sigs: int
    order: np.ndarray | None  # AUCell: the genes in the order of their names, drawn once for every block

    @classmethod
    def build(cls, m: _Matched, names: pd.Index, *, method: str, chunk_rows: int) -> _DecouplerEngine:
        names = pd.Index(names).astype(str)  # unique (:func:`hcctme._validate.unique_symbols`)
        net = _decoupler_score.make_net(m.ids, names, m.up, m.down, m.weights, method)
        bsize = _decoupler_score.batch_size(len(names), chunk_rows)
        order = np.argsort(names.to_numpy(dtype=str), kind="stable") if method == "aucell" else None
        return cls(method=method, net=net, ids=list(m.ids), var_names=names, bsize=bsize, n_sigs=len(m.ids),
                   order=order)

    def block(self, block: Any) -> tuple[np.ndarray, bool, bool]:
        nonfinite, negative = _block_flags(block)
        if nonfinite:  # decoupler would fail on an assertion; report it as hcctme does
            return np.zeros((block.shape[0], self.n_sigs), dtype=np.float32), True, negative
        values = _decoupler_score.score_block(block, method=self.method, net=self.net, ids=self.ids,
                                              var_names=self.var_names, tmin=Defaults.MIN_GENES,
                                              bsize=self.bsize, order=self.order)
        return values, nonfinite, negative


# --------------------------------------------------------------------------------------------------
# Matrix sources: in-memory, backed, dask
# --------------------------------------------------------------------------------------------------
_DENSE_BLOCK_BYTES = 2**28


def _dask_block(block: Any, engine: _Engine) -> np.ndarray:
    """map_blocks body: scores and the block's flags packed as two extra columns."""
    values, nonfinite, negative = engine.block(_validate.in_memory(block))
    out = np.empty((values.shape[0], values.shape[1] + 2), dtype=np.float32)
    out[:, :-2] = values
    out[:, -2] = float(nonfinite)
    out[:, -1] = float(negative)
    return out


def _dask_colsums(block: Any) -> np.ndarray:
    block = _validate.in_memory(block)
    if sp.issparse(block):
        return np.asarray(block.sum(axis=0, dtype=np.float64)).reshape(1, -1)
    return np.asarray(block, dtype=np.float64).sum(axis=0).reshape(1, -1)


@dataclass
class _Source:
    X: Any
    kind: str  # csr | sparse | dense | backed | dask
    chunk_size: int | None

    @classmethod
    def of(cls, X: Any, chunk_size: int | None, *, backed: bool) -> _Source:
        if _dask.is_dask(X):
            kind = "dask"
        elif sp.issparse(X):
            kind = "csr" if X.format == "csr" else "sparse"
        elif isinstance(X, np.ndarray):
            kind = "dense"
        else:
            kind = "backed"
        if kind != "dask" and chunk_size is None:
            chunk_size = Defaults.CHUNK_SIZE
            if kind == "backed" and getattr(X, "format", None) is None:  # dense on disk: ~256 MB blocks
                row_bytes = X.shape[1] * np.dtype(X.dtype).itemsize
                chunk_size = int(max(1, min(chunk_size, _DENSE_BLOCK_BYTES // max(row_bytes, 1))))
        return cls(X=X, kind=kind, chunk_size=chunk_size)

    @property
    def n_rows(self) -> int:
        return int(self.X.shape[0])

    @property
    def chunk_rows(self) -> int:
        if self.chunk_size is not None:
            return min(self.chunk_size, max(self.n_rows, 1))
        return int(max(self.X.chunks[0])) if self.kind == "dask" else self.n_rows

    def _ranges(self) -> Iterator[tuple[int, int]]:
        step = self.chunk_size or self.n_rows
        for start in range(0, self.n_rows, step):
            yield start, min(self.n_rows, start + step)

    def _progress(self, n_chunks: int):
        from tqdm import tqdm

        return tqdm(total=self.n_rows, unit="cells", desc="hcctme.tl.score",
                    disable=not settings.progress or n_chunks <= 1, leave=False)

    def _dask_rows(self):
        return _dask.row_blocks(self.X, self.chunk_size)

    def run(self, engine: _Engine) -> tuple[np.ndarray, bool, bool]:
        """Scores of every row (float32) and whether any value was non-finite / negative."""
        if self.kind == "dask":
            from dask import delayed

            Xd = self._dask_rows()
            _dask.log_compute("hcctme.tl.score", len(Xd.chunks[0]))
            # one graph node holds the engine: it is sent to each worker once, not embedded in every task
            shared = delayed(engine, traverse=False)
            out = Xd.map_blocks(_dask_block, shared, dtype=np.float32,
                                chunks=(Xd.chunks[0], (engine.n_sigs + 2,)),
                                meta=np.empty((0, 0), dtype=np.float32)).compute()
            out = np.asarray(out)
            return (np.ascontiguousarray(out[:, :-2]), bool(out[:, -2].any()) if len(out) else False,
                    bool(out[:, -1].any()) if len(out) else False)
        values = np.empty((self.n_rows, engine.n_sigs), dtype=np.float32)
        nonfinite = negative = False
        fast_csr = self.kind == "csr" and self.X.has_canonical_format
        ranges = list(self._ranges())
        with self._progress(len(ranges)) as bar:
            for start, stop in ranges:
                if fast_csr:
                    block_values, bad, neg = engine.csr_rows(self.X, start, stop)
                else:
                    block_values, bad, neg = engine.block(self._read(start, stop))
                values[start:stop] = block_values
                nonfinite |= bad
                negative |= neg
                bar.update(stop - start)
                if nonfinite:  # no need to read further: the call fails
                    break
        return values, nonfinite, negative

    def _read(self, start: int, stop: int) -> Any:
        block = _validate.in_memory(self.X[start:stop])
        if sp.issparse(block) and block.format != "csr":
            block = block.tocsr()
        return block

    def column_sums(self) -> np.ndarray:
        """Per-gene sums over all cells, float64, read chunk by chunk."""
        if self.kind == "dask":
            Xd = self._dask_rows()
            nb = len(Xd.chunks[0])
            sums = Xd.map_blocks(_dask_colsums, dtype=np.float64, chunks=((1,) * nb, (Xd.shape[1],)),
                                 meta=np.empty((0, 0), dtype=np.float64)).sum(axis=0).compute()
            return np.asarray(sums, dtype=np.float64).ravel()
        total = np.zeros(self.X.shape[1], dtype=np.float64)
        for start, stop in self._ranges():
            block = self._read(start, stop)
            if sp.issparse(block):
                total += np.asarray(block.sum(axis=0, dtype=np.float64)).ravel()
            else:
                total += np.asarray(block, dtype=np.float64).sum(axis=0)
        return total


def _gene_means(source: _Source) -> np.ndarray:
    """Mean of every gene over all cells, computed as scanpy does when the matrix is in memory."""
    X = source.X
    if source.kind in ("csr", "sparse"):
        return np.asarray(X.sum(axis=0, dtype="float64")).ravel() / X.shape[0]
    if source.kind == "dense":
        return np.asarray(np.mean(X, axis=0)).ravel()
    return source.column_sums() / source.n_rows


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------
# a user's gene sets are recorded (as a decoupler net) up to this many genes in all; larger collections are not
_RECORDED_NET_ROWS = 200_000


def _signatures_arg(signatures: Any, loaded: Any) -> Any:
    """The ``signatures`` argument as the record keeps it.

    None, ids or a path as given; a set of library signatures as its ids; a user's own sets (a dict, a net,
    edited signatures) as the decoupler net of what was loaded (genes, signs, weights: ``sig.load`` reads it
    back), unless they hold more than ``_RECORDED_NET_ROWS`` genes in all (their genes are in genes_used).
    """
    if signatures is None or isinstance(signatures, (str, Path)):
        return None if signatures is None else str(signatures)
    if isinstance(signatures, (list, tuple)) and all(isinstance(s, str) for s in signatures):
        return list(signatures)
    from hcctme import sig

    if isinstance(signatures, sig.SignatureSet):
        library = sig.library()
        if all(s.id in library and library[s.id] == s for s in signatures):
            return list(signatures.ids)
    net = loaded.to_net()
    if len(net) <= _RECORDED_NET_ROWS:
        return net
    logger.warning("tl.score: the %d gene sets scored (%d genes in all) are not kept in the record, so "
                   "get.params cannot repeat this call; their genes are in genes_used", len(loaded), len(net))
    return _NOT_RECORDED


_NOT_RECORDED = object()  # a very large collection of a user's gene sets: their genes are in genes_used


def _info(method: str, call: dict[str, Any], *, used_raw: bool, sigs, matched: _Matched) -> dict[str, Any]:
    """uns[key_added + "_params"]: the call (replayable through get.params), the method's constants, the genes."""
    if call["signatures"] is _NOT_RECORDED:
        call = {k: v for k, v in call.items() if k != "signatures"}
    constants: dict[str, Any] = {"min_genes": Defaults.MIN_GENES}
    if method == "ucell":
        constants.update(w_neg=W_NEG, ties="average", missing_genes="impute")
    elif method == "mean":
        constants.update(ctrl_size=CTRL_SIZE, n_bins=N_BINS)
    else:
        constants.update(tmin=Defaults.MIN_GENES, empty=False)
    return {
        "tool": "hcctme.tl.score",
        "method": method,
        **_validate.call_record(**call),
        "method_params": constants,
        "used_raw": bool(used_raw),
        "signatures_origin": str(getattr(sigs, "origin", "")),
        "library_version": str(getattr(sigs, "library_version", "user")),
        "coverage": dict(matched.coverage),
        "n_genes": dict(matched.n_genes),
        "genes_used": {k: list(v) for k, v in matched.genes_used.items()},
        "genes_down_used": {k: list(v) for k, v in matched.genes_down_used.items()},
        "dropped": list(matched.dropped),
    }
