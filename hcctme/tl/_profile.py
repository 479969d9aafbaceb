"""Per-patient resistance profile: which kb resistance axes are active, on what evidence, which therapies.

For every sample and every axis of :func:`hcctme.kb.axes`, up to four kinds of evidence are read from
what earlier tools stored, each standardised across samples:

``scores``
    signature scores (:func:`hcctme.tl.score`) of the states / programmes linked to the axis
    (``hcctme/kb/data/axis_links.tsv``), averaged per sample over the cells of the signature's
    cell context (all cells when contexts are unknown). Axes with no linked signature use the mean
    expression of their ligand and receptor genes instead (source ``genes:...``): each ligand gene over
    the cells of the axis's sender contexts, each receptor gene over its receiver contexts
    (``obs[state_key + "_context"]``; all cells without it, and for recruitment axes). A tumour-intrinsic
    axis holds its markers as ligands of a tumour sender, read in tumour cells; TACE_S100A9 reads S100A9 through
    the tumour-context TACE_RESISTANCE panel, not in the neutrophils that make far more of it.
``states``
    abundance of the linked states (:func:`hcctme.tl.call_states`): per sample, the fraction of the
    state's parent population (e.g. TAM2_SPP1 among macrophages; linked states of one parent are
    pooled, e.g. NEU_CD10_ALPL + PMN_MDSC among neutrophils; without ``obs[state_key + "_context"]`` each
    parent's linked states as a fraction of all cells, the parents kept apart); for recruitment axes also the linked
    population's share of all cells (neutrophils for CXCR2, monocytes for CCL2-CCR2, macrophages for
    CSF1-CSF1R).
``crosstalk``
    per-sample LIANA interaction strength of the axis's ligand-receptor pairs
    (:func:`hcctme.tl.crosstalk` run with ``sample_key``): the largest ``lr_means`` (else
    ``expr_prod``, ``lrscore``, ``-log10(magnitude_rank)``) over the axis's pairs, counting only
    senders / receivers in the axis's kb contexts when the crosstalk groups map to cell contexts
    (``obs[state_key + "_context"]``; a coarser group such as myeloid cells counts for the macrophages
    it holds, and a pair the resource holds reversed, TIGIT -> PVR, is read in the kb's direction).
    An axis pair not reported in a sample counts as 0 there, unless the sample lacks the axis's sender
    or receiver cells (missing); an axis no sample reports (its genes absent) has no crosstalk evidence.
``spatial``
    the tumour immune barrier (:func:`hcctme.tl.tib`): ``tib_score`` and ``t_exclusion`` for the TIB axis.

Standardisation and activity
----------------------------
Each feature is turned into ``z = (x - centre) / sd``: ``sd`` over all samples; ``centre`` the mean
of the reference samples when ``condition_key`` and ``reference`` are given (so z reads "SDs above
the reference patients"), else the mean of all samples. Axes whose ``direction`` is ``down`` (loss of
the signal goes with resistance) have their z negated. The z of a kind is the mean of its features;
``activity`` is the mean over the kinds present (each kind weighs the same, however many features it
has), and ``active`` is ``activity >= active_threshold``. Activity is relative to the cohort (or its
reference group), not an absolute measure: a cohort of resistors only has no "inactive" baseline.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from hcctme import _validate
from hcctme._constants import CONTEXT_PARENTS, Keys, Suffix
from hcctme._logging import logger
from hcctme.kb import _axes as kb_axes
from hcctme.tl import _stats

KINDS: tuple[str, ...] = ("scores", "states", "crosstalk", "spatial")
TIB_AXIS = "TIB"
#: tl.tib columns read as spatial evidence for the TIB axis
TIB_FEATURES: tuple[str, ...] = ("tib_score", "t_exclusion")
_STRENGTH_COLUMNS = ("lr_means", "expr_prod", "lrscore")
_RANK_COLUMNS = ("magnitude_rank", "specificity_rank")


# --------------------------------------------------------------------------------------------------
# knowledge base
# --------------------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def axis_links() -> pd.DataFrame:
    """The shipped state / signature -> axis links (``hcctme/kb/data/axis_links.tsv``) with citations."""
    path = resources.files("hcctme.kb").joinpath("data", "axis_links.tsv")
    with path.open("r", encoding="utf-8") as handle:
        table = pd.read_csv(handle, sep="\t", comment="#", dtype=str).fillna("")
    bad = table.loc[~table["kind"].isin(["state", "signature", "population"]), "kind"]
    if len(bad):
        raise ValueError(f"axis_links.tsv: unknown kind(s) {sorted(set(bad))}; use state, signature or population")
    return table


def _split_genes(value: Any) -> list[str]:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    if isinstance(value, list | tuple | np.ndarray):
        out: list[str] = []
        for v in value:
            out.extend(_split_genes(v))
        return out
    return [g for g in re.split(r"[_,;+ /|]+", str(value)) if g]


def _split_list(value: Any) -> list[str]:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    if isinstance(value, list | tuple | set | np.ndarray):
        return [str(v) for v in value]
    return [v.strip() for v in re.split(r"[;,|]", str(value)) if v.strip()]


def _kb_axes() -> pd.DataFrame:
    """One row per axis: axis, name, direction, genes (ligand and receptor subunits, also apart), contexts."""
    from hcctme import kb

    raw = kb.axes()
    if not isinstance(raw, pd.DataFrame) or "axis" not in raw.columns:
        raise TypeError("hcctme.kb.axes() must return a DataFrame with an 'axis' column")
    rows = []
    for axis, group in raw.groupby("axis", sort=False):
        ligands = [g for col in ("ligand", "ligand_complex") if col in group.columns
                   for g in _split_genes(group[col].tolist())]
        receptors = [g for col in ("receptor", "receptor_complex") if col in group.columns
                     for g in _split_genes(group[col].tolist())]
        direction = str(group["direction"].iloc[0]) if "direction" in group.columns else "up"
        name = str(group["name"].iloc[0]) if "name" in group.columns else str(axis)
        senders: set[str] = set()
        receivers: set[str] = set()
        for col, bucket in (("sender", senders), ("receiver", receivers)):
            if col in group.columns:
                for value in group[col]:
                    bucket.update(_split_list(value))
        rows.append({"axis": str(axis), "name": name, "direction": direction,
                     "genes": list(dict.fromkeys(ligands + receptors)), "ligands": list(dict.fromkeys(ligands)),
                     "receptors": list(dict.fromkeys(receptors)), "senders": senders, "receivers": receivers,
                     **_pair_contexts(group)})
    return pd.DataFrame(rows)


def _pair_contexts(pairs: pd.DataFrame) -> dict[str, Any]:
    """Each gene's contexts and each pair's (senders, receivers), from the axis's own kb pairs.

    An axis's pairs can run between different cells (OSM_SAA: SAA1 from hepatocytes to FPR2 / TLR2 on neutrophils,
    OSM from neutrophils to OSMR_IL6ST on CD8 T cells): a gene is read in the contexts of the pairs that hold it,
    not in every context of the axis. A pair without a sender or receiver reads every cell (``"any"``).
    """
    def contexts(row: pd.Series, col: str) -> frozenset[str]:
        return frozenset(_split_list(row[col]) if col in row.index else []) or frozenset({"any"})

    per_gene: dict[str, dict[str, frozenset[str]]] = {"ligand_contexts": {}, "receptor_contexts": {}}
    per_pair: list[tuple[frozenset[str], frozenset[str], frozenset[str], frozenset[str]]] = []
    for _, row in pairs.iterrows():
        sent, received = contexts(row, "sender"), contexts(row, "receiver")
        subunits = []
        for cols, key, where in ((("ligand", "ligand_complex"), "ligand_contexts", sent),
                                 (("receptor", "receptor_complex"), "receptor_contexts", received)):
            genes = _split_genes([row[c] for c in cols if c in row.index])
            subunits.append(frozenset(genes))
            for gene in genes:
                per_gene[key][gene] = per_gene[key].get(gene, frozenset()) | where
        if all(subunits):
            per_pair.append((*subunits, sent, received))
    return {**per_gene, "pair_contexts": per_pair}


def _matched_pairs(pairs: list[tuple[frozenset[str], ...]], ligand: Any, receptor: Any
                   ) -> list[tuple[frozenset[str], frozenset[str], bool]]:
    """(senders, receivers, reversed) of each kb pair an interaction matches, as :func:`hcctme.kb.annotate` does.

    By subunits, so in either notation of a complex (LIANA writes ``IL6ST_OSMR`` for the kb's ``OSMR_IL6ST``), and
    in either orientation (``reversed``: the interaction's ligand is the pair's receptor, LIANA's ``TIGIT -> PVR``
    for the kb's PVR -> TIGIT; its source is then the pair's receiver).
    """
    lig, rec = set(_split_genes(ligand)), set(_split_genes(receptor))
    out = []
    for kb_lig, kb_rec, sent, received in pairs:
        if kb_lig <= lig and kb_rec <= rec:
            out.append((sent, received, False))
        elif kb_lig <= rec and kb_rec <= lig:
            out.append((sent, received, True))
    return out


def _kb_therapies(axis: str) -> str:
    """The axis' therapies ranked by evidence tier, each with its tier, evidence, status and negative trials.

    ``"atezolizumab + bevacizumab [I, IMbrave150 | approved_hcc]; ... ; anti-SPP1 blocking antibody [IV, Liu2023 |
    preclinical]"`` (:func:`hcctme.kb._axes.therapy_label`): :func:`hcctme.kb.therapies` is already sorted by tier;
    the supporting trial (or, without one, the kb citation key listed in ``hcctme/kb/CITATIONS.md``) follows each
    name, so a reader can follow every suggestion to its evidence, tier and development status.
    """
    from hcctme import kb
    from hcctme.kb._axes import therapy_label

    try:
        table = kb.therapies(axis)
    except KeyError:
        return ""
    return "; ".join(dict.fromkeys(therapy_label(row) for _, row in table.iterrows()))


def _signature_context(signature_id: str) -> str:
    try:
        from hcctme import sig

        return str(sig.get(signature_id).cell_context)
    except KeyError:  # a user signature, not in the library: read over all cells
        return "any"


def _in_context(contexts: pd.Series, context: str, *, coarser: bool = True) -> np.ndarray:
    """The cells of ``context``: its own, its children's and, with ``coarser``, those of the coarser group holding it.

    Cells labelled only "T cells" (``t_cell``) hold the CD8 T cells a ``cd8_t`` signature is read in, as
    :func:`_context_ok` lets a coarser crosstalk group count; without them a cohort annotated coarsely would read
    no evidence there. A population's share of all cells (recruitment axes) counts its own cells only.
    """
    if context == "any":
        return np.ones(len(contexts), dtype=bool)
    parents = contexts.map(lambda c: CONTEXT_PARENTS.get(c, c))
    mask = (contexts == context).to_numpy() | (parents == context).to_numpy()
    parent = CONTEXT_PARENTS.get(context)
    if coarser and parent is not None:
        mask |= (contexts == parent).to_numpy()
    return mask


def _context_text(contexts: pd.Series, context: str) -> str:
    """``"<context> cells"``, naming the coarser group's cells where :func:`_in_context` reads them too."""
    parent = CONTEXT_PARENTS.get(context)
    held = parent is not None and bool((contexts == parent).any())
    return f"{context} cells" + (f" and the {parent} cells holding them" if held else "")


def _in_any(levels: pd.Index, contexts: set[str]) -> np.ndarray:
    """Which context ``levels`` belong to any kb context of ``contexts`` (:func:`_in_context`; none given: all)."""
    as_series = pd.Series(levels, dtype=object)
    return np.logical_or.reduce([_in_context(as_series, c) for c in (contexts or {"any"})])


def gene_roles(ax: pd.Series, *, density: bool = False) -> list[tuple[str, frozenset[str]]]:
    """An axis's genes, each with the kb contexts whose cells express it for the axis.

    Ligand genes in the sender contexts of the kb pairs that hold them (the markers of a tumour-intrinsic axis
    are held as ligands without a receptor, its sender the tumour), receptor genes in the receiver contexts of
    theirs (:func:`_pair_contexts`); every cell (``"any"``) for a recruitment axis (``density``: more such cells
    is the signal). A gene in both roles keeps its first.
    """
    if density:
        return [(g, frozenset({"any"})) for g in ax["genes"]]
    roles: dict[str, frozenset[str]] = {}
    for genes, role, contexts in ((ax["ligands"], "ligand_contexts", ax["senders"]),
                                  (ax["receptors"], "receptor_contexts", ax["receivers"])):
        own = ax.get(role) if isinstance(ax.get(role), dict) else {}
        for gene in genes:
            roles.setdefault(gene, frozenset(own.get(gene, contexts)))
    return list(roles.items())


# --------------------------------------------------------------------------------------------------
# evidence
# --------------------------------------------------------------------------------------------------
def _per_sample_mean(values: np.ndarray, samples: pd.Series, mask: np.ndarray, order: pd.Index) -> pd.Series:
    frame = pd.DataFrame({"s": samples.to_numpy()[mask], "v": values[mask]})
    return frame.groupby("s", observed=True)["v"].mean().reindex(order)


def _score_evidence(scores: pd.DataFrame, samples: pd.Series, contexts: pd.Series | None, order: pd.Index,
                    features: list[str], scores_key: str, *, density: bool = False) -> list[dict[str, Any]]:
    """Per sample and linked signature, the mean score over the cells of the signature's cell context.

    Over all cells when ``density`` (recruitment axes, where more such cells is the signal).
    """
    out = []
    for feature in features:
        context = _signature_context(feature) if contexts is not None and not density else "any"
        mask = _in_context(contexts, context) if contexts is not None else np.ones(len(samples), bool)
        where = f"mean in {_context_text(contexts, context)}" if context != "any" else "mean in all cells"
        values = _per_sample_mean(scores[feature].to_numpy(dtype=float), samples, mask, order)
        out.append({"feature": feature, "values": values, "source": f"obsm[{scores_key!r}].{feature} ({where})"})
    return out


class _GeneEvidence:
    """Per sample, the mean expression of an axis's genes in their cells, from one chunked pass over the matrix.

    Called with an axis's gene roles (:func:`gene_roles`: each gene with the kb contexts whose cells express it), it
    returns the evidence item: per sample, the mean over the genes of each gene's mean log-normalised expression
    over the sample's cells of its contexts (counts are normalised to 1e4 per cell and log1p-transformed, as scanpy
    would); a gene whose contexts hold no cell of a sample is not measured there, and a sample with none of the
    genes measured is NaN. Without cell contexts (no :func:`hcctme.tl.call_states`) every gene is read over all
    cells. One pass (row chunks: a backed matrix is never loaded) sums each gene per sample and cell context for
    every axis; it runs on the first call, for all the genes of ``wanted``, and refuses a NaN or infinite value in
    any block it reads.
    """

    def __init__(self, adata: AnnData, wanted: list[str], samples: pd.Series, order: pd.Index,
                 layer: str | None, use_raw: bool | None, contexts: pd.Series | None) -> None:
        self.samples, self.order = samples, order
        self.X, names = _validate.matrix(adata, layer=layer, use_raw=use_raw)
        raw = _validate.reads_raw(adata, layer, use_raw)
        self.where = f"layers[{layer!r}]" if layer else ("raw.X" if raw else "X")
        self.by_context = contexts is not None
        self.contexts = (contexts.astype(str) if contexts is not None
                         else pd.Series("all", index=samples.index, dtype=object))
        self.levels = pd.Index(pd.unique(self.contexts.to_numpy()))
        self.position = {str(name): i for i, name in enumerate(_validate.unique_symbols(adata, names, raw=raw))}
        self.genes = [g for g in dict.fromkeys(wanted) if g in self.position]
        self.sums: np.ndarray | None = None  # samples x context levels x genes
        self.cells: np.ndarray | None = None  # samples x context levels

    def _read(self) -> None:
        X = self.X
        kind = _validate.matrix_kind(X, n_rows=X.shape[0])
        if kind == "scaled":
            raise ValueError(
                f"resistance_profile reads gene expression ({self.where}) for axes without a linked signature, but "
                "it has negative values (scaled or centred data): pass layer= with counts or log-normalised values, "
                "or use_raw=True where .raw holds them")
        n_levels = len(self.levels)
        codes = (self.order.get_indexer(self.samples.to_numpy()) * n_levels
                 + self.levels.get_indexer(self.contexts.to_numpy()))
        n_groups = len(self.order) * n_levels
        columns = [self.position[g] for g in self.genes]
        sums = np.zeros((n_groups, len(columns)))
        for start, stop, block in _validate.row_blocks(X):
            block = sp.csr_matrix(block, dtype=np.float64)
            _validate.finite_rows(block, range(start, stop), where=f"adata.{self.where}")
            values = block[:, columns].toarray()
            if kind == "counts":  # normalise to 1e4 per cell and log1p, as scanpy would
                totals = np.asarray(block.sum(axis=1)).ravel()
                values = np.log1p(values / np.maximum(totals, 1)[:, None] * 1e4)
            rows = codes[start:stop]
            member = sp.csr_matrix((np.ones(len(rows)), (rows, np.arange(len(rows)))), shape=(n_groups, len(rows)))
            sums += member @ values
        self.sums = sums.reshape(len(self.order), n_levels, len(columns))
        self.cells = np.bincount(codes, minlength=n_groups).reshape(len(self.order), n_levels).astype(float)

    def __call__(self, roles: list[tuple[str, frozenset[str]]], *,
                 why: str = "no linked signature scored") -> list[dict[str, Any]]:
        present = [(g, c) for g, c in roles if g in self.position]
        if not present:
            return []
        if self.sums is None:
            self._read()
        assert self.sums is not None and self.cells is not None
        means = []
        for gene, contexts in present:
            mask = _in_any(self.levels, set(contexts) if self.by_context else {"any"})
            n = self.cells[:, mask].sum(axis=1)
            total = self.sums[:, mask, self.genes.index(gene)].sum(axis=1)
            means.append(np.where(n > 0, total / np.maximum(n, 1), np.nan))
        stacked = np.vstack(means)
        measured = np.isfinite(stacked).any(axis=0)
        values = np.full(len(self.order), np.nan)
        values[measured] = np.nanmean(stacked[:, measured], axis=0)
        return [{"feature": "genes:" + ",".join(g for g, _ in present), "values": pd.Series(values, index=self.order),
                 "source": f"{self.where}: mean expression of {self._described(present)} ({why})"}]

    def _described(self, present: list[tuple[str, frozenset[str]]]) -> str:
        """``"HGF in fibroblast/macrophage cells, MET in tumour cells"`` (genes of one context set together)."""
        by: dict[frozenset[str], list[str]] = {}
        for gene, contexts in present:
            by.setdefault(contexts if self.by_context else frozenset({"any"}), []).append(gene)
        parts = []
        for contexts, genes in by.items():
            where = "all cells" if not contexts or "any" in contexts else "/".join(sorted(contexts)) + " cells"
            parts.append(f"{', '.join(genes)} in {where}")
        return ", ".join(parts)


def _state_evidence(states: pd.Series, contexts: pd.Series | None, samples: pd.Series, order: pd.Index,
                    features: list[str], state_key: str, *, density: bool = False) -> list[dict[str, Any]]:
    """Per sample, the fraction of each parent population in the axis's linked states.

    Linked states of one parent are pooled (NEU_CD10_ALPL + PMN_MDSC among neutrophils): states of
    one parent are mutually exclusive, so one state's gain would otherwise read as another's loss.
    With ``density`` (recruitment axes) the fraction is taken of all cells: recruiting more of these
    cells, not changing their mix, is what such an axis does.
    """
    present = set(states)
    by_parent: dict[str, list[str]] = {}
    for feature in features:
        if feature not in present:
            continue
        if contexts is not None and not density:
            parent = str(contexts[(states == feature).to_numpy()].value_counts().idxmax())
        else:  # the parents still kept apart (TAM2_SPP1 and the myCAFs are no one population's states)
            parent = f"all:{_signature_context(feature)}"
        by_parent.setdefault(parent, []).append(feature)
    out = []
    for parent, members in by_parent.items():
        in_state = states.isin(members).to_numpy()
        whole = parent.startswith("all:")
        base = np.ones(len(states), bool) if whole else (contexts == parent).to_numpy()
        where = "fraction of all cells" if whole else f"fraction of {parent} cells"
        values = _per_sample_mean(in_state[base].astype(float), samples[base], np.ones(int(base.sum()), bool), order)
        name = "+".join(members)
        out.append({"feature": name, "values": values,
                    "source": f"obs[{state_key!r}] in {{{', '.join(members)}}} ({where})"})
    return out


def _population_evidence(contexts: pd.Series, samples: pd.Series, order: pd.Index, populations: list[str],
                         context_key: str) -> list[dict[str, Any]]:
    """Per sample, the fraction of all cells in each linked population (recruitment axes)."""
    out = []
    for population in populations:
        members = _in_context(contexts, population, coarser=False)
        if not members.any():
            continue
        values = _per_sample_mean(members.astype(float), samples, np.ones(len(samples), bool), order)
        out.append({"feature": f"{population} cells", "values": values,
                    "source": f"obs[{context_key!r}] == {population} (fraction of all cells)"})
    return out


def _label_contexts(adata: AnnData, labels: set[str], groupby: str | None, context_key: str) -> dict[str, str]:
    """Map crosstalk sender/receiver labels to cell contexts (modal context of the cells carrying them)."""
    if context_key not in adata.obs.columns or not labels:
        return {}
    candidates = [groupby] if groupby and groupby in adata.obs.columns else [
        c for c in adata.obs.columns
        if c != context_key and (isinstance(adata.obs[c].dtype, pd.CategoricalDtype) or adata.obs[c].dtype == object)
    ]
    contexts = adata.obs[context_key].astype(str)
    for column in candidates:
        values = adata.obs[column].astype(str)
        if labels <= set(values):
            frame = pd.DataFrame({"label": values, "context": contexts})
            frame = frame[frame["label"].isin(labels)]
            return frame.groupby("label")["context"].agg(lambda s: s.value_counts().idxmax()).to_dict()
    return {}


def _context_ok(context: str | None, allowed: set[str]) -> bool:
    """Whether a group's context matches the kb's: the same, a child, or a coarser group holding it.

    Myeloid cells hold the macrophages an axis names.
    """
    if not allowed or "any" in allowed or context is None:
        return True
    return (context in allowed or CONTEXT_PARENTS.get(context, context) in allowed
            or any(CONTEXT_PARENTS.get(a) == context for a in allowed))


def _crosstalk_per_sample(adata: AnnData, table: pd.DataFrame, sample_key: str, axes: pd.DataFrame,
                          order: pd.Index, *, groupby: str | None, context_key: str,
                          groups: pd.DataFrame | None = None) -> tuple[pd.DataFrame | None, str]:
    """Samples x axes strength of the strongest pair of each axis, or None and why.

    Rows are kept when their sender and receiver match the axis's kb sender/receiver contexts (when
    the table's groups can be mapped to contexts through ``obs[context_key]``); a row that matches the
    axis pair only reversed (LIANA's TIGIT -> PVR) has its source read as the receiver. An axis no kept
    row of any sample reads is not measured (NaN: its genes or its cells are missing); otherwise a
    sample without a row for it reads 0, unless the sample lacks the axis's sender or receiver cells
    (``groups``: the (sample, group) pairs crosstalk kept), which is NaN too.
    """
    sample_col = next((c for c in (sample_key, "sample", "sample_id") if c in table.columns), None)
    if sample_col is None:
        return None, f"the crosstalk table has no per-sample column ({sample_key!r}); run tl.crosstalk with sample_key="
    if not set(table[sample_col].astype(str)) & set(order):
        return None, (f"the crosstalk table's samples (column {sample_col!r}) are none of obs[{sample_key!r}]'s: run "
                      f"tl.crosstalk with sample_key={sample_key!r}")
    strength_col = next((c for c in _STRENGTH_COLUMNS if c in table.columns), None)
    rank_col = next((c for c in _RANK_COLUMNS if c in table.columns), None)
    if strength_col is not None:
        strength = pd.to_numeric(table[strength_col], errors="coerce").to_numpy(float)
        how = f"max {strength_col} over the axis pairs"
    elif rank_col is not None:
        strength = -np.log10(np.clip(pd.to_numeric(table[rank_col], errors="coerce").to_numpy(float), 1e-12, 1.0))
        how = f"max -log10({rank_col}) over the axis pairs"
    else:
        return None, "the crosstalk table has no liana score column (lr_means, magnitude_rank, ...)"
    has_pairs = {"ligand_complex", "receptor_complex"} <= set(table.columns)
    if "axis" not in table.columns and not has_pairs:
        return None, "the crosstalk table has neither an 'axis' column nor ligand_complex/receptor_complex"
    annotated = (table["axis"].astype(object) if "axis" in table.columns
                 else pd.Series(np.nan, index=table.index, dtype=object))
    if has_pairs and annotated.isna().any():  # rows without an axis are matched to axes through the kb
        missing = annotated.isna().to_numpy()
        annotated = annotated.copy()
        annotated[missing] = kb_axes.annotate(table.loc[missing, "ligand_complex"].astype(str),
                                              table.loc[missing, "receptor_complex"].astype(str)).to_numpy()
    axis_lists = annotated.map(lambda v: [a for a in re.split(r"[;,|]\s*", v) if a] if isinstance(v, str) else [])

    def column(name: str) -> np.ndarray | None:
        return table[name].astype(str).to_numpy() if name in table.columns else None

    frame = pd.DataFrame({"sample": table[sample_col].astype(str).to_numpy(), "strength": strength,
                          "axis": axis_lists.to_numpy(), "source": column("source"), "target": column("target"),
                          "ligand": column("ligand_complex"), "receptor": column("receptor_complex")})
    frame = frame.explode("axis").dropna(subset=["axis"])
    frame = frame[frame["axis"].isin(set(axes["axis"]))]
    senders = dict(zip(axes["axis"], axes["senders"], strict=True)) if "senders" in axes.columns else {}
    receivers = dict(zip(axes["axis"], axes["receivers"], strict=True)) if "receivers" in axes.columns else {}
    pairs = dict(zip(axes["axis"], axes["pair_contexts"], strict=True)) if "pair_contexts" in axes.columns else {}

    def in_contexts(source: str | None, target: str | None, axis: str, ligand: Any, receptor: Any) -> bool:
        """Whether the row runs between the contexts of a kb pair of the axis that it matches (else the axis's)."""
        routes = _matched_pairs(pairs.get(axis, []), ligand, receptor) if ligand is not None else []
        if not routes:
            reverse = ligand is not None and kb_axes.reversed_only(ligand, receptor, axis)
            routes = [(senders[axis], receivers[axis], reverse)]
        return any(_pair_in_contexts(source, target, sent, received, reverse=reverse)
                   for sent, received, reverse in routes)
    mapping: dict[str, str] = {}
    if {"source", "target"} <= set(table.columns) and senders and receivers:
        labels = set(table["source"].astype(str)) | set(table["target"].astype(str))
        mapping = _label_contexts(adata, labels | (set(groups["group"].astype(str)) if groups is not None else set()),
                                  groupby, context_key)
        if mapping:
            keep = [in_contexts(mapping.get(src), mapping.get(tgt), ax, lig, rec)
                    for src, tgt, ax, lig, rec in zip(frame["source"], frame["target"], frame["axis"],
                                                      frame["ligand"], frame["receptor"], strict=True)]
            frame = frame[np.asarray(keep, dtype=bool)]
            how += " (kb sender -> receiver contexts only)"
    wide = frame.groupby(["sample", "axis"])["strength"].max().unstack("axis")
    wide = wide.reindex(index=order, columns=axes["axis"])
    sampled = set(table[sample_col].astype(str))
    kept = ({} if groups is None or not mapping else  # the contexts of the groups crosstalk kept, per sample
            groups.assign(context=groups["group"].astype(str).map(mapping)).dropna(subset=["context"])
            .groupby(groups["sample"].astype(str).to_numpy())["context"].agg(set).to_dict())
    for axis in wide.columns[wide.notna().any().to_numpy()]:  # read somewhere: a sample without a row reads 0
        routes = [(sent, received) for *_, sent, received in pairs.get(axis, [])] \
            or [(senders.get(axis), receivers.get(axis))]
        present = [s in sampled and (not kept or any(_has_cells(kept.get(s, set()), *route) for route in routes))
                   for s in wide.index]
        wide.loc[np.asarray(present) & wide[axis].isna().to_numpy(), axis] = 0.0
    return wide, how


def _pair_in_contexts(source: str | None, target: str | None, senders: set[str], receivers: set[str], *,
                      reverse: bool) -> bool:
    if reverse:
        source, target = target, source
    return _context_ok(source, senders) and _context_ok(target, receivers)


def _has_cells(contexts: set[str], senders: set[str] | None, receivers: set[str] | None) -> bool:
    """Whether a sample's kept crosstalk groups hold one of a pair's sender and one of its receiver contexts."""
    return (any(_context_ok(c, senders or set()) for c in contexts)
            and any(_context_ok(c, receivers or set()) for c in contexts))


def _add_specific_genes(axis_items: dict[str, tuple[bool, list[tuple[str, dict[str, Any]]]]],
                        axes_table: pd.DataFrame, links: pd.DataFrame,
                        read_genes: Callable[..., list[dict[str, Any]]]) -> None:
    """Give axes with only shared evidence a feature of their own: their ligand / receptor genes.

    An axis whose evidence features are all read by other axes too (CD8_TEX_TERMINAL by PD1, TIM3,
    LAG3 and TIGIT) gets the mean expression of its own ligand and receptor genes, when the data
    have them (each in its cells: :func:`gene_roles`).
    """
    users: dict[tuple[str, str], set[str]] = {}
    for axis, (_, items) in axis_items.items():
        for kind, item in items:
            users.setdefault((kind, item["feature"]), set()).add(axis)
    rows = axes_table.set_index("axis", drop=False)
    recruitment = set(links.loc[links["kind"] == "population", "axis"])
    for axis, (_, items) in axis_items.items():
        specific = any(users[(kind, item["feature"])] == {axis} for kind, item in items)
        if specific or not rows.loc[axis, "genes"]:
            continue
        extra = read_genes(gene_roles(rows.loc[axis], density=axis in recruitment),
                           why="axis-specific: its other evidence is shared with other axes")
        items.extend(("scores", item) for item in extra)


def _zscore(values: pd.Series, centre_mask: np.ndarray | None, flip: bool) -> pd.Series:
    x = values.astype(float)
    finite = x.notna().to_numpy()
    if finite.sum() < 2:
        return pd.Series(np.nan, index=x.index)
    sd = float(x[finite].std(ddof=1))
    ref = x[finite & centre_mask] if centre_mask is not None else x[finite]
    if not len(ref):  # no reference patient has this feature: "SDs above the reference" is undefined
        return pd.Series(np.nan, index=x.index)
    centre = float(ref.mean())
    z = (x - centre) / sd if sd > 1e-12 else pd.Series(np.where(finite, 0.0, np.nan), index=x.index)
    return -z if flip else z


# --------------------------------------------------------------------------------------------------
# steps of the tool
# --------------------------------------------------------------------------------------------------
def _check_condition(adata: AnnData, sample_key: str, condition_key: str | None, reference: str | None,
                     active_threshold: float) -> tuple[pd.Series | None, str | None]:
    """The threshold's type; the per-sample condition (None without condition_key) and the checked reference."""
    if isinstance(active_threshold, bool) or not isinstance(active_threshold, int | float):
        raise TypeError(f"active_threshold must be a number, got {active_threshold!r}")
    if not np.isfinite(active_threshold):
        raise ValueError(f"active_threshold must be a finite number (z units, e.g. 0.5), got {active_threshold!r}")
    condition = None
    if condition_key is not None:
        cond_col = _validate.categorical_levels(adata, condition_key, purpose="condition_key", min_levels=2)
        condition = _validate.constant_within(adata, condition_key, sample_key)
        if reference is not None:
            reference = _validate.reference_level(cond_col, reference, key=condition_key)
    elif reference is not None:
        raise ValueError("reference is given without condition_key; name the condition column as well")
    return condition, reference


def _select_axes(axes: Sequence[str] | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The kb axes asked for and their state / signature links."""
    axes_table = _kb_axes()
    if axes is not None:
        if not isinstance(axes, str | Sequence | pd.Index | np.ndarray):
            raise TypeError(f"axes must be a kb axis id or a list of them, got {type(axes).__name__} ({axes!r})")
        wanted = [axes] if isinstance(axes, str) else [str(a) for a in axes]
        if not wanted:
            raise ValueError("axes=[] selects no axis; pass kb axis ids, or axes=None for all")
        unknown = sorted(set(wanted) - set(axes_table["axis"]))
        if unknown:
            raise ValueError(f"unknown axis id(s) {unknown}; kb axes are {list(axes_table['axis'])}")
        axes_table = axes_table[axes_table["axis"].isin(wanted)].reset_index(drop=True)
    links = axis_links()
    return axes_table, links[links["axis"].isin(set(axes_table["axis"]))]


def _crosstalk_source(adata: AnnData, sample_key: str, crosstalk_key: str, axes_table: pd.DataFrame,
                      order: pd.Index, context_key: str) -> tuple[pd.DataFrame | None, str, str | None]:
    """Samples x axes crosstalk strength, how it was read, and why it is absent (None when present)."""
    if crosstalk_key not in adata.uns:
        return None, "", (f"no uns[{crosstalk_key!r}]: run hcctme.tl.crosstalk(..., sample_key=) for crosstalk "
                          "evidence")
    table = adata.uns[crosstalk_key]
    if not (isinstance(table, pd.DataFrame) and len(table)):
        return None, "", f"uns[{crosstalk_key!r}] is not a results table; re-run hcctme.tl.crosstalk"
    provenance = adata.uns.get(crosstalk_key + Suffix.PARAMS)
    groupby = (provenance.get("params") or {}).get("groupby") if isinstance(provenance, dict) else None
    groups = provenance.get("groups") if isinstance(provenance, dict) else None
    wide, how = _crosstalk_per_sample(adata, table, sample_key, axes_table, order, groupby=groupby,
                                      context_key=context_key,
                                      groups=groups if isinstance(groups, pd.DataFrame) else None)
    return wide, how, (how if wide is None else None)


def _sources(adata: AnnData, *, sample_key: str, state_key: str, crosstalk_key: str, tib_key: str,
             axes_table: pd.DataFrame, order: pd.Index) -> dict[str, Any]:
    """The optional evidence stored by earlier tools (states, crosstalk, TIB) and why any is absent."""
    context_key = state_key + Suffix.CONTEXT
    src: dict[str, Any] = {"context_key": context_key, "absent": {}, "states": None, "tib": None}
    absent = src["absent"]
    src["contexts"] = adata.obs[context_key].astype(str) if context_key in adata.obs.columns else None
    if state_key in adata.obs.columns:
        src["states"] = adata.obs[state_key].astype(str)
    else:
        absent["states"] = f"no obs[{state_key!r}]: run hcctme.tl.call_states for state-abundance evidence"
    src["crosstalk"], src["crosstalk_how"], why = _crosstalk_source(adata, sample_key, crosstalk_key, axes_table,
                                                                    order, context_key)
    if why is not None:
        absent["crosstalk"] = why
    if tib_key in adata.uns and isinstance(adata.uns[tib_key], pd.DataFrame):
        tib_table = adata.uns[tib_key].copy()
        tib_table.index = tib_table.index.astype(str)
        if not set(order) & set(tib_table.index):
            absent["spatial"] = f"uns[{tib_key!r}] has none of the samples of obs[{sample_key!r}]"
        else:
            src["tib"] = tib_table
    else:
        absent["spatial"] = f"no uns[{tib_key!r}]: run hcctme.tl.tib on spatial data for barrier evidence"
    return src


def _axis_evidence(ax: pd.Series, ax_links: pd.DataFrame, scores: pd.DataFrame, samples: pd.Series,
                   order: pd.Index, src: dict[str, Any], read_genes: Callable[..., list[dict[str, Any]]], *,
                   scores_key: str, state_key: str, crosstalk_key: str, tib_key: str) -> list[tuple[str, dict]]:
    """The (kind, feature) evidence items of one axis."""
    axis, contexts, wide = ax["axis"], src["contexts"], src["crosstalk"]
    items: list[tuple[str, dict[str, Any]]] = []
    sig_features = [f for f in dict.fromkeys(ax_links["feature"]) if f in scores.columns]
    density = bool((ax_links["kind"] == "population").any())  # a recruitment axis
    if sig_features:
        items += [("scores", e) for e in _score_evidence(scores, samples, contexts, order, sig_features, scores_key,
                                                         density=density)]
    elif ax["genes"]:
        items += [("scores", e) for e in read_genes(gene_roles(ax, density=density))]
    if src["states"] is not None:
        state_features = list(dict.fromkeys(ax_links.loc[ax_links["kind"] == "state", "feature"]))
        items += [("states", e) for e in _state_evidence(src["states"], contexts, samples, order, state_features,
                                                         state_key, density=density)]
    if contexts is not None:
        populations = list(dict.fromkeys(ax_links.loc[ax_links["kind"] == "population", "feature"]))
        items += [("states", e) for e in _population_evidence(contexts, samples, order, populations,
                                                              src["context_key"])]
    if wide is not None and axis in wide.columns and wide[axis].notna().any():
        items.append(("crosstalk", {"feature": "strongest pair", "values": wide[axis],
                                    "source": f"uns[{crosstalk_key!r}]: {src['crosstalk_how']}"}))
    if src["tib"] is not None and axis == TIB_AXIS:
        for feature in TIB_FEATURES:
            if feature in src["tib"].columns:
                items.append(("spatial", {"feature": feature,
                                          "values": src["tib"][feature].reindex(order).astype(float),
                                          "source": f"uns[{tib_key!r}].{feature}"}))
    return items


def _evidence(axis_items: dict[str, tuple[bool, list[tuple[str, dict[str, Any]]]]], order: pd.Index,
              centre_mask: np.ndarray | None) -> pd.DataFrame:
    """The long evidence table: one row per sample, axis and feature, with its z-score."""
    evidence_rows: list[dict[str, Any]] = []
    for axis, (flip, items) in axis_items.items():
        for kind, item in items:
            z = _zscore(item["values"], centre_mask, flip)
            for sample in order:
                evidence_rows.append({"sample": sample, "axis": axis, "evidence": kind, "feature": item["feature"],
                                      "value": float(item["values"].get(sample, np.nan)), "z": float(z[sample]),
                                      "source": item["source"]})
    return pd.DataFrame(evidence_rows, columns=["sample", "axis", "evidence", "feature", "value", "z", "source"])


def _profile(scores: pd.DataFrame, samples: pd.Series, order: pd.Index, condition: pd.Series | None,
             reference: str | None, axes_table: pd.DataFrame, links: pd.DataFrame, src: dict[str, Any],
             read_genes: Callable[..., list[dict[str, Any]]], *, active_threshold: float,
             keys: dict[str, str], selected: pd.DataFrame | None = None,
             ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None]:
    """The profile, evidence and (with a condition) summary tables, from AnnData-free inputs.

    The evidence of every axis of ``axes_table`` is read; the tables hold the ``selected`` axes (None: all). Which
    evidence an axis shares with others (:func:`_add_specific_genes`) is read over all of them, so an axis's
    activity does not depend on which others are selected.
    """
    centre_mask = None
    if condition is not None and reference is not None:
        centre_mask = (condition.reindex(order).astype(str) == reference).to_numpy()
    axis_items: dict[str, tuple[bool, list[tuple[str, dict[str, Any]]]]] = {}
    for _, ax in axes_table.iterrows():
        flip = str(ax["direction"]).lower() == "down"
        items = _axis_evidence(ax, links[links["axis"] == ax["axis"]], scores, samples, order, src, read_genes,
                               **keys)
        axis_items[ax["axis"]] = (flip, items)
    _add_specific_genes(axis_items, axes_table, links, read_genes)
    selected = axes_table if selected is None else selected
    axis_items = {axis: axis_items[axis] for axis in selected["axis"]}
    evidence = _evidence(axis_items, order, centre_mask)
    profile = _combine(evidence, selected, order, active_threshold=active_threshold)
    if condition is not None:
        profile.insert(1, "condition", condition.reindex(profile["sample"]).astype(str).to_numpy())
    summary = _summary(profile, reference) if condition is not None else None
    return profile, evidence, summary


def _params(call: dict[str, Any], axes_table: pd.DataFrame, active_threshold: float, order: pd.Index,
            absent: dict[str, str], summary: pd.DataFrame | None) -> dict[str, Any]:
    """uns[key_added + "_params"]: tool, params, library and kb versions, absent evidence kinds."""
    params = {
        "tool": "hcctme.tl.resistance_profile",
        **_validate.call_record(**call, active_threshold=active_threshold),
        "axes_used": list(axes_table["axis"]),
        "library_version": _validate.library_version(), "kb_version": kb_axes.get_version(),
        "absent": absent, "n_axes": len(axes_table), "n_samples": len(order),
    }
    if summary is not None and len(summary):
        tested = summary.dropna(subset=["pvalue"])
        params["n_distinct_tests"] = int(tested.drop_duplicates(["evidence_group", "group"]).shape[0])
    return params


def _write(adata: AnnData, key_added: str, profile: pd.DataFrame, evidence: pd.DataFrame, params: dict[str, Any],
           summary: pd.DataFrame | None) -> None:
    adata.uns[key_added] = profile
    adata.uns[key_added + Suffix.EVIDENCE] = evidence
    adata.uns[key_added + Suffix.PARAMS] = params
    if summary is not None:
        adata.uns[key_added + Suffix.SUMMARY] = summary
    else:  # a run without a condition replaces an earlier run's summary too
        adata.uns.pop(key_added + Suffix.SUMMARY, None)
    for kind, why in params["absent"].items():
        logger.info("resistance_profile: no %s evidence (%s)", kind, why)


# --------------------------------------------------------------------------------------------------
# public
# --------------------------------------------------------------------------------------------------
def resistance_profile(
    adata: AnnData,
    *,
    sample_key: str,
    condition_key: str | None = None,
    reference: str | None = None,
    scores_key: str = Keys.SCORES,
    state_key: str = Keys.STATE,
    crosstalk_key: str = Keys.CROSSTALK,
    tib_key: str = Keys.TIB,
    layer: str | None = None,
    use_raw: bool | None = None,
    axes: Sequence[str] | None = None,
    active_threshold: float = 0.5,
    key_added: str = Keys.PROFILE,
    copy: bool = False,
) -> AnnData | None:
    """Per-patient resistance profile: which resistance axes are active, the evidence, the therapies.

    See the module documentation for how each evidence is read and combined. Signature scores
    (:func:`hcctme.tl.score`) are required; state calls, crosstalk and the spatial TIB are used when
    present and reported as absent otherwise (``uns[key_added + "_params"]["absent"]``).

    Parameters
    ----------
    adata
        Cells with ``obsm[scores_key]`` and, optionally, ``obs[state_key]`` (+ ``_context``),
        ``uns[crosstalk_key]`` (per-sample liana results) and ``uns[tib_key]``.
    sample_key
        obs column of the sample / patient (one profile per sample).
    condition_key, reference
        Optional patient-level condition (e.g. response). With it a cohort summary is computed
        (``uns[key_added + "_summary"]``): per axis and condition, mean activity and fraction active,
        and a rank test (Mann-Whitney U of each level against ``reference``; Kruskal-Wallis across
        levels when no reference is given). Axes whose per-sample activities are identical (they read
        the same evidence) share an ``evidence_group`` and are flagged ``shared_evidence``; the BH
        adjustment counts one test per distinct evidence vector, not one per axis. With
        ``reference`` the z-scores are centred on the reference samples.
    scores_key, state_key, crosstalk_key, tib_key
        Where the earlier tools stored their results.
    layer
        Expression used for axes without a linked signature, and for the axis-specific gene evidence
        of axes whose other evidence is all shared with other axes (each axis then keeps a feature
        of its own: the mean expression of its ligand and receptor genes); ``None``: ``.X`` (or ``.raw``,
        see ``use_raw``); counts are log-normalised on the fly, and scaled data (negative values) are refused.
    use_raw
        Read that expression from ``.raw`` (scanpy's convention, as :func:`hcctme.tl.score`): ``None`` uses
        ``.raw`` when it is present and no ``layer`` is given.
    axes
        Restrict to these kb axis ids (default: all).
    active_threshold
        ``active = activity >= active_threshold`` (z units).
    key_added
        ``uns[key_added]``: one row per sample and axis: ``sample``, (``condition``), ``axis``,
        ``axis_name``, ``activity``, ``active``, ``n_evidence``, ``z_scores``, ``z_states``,
        ``z_crosstalk``, ``z_spatial``, ``source`` (where each evidence came from), ``therapies``
        (the kb's, ``name [tier, trial or paper | status | negative: trials]``, best tier first), ``evidence``
        (a readable summary). ``uns[key_added + "_evidence"]``: the long
        evidence table; ``uns[key_added + "_summary"]``: the cohort summary (with a condition);
        ``uns[key_added + "_params"]``: tool, params, library_version, kb_version, absent evidence kinds.
    copy
        Return a copy of ``adata`` with the results instead of writing into ``adata``.

    Returns
    -------
    None, or the AnnData copy when ``copy=True``.
    """
    _validate.anndata(adata, writes=True)
    samples = _validate.categorical_levels(adata, sample_key, purpose="sample_key")
    key_added = _validate.key_added(key_added, adata=adata, slots=("uns",),
                                    reads=(scores_key, state_key, crosstalk_key, tib_key),
                                    tool="hcctme.tl.resistance_profile",
                                    outputs=[("uns", Suffix.EVIDENCE), ("uns", Suffix.SUMMARY)])
    condition, reference = _check_condition(adata, sample_key, condition_key, reference, active_threshold)
    _validate.copy_flag(copy, adata=adata, tool="hcctme.tl.resistance_profile", writes="uns")
    for name, value in (("state_key", state_key), ("crosstalk_key", crosstalk_key), ("tib_key", tib_key)):
        _validate.key_name(value, name=name)
    scores = _validate.scores(adata, scores_key)  # checks the key too; KeyError: run hcctme.tl.score first
    _validate.finite_scores(scores, scores_key)
    axes_table, _ = _select_axes(axes)
    kb_table, kb_links = _select_axes(None)  # every axis is read: which evidence is shared is the kb's, not the call's
    order = pd.Index(pd.unique(samples.astype(str)), name=sample_key)
    if len(order) < 2:
        raise _validate.TooFewCellsError(
            f"resistance_profile reads each axis against the cohort (z-scores over samples), so it needs at least 2 "
            f"samples in obs[{sample_key!r}]; got {len(order)} ({order[0]!r}). Profile the cohort together"
        )
    samples = samples.astype(str)
    src = _sources(adata, sample_key=sample_key, state_key=state_key, crosstalk_key=crosstalk_key, tib_key=tib_key,
                   axes_table=kb_table, order=order)
    wanted = [g for genes in kb_table["genes"] if genes for g in genes]
    read_genes = _GeneEvidence(adata, wanted, samples, order, layer, use_raw, src["contexts"])
    keys = {"scores_key": scores_key, "state_key": state_key, "crosstalk_key": crosstalk_key, "tib_key": tib_key}
    profile, evidence, summary = _profile(scores, samples, order, condition, reference, kb_table, kb_links, src,
                                          read_genes, active_threshold=float(active_threshold), keys=keys,
                                          selected=axes_table)
    call = {"sample_key": sample_key, "condition_key": condition_key, "reference": reference, **keys,
            "layer": layer, "use_raw": use_raw,
            "axes": list(axes) if axes is not None and not isinstance(axes, str) else axes}
    params = _params(call, axes_table, float(active_threshold), order, src["absent"], summary)

    adata = adata.copy() if copy else adata  # nothing above touched adata
    _write(adata, key_added, profile, evidence, params, summary)
    logger.info("resistance_profile: %d samples x %d axes, %d active -> uns[%r]", len(order), len(axes_table),
                int(profile["active"].sum()), key_added)
    return adata if copy else None

def _combine(evidence: pd.DataFrame, axes_table: pd.DataFrame, order: pd.Index, *,
             active_threshold: float) -> pd.DataFrame:
    """One row per sample x axis from the long evidence table."""
    index = pd.MultiIndex.from_product([order, axes_table["axis"]], names=["sample", "axis"])
    if len(evidence):
        kind_z = evidence.groupby(["sample", "axis", "evidence"], sort=False)["z"].mean().unstack("evidence")
    else:
        kind_z = pd.DataFrame(index=index)
    kind_z = kind_z.reindex(index=index, columns=list(KINDS))
    activity = kind_z.mean(axis=1, skipna=True)
    n_evidence = kind_z.notna().sum(axis=1)
    out = pd.DataFrame({"activity": activity, "active": (activity >= active_threshold).fillna(False),
                        "n_evidence": n_evidence.astype(int)}, index=index)
    for kind in KINDS:
        out[f"z_{kind}"] = kind_z[kind]
    sources = (evidence.dropna(subset=["z"]).groupby(["axis", "evidence"], sort=False)["source"]
               .agg(lambda s: "; ".join(dict.fromkeys(s))) if len(evidence) else pd.Series(dtype=str))
    source_text = {}
    for axis in axes_table["axis"]:
        parts = [f"{kind}: {sources[(axis, kind)]}" for kind in KINDS if (axis, kind) in sources.index]
        source_text[axis] = " | ".join(parts)
    out = out.reset_index()
    out["source"] = out["axis"].map(source_text).fillna("")
    names = dict(zip(axes_table["axis"], axes_table["name"], strict=True))
    out.insert(2, "axis_name", out["axis"].map(names))
    therapies = {axis: _kb_therapies(axis) for axis in axes_table["axis"]}
    out["therapies"] = out["axis"].map(therapies).fillna("")
    out["evidence"] = _evidence_text(evidence, out)
    out["active"] = out["active"].astype(bool)
    return out


def _evidence_text(evidence: pd.DataFrame, out: pd.DataFrame) -> list[str]:
    if not len(evidence):
        return [""] * len(out)
    ev = evidence.dropna(subset=["z"])
    z = ev["z"].round(2) + 0.0  # + 0.0: a z at the centre reads 0.0, never -0.0 (its sign is summation noise)
    text = (ev.assign(t=ev["feature"] + " z=" + z.astype(str))
            .groupby(["sample", "axis"], sort=False)["t"].agg(", ".join))
    return [text.get((s, a), "") for s, a in zip(out["sample"], out["axis"], strict=True)]


def _evidence_groups(profile: pd.DataFrame) -> pd.Series:
    """Axis -> its evidence group (the ';'-joined axes with an identical per-sample activity vector).

    Such axes carry the same evidence and count as one test. An axis measured in no sample shares nothing: it is
    its own group.
    """
    wide = profile.pivot(index="sample", columns="axis", values="activity")
    keys: dict[tuple, list[str]] = {}
    for axis in pd.unique(profile["axis"]):
        vector = wide[axis].to_numpy(dtype=float)
        key = (tuple(np.where(np.isnan(vector), np.inf, np.round(vector, 10))) if np.isfinite(vector).any()
               else ("unmeasured", axis))
        keys.setdefault(key, []).append(axis)
    return pd.Series({axis: ";".join(members) for members in keys.values() for axis in members}, name="evidence_group")


def _summary(profile: pd.DataFrame, reference: str | None) -> pd.DataFrame:
    """Axis activity by condition with a rank test (patients as replicates); BH over distinct evidence."""
    rows = _summary_rows(profile, reference)
    summary = pd.DataFrame(rows)
    if not len(summary):
        return summary
    groups = _evidence_groups(profile)
    summary["evidence_group"] = summary["axis"].map(groups)
    summary["shared_evidence"] = summary["evidence_group"].str.contains(";", regex=False)
    # one test per distinct evidence vector (and compared level): identical axes are not independent tests
    distinct = summary.drop_duplicates(["evidence_group", "group"])
    padj = pd.Series(_stats.bh(distinct["pvalue"].to_numpy()),
                     index=pd.MultiIndex.from_frame(distinct[["evidence_group", "group"]]))
    summary["padj"] = padj.reindex(pd.MultiIndex.from_frame(summary[["evidence_group", "group"]])).to_numpy()
    return summary.sort_values(["pvalue", "axis"], na_position="last").reset_index(drop=True)


def _summary_rows(profile: pd.DataFrame, reference: str | None) -> list[dict[str, Any]]:
    """One row per axis (and compared level) with the rank test of its activity.

    Means and fractions active are over the patients in whom the axis was measured (finite activity), as the
    tests and ``n_*`` are: a patient without the axis's cells is not an inactive one. Without a reference the test
    is Kruskal-Wallis with a permutation p (:func:`hcctme.tl._stats.kruskal`; exact at small n).
    """
    rows = []
    levels = sorted(profile["condition"].unique())
    for axis, group in profile.groupby("axis", sort=False):
        group = group[np.isfinite(group["activity"].to_numpy(dtype=float))]
        by = {lv: group.loc[group["condition"] == lv, "activity"].to_numpy() for lv in levels}
        if reference is not None:
            ref = by[reference]
            for lv in levels:
                if lv == reference:
                    continue
                other = by[lv]
                p, stat = np.nan, np.nan
                if len(ref) >= 2 and len(other) >= 2:
                    stat, p = _stats.mannwhitney(other, ref)
                mean_other = float(np.mean(other)) if len(other) else np.nan
                mean_ref = float(np.mean(ref)) if len(ref) else np.nan
                active = group["active"]
                rows.append({"axis": axis, "group": lv, "reference": reference,
                             "mean_activity_group": mean_other, "mean_activity_reference": mean_ref,
                             "effect": mean_other - mean_ref,
                             "fraction_active_group": _share(active[group["condition"] == lv]),
                             "fraction_active_reference": _share(active[group["condition"] == reference]),
                             "statistic": stat, "pvalue": p, "test": "mannwhitneyu",
                             "n_group": len(other), "n_reference": len(ref)})
        else:
            arrays = [a for a in by.values() if len(a) >= 2]
            p, stat = np.nan, np.nan
            if len(arrays) >= 2:
                stat, p = _stats.kruskal(arrays)
            row = {"axis": axis, "group": "all", "reference": "", "statistic": stat, "pvalue": p, "test": "kruskal"}
            for lv in levels:
                row[f"mean_activity_{lv}"] = float(np.mean(by[lv])) if len(by[lv]) else np.nan
                row[f"fraction_active_{lv}"] = _share(group.loc[group["condition"] == lv, "active"])
            rows.append(row)
    return rows


def _share(active: pd.Series) -> float:
    """The share of True in ``active`` (NaN when empty: no patient measured)."""
    return float(active.astype(bool).mean()) if len(active) else np.nan
