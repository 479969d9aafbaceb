"""Seeds of the self-training of state calls: clusters, their states and the mixture's confident calls.

The labels the classifier of :mod:`hcctme.tl._state_selftrain` is fitted on, confirmed by
:mod:`hcctme.tl._state_specificity`. K-means clusters of the cells in PC space (2 K + 4); a cluster is a seed of the
state whose mean z-score is highest there when that mean reaches :data:`~hcctme._constants.STATE_CLUSTER_SEED_Z`, at
least :data:`~hcctme._constants.STATE_CLUSTER_SEED_SHARE` of that state's highest cluster mean, and
:data:`~hcctme._constants.STATE_CLUSTER_SUPPORT` of the cluster's cells are that state's mixture calls, or the mean
reaches :data:`~hcctme._constants.STATE_CLUSTER_STRONG_Z`, or the mixture calls the cluster's cells that state more
often than all other states together, or the mixture calls the state nowhere in the population and its mean leads
the cluster's next state by :data:`~hcctme._constants.STATE_CLUSTER_UNCALLED_LEAD`. A cluster that its best state
does not seed, but of whose cells at least :data:`~hcctme._constants.STATE_CLUSTER_MAJORITY` are one state's mixture
calls, seeds that state where its mean z-score is high as above and nothing where it is not (cells on a continuum,
or highest in a sibling's list through shared genes, are the state's cells); the other clusters are seeds of "none
of these" (naive-like or monocyte-like cells that score moderately for a state's signature). A cell whose confident
mixture call (posterior >= :data:`~hcctme._constants.STATE_SEED_CONFIDENCE`, or the median posterior of that state's
calls when lower) names another class is left out of the seeds, and a cell the mixture calls a state at all is no
"none of these" seed (:func:`combined_seeds`). A cluster the specificity test declines is a seed of "none of these",
or of no class when its state's median gene is up there and another cluster seeds the state (:func:`confirm_seeds`).
A cluster the majority rule leaves without a seed whose state the test declines seeds "none of these", the
mixture's calls of that state included (:func:`unbacked_majorities`).
A short panel no cluster seeds is looked for by its genes' mean log expression, which a within-cell rank score does
not follow (:func:`expression_seeds`); every short panel, seeded or not, then through the genes it is co-expressed
with (:mod:`hcctme.tl._state_coexpression`, release 2.39).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hcctme._constants import STATE_SHORT_EXPRESSION_AUROC
from hcctme.tl import _state_specificity as _specificity
from hcctme.tl._state_params import SelfTrainParams
from hcctme.tl._state_specificity import GenePanel

NONE_CLASS = "none of these"


def clusters(pcs: np.ndarray, n_states: int, params: SelfTrainParams) -> np.ndarray:
    """K-means clusters of the cells in PC space (``2 K + 4``, capped by ``cluster_cells`` and ``max_clusters``)."""
    from sklearn.cluster import KMeans

    n_clusters = int(min(_wanted_clusters(n_states, params), max(pcs.shape[0] // params.cluster_cells, 2)))
    seed = params.random_state % 2**32  # a population's seedings add their index to the user's seed
    return KMeans(n_clusters=n_clusters, n_init=3, random_state=seed).fit_predict(pcs)


def _wanted_clusters(n_states: int, params: SelfTrainParams) -> int:
    """The clusters :func:`clusters` makes for ``n_states`` states where the cells allow (``2 K + 4``, capped)."""
    return min(2 * n_states + 4, params.max_clusters)


def cells_for_clusters(n_states: int, params: SelfTrainParams) -> int:
    """The cells a population needs for :func:`clusters` to make all its clusters (one per ``params.cluster_cells``).

    With fewer, it has fewer clusters than its states and "none of these" need, and some states lead none: their
    cells are called a seeded state, with the confidence of seeds they do not resemble (the figures are beside
    :data:`~hcctme._constants.STATE_CLUSTER_CELLS`).
    """
    return params.cluster_cells * _wanted_clusters(n_states, params)


@dataclass(frozen=True)
class ClusterSummary:
    """Each k-means cluster's cells' mean state z-scores and mixture calls, read by the seeding rules.

    Rows follow ``clusters`` (sorted); columns follow the state ids.
    """

    groups: np.ndarray  # each cell's cluster
    mixture: np.ndarray  # each cell's mixture call ("" for none)
    clusters: np.ndarray
    means: np.ndarray  # mean z-score of each state
    support: np.ndarray  # share of the cluster's cells the mixture calls each state
    called: np.ndarray  # share of the cluster's cells the mixture calls any state
    top: np.ndarray  # each state's highest mean over the clusters of at least min_seeds cells (:func:`_top`)
    uncalled: np.ndarray  # the states the mixture calls in fewer than min_seeds cells of the population
    population_called: float  # the share of the population's cells the mixture calls

    def members(self, i: int) -> np.ndarray:
        """The cells of the ``i``-th cluster (indices)."""
        return np.flatnonzero(self.groups == self.clusters[i])

    def majority(self, i: int) -> int:
        """The state the mixture calls most often in the ``i``-th cluster (column; the first of ties)."""
        return int(np.argmax(self.support[i]))


def summarise(groups: np.ndarray, z: np.ndarray, ids: list[str], mixture: np.ndarray,
              params: SelfTrainParams) -> ClusterSummary:
    """The :class:`ClusterSummary` of clusters ``groups`` (``z``: state z-scores, columns = ``ids``; ``mixture``)."""
    clusters_of, sizes = np.unique(groups, return_counts=True)
    means = np.vstack([z[groups == g].mean(axis=0) for g in clusters_of])
    support = np.array([[np.mean(mixture[groups == g] == s) for s in ids] for g in clusters_of]).reshape(
        clusters_of.size, len(ids))
    called = np.array([np.mean(mixture[groups == g] != "") for g in clusters_of])
    return ClusterSummary(groups=groups, mixture=mixture, clusters=clusters_of, means=means,
                          support=support, called=called, top=_top(means, sizes, params),
                          uncalled=_few_calls(mixture, ids, params.min_seeds),
                          population_called=float(np.mean(mixture != "")))


def _few_calls(mixture: np.ndarray, ids: list[str], fewer_than: int) -> np.ndarray:
    """Per state of ``ids``, whether the mixture calls it in fewer than ``fewer_than`` cells (``mixture``: calls)."""
    return np.array([np.count_nonzero(mixture == s) < fewer_than for s in ids], dtype=bool)


def cluster_seeds(summary: ClusterSummary, ids: list[str], params: SelfTrainParams,
                  candidates: dict[Any, list[str]] | None = None) -> np.ndarray:
    """Seed label per cell from its cluster's mean state z-scores: a state id or :data:`NONE_CLASS`.

    A cluster is a seed of its first candidate (:func:`cluster_candidates`; ``candidates`` where the caller has
    them): of the states whose mean z-score reaches ``params.cluster_z`` and at least ``params.cluster_share`` of
    the highest mean any cluster has for that state, and that the mixture backs there, the one highest in the
    cluster. Release 2.20 reads the states in that order; before, only the highest state was read, and a cluster
    highest in a state the mixture does not back was "none of these" even where the next state was high and
    backed (deep_10x generator seed 400: two clusters of 157 progenitor cells, highest in the unplanted CD8_TSTR
    list through the heat-shock genes of their programme, CD8_TEX_PROGENITOR at 0.37 and 0.25 with 11 and 10
    of their cells called progenitor by the mixture; no cell was called progenitor). A state is high in
    a cluster as above (the cluster where the signature is highest marks the state; a cluster only
    half as high in it, such as naive T cells in a progenitor-exhausted score that reads TCF7 and
    SELL, is another programme) and backed when at least ``params.cluster_support`` of its cells are
    that state's calls in the mixture (a
    state absent from the data has a highest cluster too, but few calls there), or its mean
    reaches ``params.cluster_strong_z`` (a state the mixture misses but a cluster clearly
    expresses), or more of its cells are that state's mixture calls than any other state's calls
    together: the mixture backs the cluster wherever it calls its cells at all. A state that is a
    large share of a population cannot reach a high mean z-score (the z-scores are standardised
    over the population, the state included), and a 1-D mixture of a short panel's score at depth
    may call few cells anywhere (a one-state population: 16 calls in 509 cells, 5 % of a 122-cell
    cluster of the state); what the support guards against, a sibling's cluster taken by a state
    through shared genes, shows as the cluster's calls going to the sibling, and that sibling is high there too;
    where the mixture calls cells of the cluster but none of the states it calls there is high in the cluster,
    its calls are scattered over programmes the cluster does not express and back its best state (10x generator
    seed 200: the mixture called 1 of 920 CD8 T cells progenitor; the cluster highest in the progenitor list (53
    of its 59 cells progenitor) had 13 terminal calls at a terminal mean z-score of -0.03 and was "none of
    these", with a second cluster of 90 progenitor cells, and 148 of the 151 clean progenitor cells ended
    unassigned), when the mixture calls at least ``params.cluster_scattered_called`` times the population's share
    of its cells (a cluster it mostly leaves unassigned is no state's: with TAM2_SPP1 removed from the data, a
    cluster of monocyte-like cells highest in the TAM2_SPP1 list had 14-15 % of its cells called against 48-52 %
    of the macrophages, and the specificity test passed it). A state the mixture calls
    in fewer than ``params.min_seeds`` cells of the population (its component collapsed, or a one-state population
    whose 1-D mixture calls nothing, or a signature that reads the state's cells too little for the mixture) gets no
    word from it either way: it is backed where its mean leads the
    cluster's next state by ``params.cluster_uncalled_lead`` (noisy generator seed 103: the mixture
    called no cell KUPFFER and 113 cells the unplanted TAM1_FOLR2, and three clusters holding 201 of
    the 265 KUPFFER cells, KUPFFER 0.56-0.92 and TAM1_FOLR2 0.24-0.33, were "none of these"), not
    where a sibling is nearly as high (a cluster of Kupffer cells at 0.90 in the unplanted TAM1_FOLR2,
    read through the genes it shares with KUPFFER at 0.83); the specificity test is then the guard
    against a state absent from the data. Before release 2.26 only a state called in no cell was, and a handful of
    calls decided by chance whether the state was seeded at all (10x generator seed 200: 1 progenitor call in 765
    CD8 T cells; the one cluster leading in the progenitor list, 22-26 cells, was backed through the scattered calls
    at 27 % of its cells called against a bar of 24.7 %, and not at 23 % with k-means at another random state, and
    with it went 139 of the 151 progenitor cells' calls: CD8 ARI 0.84 or 0.62). A cluster its best state
    does not seed is not "none of these" when at least ``params.cluster_majority`` of its cells are
    one state's mixture calls: it seeds that state where that state's mean is high as above, and is
    no seed (``""``) where it is not, unless the state's test declines it (:func:`unbacked_majorities`; 10x
    generator seed 101: a cluster of progenitor-exhausted cells
    highest in the unplanted CD8_TSTR list through the heat-shock genes of their programme, and one of
    terminal cells on the continuum at 0.79 against half the terminal cluster's 1.63, were "none of
    these" seeds and taught the classifier to call 47 progenitor cells "none"). Every candidate is
    then tested by :func:`confirm_seeds`, which tests a declined cluster's next candidates. The other clusters are
    "none of these".
    """
    candidates = cluster_candidates(summary, ids, params) if candidates is None else candidates
    label = [candidates[g][0] if candidates[g] else _majority_seed(i, summary, ids, params)
             for i, g in enumerate(summary.clusters)]
    return np.asarray(label, dtype=object)[np.searchsorted(summary.clusters, summary.groups)]


def _majority_seed(i: int, summary: ClusterSummary, ids: list[str], params: SelfTrainParams) -> str:
    """The seed of the ``i``-th cluster, which has no candidates (:func:`cluster_seeds`'s majority rule).

    A state, ``""`` (no seed) or :data:`NONE_CLASS`.
    """
    row = summary.means[i]
    majority = summary.majority(i)
    if summary.support[i, majority] >= params.cluster_majority and row[majority] >= params.cluster_z:
        return ids[majority] if row[majority] >= _seed_bar(summary.top[majority], params) else ""
    return NONE_CLASS


def cluster_candidates(summary: ClusterSummary, ids: list[str], params: SelfTrainParams) -> dict[Any, list[str]]:
    """Per cluster, the states it may seed (:func:`cluster_seeds`): high there and backed, highest mean z first.

    A state is high in a cluster whose mean z-score reaches ``params.cluster_z`` and ``params.cluster_share`` of
    its highest mean over the clusters of at least ``params.min_seeds`` cells (k-means leaves clusters of one or two
    outlying cells, whose mean would set the bar: deep_10x generator seed 600, a 2-cell cluster at 1.66 in the
    CD8_TEX_PROGENITOR list put the clusters of 124 progenitor cells, 0.37 and 0.57, under it), and backed as
    :func:`cluster_seeds` says.
    """
    out: dict[Any, list[str]] = {}
    for i, g in enumerate(summary.clusters):
        row, support, called = summary.means[i], summary.support[i], float(summary.called[i])
        high = row >= _seed_bar(summary.top, params)
        out[g] = [ids[j] for j in np.argsort(-row, kind="stable")
                  if high[j] and _backed(j, row, support, called, high, summary.uncalled,
                                         summary.population_called, params)]
    return out


def _backed(j: int, row: np.ndarray, support: np.ndarray, called: float, high: np.ndarray, uncalled: np.ndarray,
            population_called: float, params: SelfTrainParams) -> bool:
    """Whether the mixture backs state ``j`` in a cluster (:func:`cluster_seeds`).

    ``row``: the cluster's mean z-scores; ``support``: the share of its cells the mixture calls each state;
    ``called``: the share it calls any state; ``high``: the states high there; ``uncalled``: the states the mixture
    calls in too few cells of the population to say anything of (:class:`ClusterSummary`); ``population_called``:
    the share of the population's cells it calls.
    """
    rivals = np.delete(high & (support > 0), j)
    return bool(support[j] >= params.cluster_support or row[j] >= params.cluster_strong_z
                or support[j] > called - support[j]
                or (uncalled[j] and _lead(row, j) >= params.cluster_uncalled_lead)
                or (called > 0 and not rivals.any() and called >= params.cluster_scattered_called * population_called))


def _top(means: np.ndarray, sizes: np.ndarray, params: SelfTrainParams) -> np.ndarray:
    """Each state's highest cluster mean z-score (``means``: rows = clusters) over clusters of >= min_seeds cells."""
    sized = sizes >= params.min_seeds
    return means[sized].max(axis=0) if sized.any() else means.max(axis=0)


def _seed_bar(top: Any, params: SelfTrainParams) -> Any:
    """The mean a cluster needs to seed a state: ``params.cluster_z`` and ``params.cluster_share`` of ``top``."""
    return np.maximum(params.cluster_z, params.cluster_share * top)


def _lead(row: np.ndarray, j: int) -> float:
    """How far state ``j``'s mean z-score in ``row`` is above the next state's (infinite with one state)."""
    others = np.delete(row, j)
    return float(row[j] - others.max()) if others.size else float("inf")


def untested_report(ids: list[str]) -> dict[str, dict[str, Any]]:
    """A specificity report before any cluster is tested: per state, not seeded, no cluster tested, p-value 1."""
    return {s: {"seeded": False, "clusters_tested": 0, "clusters_declined": 0, "pvalue": 1.0} for s in ids}


def confirm_seeds(labels: np.ndarray, groups: np.ndarray, ids: list[str], panel: GenePanel,
                  z: np.ndarray, candidates: dict[Any, list[str]] | None = None
                  ) -> tuple[np.ndarray, dict[str, dict[str, Any]]]:
    """Decline the state seeds of clusters whose state genes are not up there (:mod:`._state_specificity`).

    Each seeded cluster is compared with the cells of the clusters that do not score for its state
    (``z``: the cells' state z-scores, columns = ``ids``; :func:`._state_specificity.reference_rows`).
    Clusters labelled :data:`NONE_CLASS` or ``""`` (no seed) are not tested. A short panel that reads a sibling
    in its cluster (:func:`._state_specificity.read_through`) is declined there, and the cluster seeds the sibling
    where the sibling's genes pass the test against its own reference, else "none of these" (``read_through`` in
    the panel's report; the sibling's ``clusters_tested`` and ``seeded`` count it). A short panel that passes
    there through genes all a sibling's, where that sibling scores lower but passes its own test, reads the sibling
    too (deep 10x generator seed 701: a cluster of Kupffer cells higher in the 4-gene TAM1_FOLR2 panel than in the
    KUPFFER list passed TAM1_FOLR2 through FOLR2 alone, and 121 of the 350 Kupffer cells were called the unplanted
    state).
    ``candidates``: per cluster, the states it may seed (:func:`cluster_candidates`); a cluster whose state is
    declined (not read through a sibling) is tested for its next candidates in turn and seeds the first that passes
    (deep_10x generator seed 701: three clusters of 216 progenitor cells were highest in the unplanted CD8_TSTR
    list, which the mixture backed and the test declined, and were "none of these"; one of them is a
    CD8_TEX_PROGENITOR candidate).
    Returns the labels (declined clusters become :data:`NONE_CLASS`; a declined cluster whose state's
    median gene is up there, :func:`._state_specificity.undecided`, becomes ``""``, not a seed, when
    another cluster seeds that state and none of its later candidates passes: it expresses the state's genes
    without significance, and as "none of these" it would train the classifier against the state's own cells)
    and, per state,
    ``seeded`` (a cluster kept it), ``clusters_tested``, ``clusters_declined`` and the test of its
    cluster with the smallest p-value (:func:`._state_specificity.gene_test`).
    """
    out = labels.copy()
    undecided = np.full(labels.size, "", dtype=object)
    report = untested_report(ids)
    for g in np.unique(groups):
        members = np.flatnonzero(groups == g)
        first = labels[members[0]]
        if first in (NONE_CLASS, ""):
            continue
        later = (candidates or {}).get(g, [])
        highest = ids[int(np.argmax(z[members].mean(axis=0)))]
        for state in [first, *later[later.index(first) + 1:]] if first in later else [first]:
            later_short = state != highest and _specificity.short_panel(panel, state)
            outcome, test = _confirmed(state, members, groups, g, z, ids, panel, report,
                                       highest if later_short else None)
            if outcome is not None:
                out[members] = outcome
                undecided[members] = ""
                break
            if not undecided[members[0]] and _specificity.undecided(test):
                undecided[members] = state
        else:
            out[members] = NONE_CLASS
    seeded = [s for s, entry in report.items() if entry["seeded"]]
    out[np.isin(undecided, seeded)] = ""
    return out, report


def _confirmed(state: str, members: np.ndarray, groups: np.ndarray, cluster: Any, z: np.ndarray, ids: list[str],
               panel: GenePanel, report: dict[str, dict[str, Any]], only: str | None = None
               ) -> tuple[str | None, dict[str, float]]:
    """A cluster's label from one candidate state's test (None: declined) and that test (:func:`confirm_seeds`).

    The state, where its test passes; the sibling a short panel reads there, where the sibling's test passes, else
    :data:`NONE_CLASS` (a read-through ends the cluster's candidates). ``only``: the one label the cluster may
    take, for a short panel that is not the cluster's highest state (``only`` is that highest state): it does not
    seed the cluster itself (its test passes on one gene, which
    the programme of the cluster's highest state can raise: doublets_10x generator seed 400, a cluster of 13
    TGFB-myCAF cells passed the unplanted CAF_ONCOFETAL_POSTN through POSTN, and 10 programme-less cells were then
    called it), and leads to the sibling it reads only where that sibling is the cluster's highest state (He 2020's
    70 liver macrophages: a mixed cluster highest in TAM2_SPP1, backed for the 4-gene TAM1_FOLR2, read KUPFFER
    through it, and its 12 Mac_SPP1 cells were called KUPFFER).
    """
    auroc, test = cluster_test(state, members, groups, cluster, z, ids, panel)
    entry = _tested(report[state], test)
    sibling, sibling_test = sibling_read(state, auroc, test, members, groups, cluster, z, ids, panel)
    if sibling is not None:
        entry["clusters_declined"] += 1
        entry["read_through"] = sibling
        sibling_entry = _tested(report[sibling], sibling_test)
        if _specificity.specific(sibling_test) and only in (None, sibling):
            sibling_entry["seeded"] = True
            return sibling, test
        return NONE_CLASS, test
    if only in (None, state) and _specificity.specific(test):
        entry["seeded"] = True
        return state, test
    entry["clusters_declined"] += 1
    return None, test


def sibling_read(state: str, auroc: np.ndarray, test: dict[str, float], members: np.ndarray, groups: np.ndarray,
                 cluster: Any, z: np.ndarray, ids: list[str], panel: GenePanel
                 ) -> tuple[str | None, dict[str, float] | None]:
    """The sibling a short panel reads in a cluster and its test there, or (None, None) (:func:`confirm_seeds`).

    ``auroc`` / ``test``: the panel's genes' AUROC in the cluster and the panel's test there. The sibling that
    scores at least as high (:func:`._state_specificity.read_through`), tested whatever the outcome; else, where
    the panel passes, the sibling holding its up genes whatever the scores, where that sibling's test passes too.
    """
    if not _specificity.short_panel(panel, state):
        return None, None
    means = z[members].mean(axis=0)
    sibling = _specificity.read_through(auroc, panel, state, ids, means)
    higher = sibling is not None and means[ids.index(sibling)] >= means[ids.index(state)]
    if sibling is None or not (higher or _specificity.specific(test)):
        return None, None
    sibling_test = cluster_test(sibling, members, groups, cluster, z, ids, panel)[1]
    return (sibling, sibling_test) if higher or _specificity.specific(sibling_test) else (None, None)


def tested_where_best(report: dict[str, dict[str, Any]], mixture_calls: np.ndarray, groups: np.ndarray,
                      ids: list[str], panel: GenePanel, z: np.ndarray, min_cells: int) -> None:
    """Test each state the mixture calls but no cluster was a candidate for, in its highest-scoring cluster (in place).

    Used where the seeds are too few for the classifier and the population keeps the mixture's calls: without
    it, the calls of a state no cluster backs were kept untested (generator 10x seed 200 with
    ENDO_ONCOFETAL_PLVAP removed: 35 of 228 endothelial cells called it). ``report``: :func:`confirm_seeds`'s;
    the state's entry counts the test and is ``seeded`` where it passes (:func:`._state_specificity.specific`),
    else the cluster counts as declined. The cluster is the highest-scoring of those with at least ``min_cells``
    cells (k-means leaves one-cell clusters of outliers), and it is not tested where it has fewer than
    ``min_cells`` reference cells (:func:`._state_specificity.reference_rows`): nearly the whole population, it has
    nothing to be compared with (Wu 2021 CD4 T cells: 57 cells in clusters of 51 and 6, the Tregs in the larger one).
    A short panel that reads a sibling there (:func:`sibling_read`, as in :func:`confirm_seeds`) is declined
    (``read_through`` in its entry); the sibling keeps its own calls, which this test does not add to.
    """
    labels_of, sizes = np.unique(groups, return_counts=True)
    sized = labels_of[sizes >= min_cells]
    if not sized.size:
        return
    means = np.vstack([z[groups == g].mean(axis=0) for g in sized])
    for j, state in enumerate(ids):
        if report[state]["clusters_tested"] or not np.any(mixture_calls == state):
            continue
        best = sized[int(np.argmax(means[:, j]))]
        reference = _specificity.reference_rows(groups, z[:, j], best, short=_specificity.short_panel(panel, state))
        if reference.size < min_cells:
            continue
        members = np.flatnonzero(groups == best)
        auroc, test = cluster_test(state, members, groups, best, z, ids, panel, reference)
        entry = _tested(report[state], test)
        sibling, _ = sibling_read(state, auroc, test, members, groups, best, z, ids, panel)
        if sibling is not None:
            entry["read_through"] = sibling
        entry["seeded"] = sibling is None and _specificity.specific(test)
        entry["clusters_declined"] += int(not entry["seeded"])


def cluster_test(state: str, members: np.ndarray, groups: np.ndarray, cluster: Any, z: np.ndarray,
                 ids: list[str], panel: GenePanel, reference: np.ndarray | None = None
                 ) -> tuple[np.ndarray, dict[str, float]]:
    """The cluster's AUROC row against the state's reference cells and the state's gene test there.

    ``reference``: the state's reference rows (:func:`._state_specificity.reference_rows`) where the caller has them.
    """
    short = _specificity.short_panel(panel, state)
    state_z = z[:, ids.index(state)]
    if reference is None:
        reference = _specificity.reference_rows(groups, state_z, cluster, short=short)
    auroc, detected = _specificity.auroc_against(panel.X, members, reference)
    down = panel.down_columns.get(state, np.empty(0, dtype=int))
    if short and down.size:  # the down genes are read against the cells that do not score for the state
        auroc[down], detected[down] = _specificity.auroc_against(
            panel.X[:, down], members, _specificity.reference_rows(groups, state_z, cluster))
    return auroc, _specificity.gene_test(auroc, panel, state, detected)


def _tested(entry: dict[str, Any], test: dict[str, float]) -> dict[str, Any]:
    """Count one more tested cluster in a state's report, keeping the test with the smallest p-value; the entry."""
    entry["clusters_tested"] += 1
    if test["pvalue"] <= entry["pvalue"]:
        entry.update(test)
    return entry


def seeds(ids: list[str], best: np.ndarray, confidence: np.ndarray, called: np.ndarray, z: np.ndarray,
          params: SelfTrainParams) -> np.ndarray:
    """Seed label per cell: a state id, :data:`NONE_CLASS`, or ``""`` (not a seed).

    A state's seeds are its calls with a posterior of at least the seed confidence, or at least
    the median posterior of its calls when that is lower: a state the mixture calls with little
    confidence keeps its better half as seeds instead of dropping out of the classifier.
    """
    labels = np.full(best.size, "", dtype=object)
    state = np.zeros(best.size, dtype=bool)
    for j, state_id in enumerate(ids):
        mine = called & (best == j)
        if mine.any():
            level = min(params.seed_confidence, float(np.median(confidence[mine])))
            state |= mine & (confidence >= level)
            labels[mine & (confidence >= level)] = state_id
    labels[~state & (z.max(axis=1) <= params.none_seed_z)] = NONE_CLASS
    return labels


def unbacked_majorities(labels: np.ndarray, summary: ClusterSummary, ids: list[str], panel: GenePanel, z: np.ndarray,
                        min_cells: int) -> tuple[np.ndarray, np.ndarray]:
    """The clusters the majority rule left without a seed whose state's genes are not up there: "none of these".

    :func:`cluster_seeds` leaves a cluster without a seed (``""``) where most of its cells are one state's mixture
    calls (``summary``: :func:`summarise`) but the state is not high there: cells on the state's
    continuum, or highest in a sibling's list, are the state's cells. Where the state's test
    (:func:`cluster_test`) declines the cluster (at least ``min_cells`` cells) and its median gene is not up
    (:func:`._state_specificity.undecided`), the calls read a programme the library has no state for, and the
    cluster seeds "none of these" (10x generator seed 100 with CD8_TEFF removed: 51 naive T cells of a 53-cell
    cluster at CD8_TEX_PROGENITOR 0.31, half the progenitor cluster's 0.67, 33 of them called progenitor by the
    mixture; without "none" seeds among them the classifier dropped the class and called all 99 programme-less CD8
    T cells progenitor or terminal).

    Returns the labels and the cells whose "none of these" seed stands although the mixture calls them: the
    cluster's calls of the declined state (:func:`combined_seeds`'s ``unbacked``).
    """
    out = labels.copy()
    unbacked = np.zeros(labels.size, dtype=bool)
    for i, g in enumerate(summary.clusters):
        members = summary.members(i)
        if labels[members[0]] != "" or members.size < min_cells or not summary.called[i]:
            continue
        state = ids[summary.majority(i)]
        test = cluster_test(state, members, summary.groups, g, z, ids, panel)[1]
        if not _specificity.specific(test) and not _specificity.undecided(test):
            out[members] = NONE_CLASS
            unbacked[members[summary.mixture[members] == state]] = True
    return out, unbacked


def combined_seeds(clustered: np.ndarray, mixture: np.ndarray, called: np.ndarray,
                   unbacked: np.ndarray | None = None) -> np.ndarray:
    """The classifier's seeds: the cluster seeds the mixture does not contradict (``""``: not a seed).

    Each cell's cluster seed (``clustered``) is kept where the cell's mixture seed (``mixture``,
    :func:`seeds`) is none or the same class, and a :data:`NONE_CLASS` seed only where the mixture
    calls the cell no state (``called``: any call, below the seed confidence too).

    The "none of these" clusters of shallow data are mixed (noisy generator setting: 19 % of the CAFs' and 39 % of
    the neutrophils' "none" seeds were cells in no state); the mixture's calls there, confident or not, are the
    state cells it can see, and as "none" seeds they would teach the classifier to leave their state unassigned.
    ``unbacked``: the called cells that stay "none of these" seeds (:func:`unbacked_majorities`).
    """
    kept = np.zeros(clustered.size, dtype=bool) if unbacked is None else unbacked
    labels = np.where((mixture == "") | (mixture == clustered) | kept, clustered, "").astype(object)
    labels[(labels == NONE_CLASS) & called & ~kept] = ""
    return labels


def with_enough_seeds(labels: np.ndarray, params: SelfTrainParams, tested: frozenset[str] = frozenset()
                      ) -> np.ndarray:
    """The seeds of the classes with enough of them.

    A state in ``tested`` (its seeds confirmed by the specificity test on a full panel) needs
    ``params.min_state_seeds`` seeds, any other class ``params.min_seeds``. Dropping a tested
    state's few seeds silences it wherever its signature reads little of its programme (library 2.2, deep 10x
    generator seed 200: 8 progenitor-exhausted seeds, 134 more progenitor cells in two clusters
    highest in another state's list, which the test declined: 148 of 151 clean progenitor cells
    ended unassigned). A short panel passes the test on one gene, which a sibling's programme can
    raise (with NEU_CD10_ALPL removed from the data, a few seeds of it grew to 18 % of a Smart-seq
    cohort's neutrophils); "none of these" is no programme, and a handful of its seeds would carve out
    an unassigned region under balanced class weights.
    """
    values, counts = np.unique(labels[labels != ""], return_counts=True)
    floor = np.where(np.isin(values, list(tested)), params.min_state_seeds, params.min_seeds)
    return np.where(np.isin(labels, values[counts >= floor]), labels, "")


def tested_on_full_panels(report: dict[str, dict[str, Any]], panel: GenePanel | None) -> frozenset[str]:
    """The states the specificity test ``report`` seeded whose panel is not short in ``panel``."""
    if panel is None:
        return frozenset()
    return frozenset(s for s, d in report.items() if d["seeded"] and not _specificity.short_panel(panel, s))


def usable(labels: np.ndarray, params: SelfTrainParams) -> bool:
    """Whether the seeds hold at least two classes with enough cells each."""
    values, counts = np.unique(labels[labels != ""], return_counts=True)
    return values.size >= 2 and int(np.sum(counts >= params.min_seeds)) >= 2


def expression_seeds(labels: np.ndarray, clustered: np.ndarray, mixture_seeds: np.ndarray, groups: np.ndarray,
                     z: np.ndarray, ids: list[str], panel: GenePanel, report: dict[str, dict[str, Any]],
                     params: SelfTrainParams) -> np.ndarray:
    """The seeds ``labels`` with the short panels no cluster seeds looked for by their genes' expression.

    A short panel's score (a within-cell rank score such as UCell) follows its genes that the state does not
    raise: a gene the state raises and every cell of the population expresses highly ranks near the top in all
    of them (generator endothelial cells, deep 10x seed 700: PLVAP separates the state from the other clean cells
    at AUROC 0.99 on log expression, the UCell score of PLVAP, ACKR1 and DLL4 at 0.57; the state's clusters had
    mean z-scores of -0.08 to -0.05, a programme-less cluster 0.05, and no cluster seeded it). For each short panel
    that :func:`confirm_seeds` left without a seeded cluster (``report``), the population's cells get the mean log
    expression of its measured genes (standardised); the "none of these" clusters (``clustered``) high in it as in
    :func:`cluster_seeds` (at least ``params.min_seeds`` cells) are tested (:func:`cluster_test`) and seed the
    state where the test passes, one of its genes is up at
    :data:`~hcctme._constants.STATE_SHORT_EXPRESSION_AUROC` and it reads no sibling (:func:`sibling_read`):
    their cells become the state's seeds, but those the mixture seeds another state (``mixture_seeds``). Where one
    passes, the high clusters that do not are left out of the seeds (as "none of these" they would train the
    classifier against the state's cells), the state's report counts the tests and ``expression_route`` marks it;
    where none passes, the report and the seeds stay as they were.
    """
    out = labels.copy()
    labels_of, first, sizes = np.unique(groups, return_index=True, return_counts=True)
    candidates = labels_of[(sizes >= params.min_seeds) & (clustered[first] == NONE_CLASS)]
    if not candidates.size:
        return out
    for state in ids:
        cols = panel.state_columns.get(state, np.empty(0, dtype=int))
        if report[state]["seeded"] or not _specificity.short_panel(panel, state) or not cols.size:
            continue
        score = np.asarray(panel.X[:, cols].mean(axis=1), dtype=float).ravel()
        if score.std() == 0:
            continue
        score = (score - score.mean()) / score.std()
        means = np.array([score[groups == g].mean() for g in candidates])
        passed, failed, tests = [], [], []
        for g in candidates[means >= _seed_bar(means.max(), params)]:
            members = np.flatnonzero(groups == g)
            auroc, test = cluster_test(state, members, groups, g, z, ids, panel)
            tests.append(test)
            # the sibling guard is read only where the cluster would otherwise seed the state
            if (_specificity.specific(test) and float(auroc[cols].max()) >= STATE_SHORT_EXPRESSION_AUROC
                    and sibling_read(state, auroc, test, members, groups, g, z, ids, panel)[0] is None):
                passed.append(members)
            else:
                failed.append(members)
        if not passed:  # the state stays as confirm_seeds left it (its mixture calls too, where they are kept)
            continue
        entry = report[state]
        for test in tests:
            _tested(entry, test)
        entry.update(seeded=True, expression_route=True, clusters_declined=entry["clusters_declined"] + len(failed))
        for members in passed:
            out[members[np.isin(mixture_seeds[members], ["", NONE_CLASS, state])]] = state
        for members in failed:
            out[members[out[members] == NONE_CLASS]] = ""
    return out
