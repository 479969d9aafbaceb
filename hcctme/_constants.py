"""Every AnnData key and default that hcctme reads or writes, in one place."""

from __future__ import annotations

from typing import Final


class Keys:
    """Keys of ``obs``/``obsm``/``uns``/``var``/``layers`` written or read by hcctme."""

    SCORES: Final = "hcctme_scores"  # obsm (cells x signatures) and uns (parameters)
    STATE: Final = "hcctme_state"  # obs (categorical state call), uns (mapping, thresholds)
    COMPARE: Final = "hcctme_compare"  # uns: tidy comparison table
    ENRICH: Final = "hcctme_enrich"  # uns: preranked GSEA table
    TA_RESPONSE: Final = "hcctme_ta_response"  # uns: T+A response comparison
    CROSSTALK: Final = "hcctme_crosstalk"  # uns: liana results annotated with axes
    TIB: Final = "hcctme_tib"  # uns: per-sample tumour immune barrier table
    PROFILE: Final = "hcctme_profile"  # uns: per-sample x axis resistance profile
    SYMBOL: Final = "hcctme_symbol"  # var: harmonised gene symbol
    DEPTH_EQUALIZED: Final = "hcctme_depth_equalized"  # layers: counts thinned to a common depth, log1p(CP10k)
    SPATIAL: Final = "spatial"  # obsm: coordinates (squidpy convention)
    COUNTS: Final = "counts"  # layers: raw integer counts
    SIM: Final = "hcctme_sim"  # uns: ground truth of simulated cohorts
    N_CELLS: Final = "n_cells"  # obs of pseudobulk AnnData
    PSEUDOBULK: Final = "hcctme_pseudobulk"  # uns of the AnnData tl.pseudobulk returns (+ PARAMS suffix)
    RUN: Final = "hcctme_run"  # uns: configuration and timings of pipeline.run
    # uns keys of the three comparisons the pipeline runs
    COMPARE_COMPOSITION: Final = "hcctme_compare_composition"
    COMPARE_SCORES: Final = "hcctme_compare_scores"
    COMPARE_GENES: Final = "hcctme_compare_genes"


class Suffix:
    """Suffixes appended to a tool's ``key_added`` for its second outputs (``uns[key_added + suffix]``)."""

    PARAMS: Final = "_params"  # uns: dict of tool, params, library_version and tool-specific provenance
    VALUES: Final = "_values"  # uns: compare's long per-sample values (sample, group, feature, value, condition)
    DIFF: Final = "_diff"  # uns: crosstalk's patient-level differential table
    PER_SAMPLE: Final = "_per_sample"  # uns: ta_response's per-sample table
    SUMMARY: Final = "_summary"  # uns: resistance_profile's per-axis summary by condition
    EVIDENCE: Final = "_evidence"  # uns: resistance_profile's long evidence table
    UNREFINED: Final = "_unrefined"  # obs: call_states' calls before refinement
    CONFIDENCE: Final = "_confidence"  # obs: call_states' confidence
    CONTEXT: Final = "_context"  # obs: the cell_context each cell was read in
    ARTEFACT: Final = "_artefact"  # obs: call_states' artefact score that made a cell "none of these"


# features -> uns key of the pipeline's comparison
COMPARE_KEYS: Final = {
    "composition": Keys.COMPARE_COMPOSITION,
    "scores": Keys.COMPARE_SCORES,
    "genes": Keys.COMPARE_GENES,
}

# States whose cells form the tumour immune barrier (SPP1+ TAM, matrix and TGF-beta myCAF): tl.tib's default
# barrier labels and the barrier the simulator plants.
BARRIER_STATES: Final = ("TAM2_SPP1", "CAF_ECM_MYCAF", "CAF_TGFB_MYCAF")


class Files:
    """Names and limits of the files hcctme reads and writes."""

    MANIFEST: Final = "manifest.json"  # completion marker of a run folder (files, sizes, sha256, parameters)
    MANIFEST_FORMAT: Final = "hcctme-run/1"
    PART_SUFFIX: Final = ".part"  # temporary outputs, moved into place when complete
    MAX_GENE_SET_BYTES: Final = 64 * 1024 * 1024  # GMT/YAML gene-set files larger than this are refused
    SPARSE_CHUNK: Final = 10_000_000  # indices checked per block in backed sparse matrices
    # read_h5ad(backed=None) opens a file backed when its matrices would fill more than this share of free memory
    AUTO_BACKED_FRACTION: Final = 0.25
    RESULTS_H5AD: Final = "hcctme.h5ad"  # the run's results (obs, obsm, uns, var; the matrices only with --write-full)


class Defaults:
    """Default parameters shared by several tools."""

    MAX_RANK: Final = 1500
    MIN_COVERAGE: Final = 0.5
    MIN_GENES: Final = 3  # never score a signature on fewer genes than this
    MIN_CELLS: Final = 10
    SEED: Final = 0  # random_state of every stochastic tool
    ALPHA: Final = 0.05  # the one significance level: padj < ALPHA is "significant" unless a parameter says otherwise
    CHUNK_SIZE: Final = 10_000
    SAMPLE_KEY: Final = "patient"
    CONDITION_KEY: Final = "response"
    REFERENCE: Final = "responder"  # reference level of CONDITION_KEY
    CELL_TYPE_KEY: Final = "cell_type"
    UNASSIGNED: Final = "unassigned"


# treatment settings of the knowledge base (hcctme.kb.axes(setting=...), hcctme.kb.therapies(setting=...)):
# first/second-line systemic therapy, transarterial chemoembolisation, hepatic arterial infusion
# chemotherapy, conversion therapy (locoregional +/- TKI/anti-PD-1 to make a tumour resectable), adjuvant
KB_SETTINGS: Final = ("systemic_first_line", "systemic_second_line", "tace", "haic", "conversion", "adjuvant")
# gene-level tests of pseudobulk counts (tl.compare(features="genes", method=...)): limma-trend (vectorised, the
# default), limma-voom (vectorised) and PyDESeq2; the first is what method="auto" picks
GENE_METHODS: Final = ("limma-trend", "voom", "deseq2")
class Report:
    """Limits of the HTML report (hcctme.report.build)."""

    FINDINGS_PER_KIND: Final = 3  # sentences per kind of result in the cohort summary
    MAX_ROWS: Final = 500  # rows embedded per table; longer tables are written in full as TSV beside the report
    MAX_POINTS: Final = 3000  # points drawn per volcano plot (smallest p-values first, the rest evenly sampled)
    CARD_STATES: Final = 8  # states shown per patient card (those differing most from the cohort)


CELL_CONTEXTS: Final = (
    "t_cell",
    "cd8_t",
    "cd4_t",
    "nk",
    "b_cell",
    "plasma",
    "myeloid",
    "macrophage",
    "monocyte",
    "neutrophil",
    "dendritic",
    "fibroblast",
    "endothelial",
    "hepatocyte",
    "tumour",
    "any",
)

# A context's parents: a cell read as cd8_t is also a t_cell, a macrophage also myeloid.
CONTEXT_PARENTS: Final = {
    "cd8_t": "t_cell",
    "cd4_t": "t_cell",
    "macrophage": "myeloid",
    "monocyte": "myeloid",
    "neutrophil": "myeloid",
    "dendritic": "myeloid",
}

# Signature collections call_states reads besides "<context>_states": artefact programmes (cells
# high in them are "none of these") and cell-type markers (a marker of another lineage flags
# doublets and ambient RNA).
ARTEFACT_COLLECTION: Final = "artefacts"
MARKER_COLLECTION: Final = "cell_type_markers"
# The confidence at which call_states' model calls a cell: the mixture's calls that start its EM and seed the
# self-training, and the seedings' agreement. The user's min_confidence only cuts the final calls, so a stricter
# min_confidence keeps the same model and confidences (session 57: it retrained the model before).
STATE_MODEL_CONFIDENCE: Final = 0.5
# Robust z (median / MAD within a parent population) above which an artefact or foreign-lineage
# score makes a cell "none of these" in call_states.
STATE_ARTEFACT_Z: Final = 3.0
# A foreign-lineage marker that would flag more than this share of a population marks a state whose
# genes it shares, not doublets (and a library size, a state of larger cells): it is not used there. The markers
# together keep their flags in at most this share of a population (the cells furthest toward a foreign lineage).
# A marker's reference level needs STATE_MIN_REFERENCE_CELLS cells.
STATE_MAX_FOREIGN_SHARE: Final = 0.1
# Artefact scores get a two-component normal fit in each parent population (tl/_state_artefacts.py): when
# the upper component is apart from the clean one (Ashman's D >= STATE_ARTEFACT_D, BIC of the two components
# better than one normal's by STATE_ARTEFACT_BIC ("very strong" on Kass & Raftery's scale), upper share >=
# STATE_ARTEFACT_MIN_SHARE), a cell whose posterior of the upper component is > 0.5 and which lies at least
# STATE_ARTEFACT_MIN_Z clean sd above the clean mean (or STATE_ARTEFACT_Z anywhere) is an artefact.
STATE_ARTEFACT_D: Final = 1.5
STATE_ARTEFACT_BIC: Final = 10.0
STATE_ARTEFACT_MIN_SHARE: Final = 0.02
STATE_ARTEFACT_MIN_Z: Final = 2.0
# an artefact list flags only cells that detect at least this many of its genes: a short list's score is zero in
# most cells of a shallow population and a cell detecting one or two of its genes forms an "upper component"
# (datasets.demo(), no stress planted: the 17-gene stress core flagged 158 of 389 neutrophils, 13 of which detect
# three or more of its genes)
STATE_ARTEFACT_MIN_GENES: Final = 3
STATE_MIN_REFERENCE_CELLS: Final = 20
# Other populations' genes learnt from the data (tl/_state_genes_of.py, heterotypic doublets): for a parent
# population with states and a population of another lineage, the genes whose detection rate (share of cells) in
# the other population exceeds the parent's by at least STATE_GENES_OF_GAP (the STATE_GENES_OF_MAX widest gaps;
# none when fewer than STATE_GENES_OF_MIN qualify). A cell is flagged on them (a doublet) when its score, their
# detection minus that of matched control genes, lies more than STATE_GENES_OF_Z robust sd above the parent's median
# and at least STATE_GENES_OF_WAY of the way to the other population's own level.
STATE_GENES_OF_GAP: Final = 0.25
STATE_GENES_OF_MAX: Final = 60
STATE_GENES_OF_MIN: Final = 8
STATE_GENES_OF_WAY: Final = 0.5
STATE_GENES_OF_Z: Final = 3.5
# Self-training of call_states inside each parent population (tl/_state_selftrain.py, _state_seeds.py): seeds are
# cells whose mixture posterior for one state is at least STATE_SEED_CONFIDENCE, and cells whose
# every state z-score is at most STATE_NONE_SEED_Z ("none of these"); a multinomial logistic
# regression (inverse regularisation STATE_SELFTRAIN_C) on the top STATE_SELFTRAIN_PCS principal
# components of the STATE_SELFTRAIN_HVGS most variable log-normalised genes plus the state z-scores
# is fitted on them and refitted on its own confident predictions: STATE_SELFTRAIN_ROUNDS fits in all.
STATE_SEED_CONFIDENCE: Final = 0.9
STATE_NONE_SEED_Z: Final = -0.5
STATE_SELFTRAIN_C: Final = 0.1
STATE_SELFTRAIN_PCS: Final = 30
STATE_SELFTRAIN_HVGS: Final = 2000
# relative accuracy of the principal components' singular values (ARPACK tol): the components then differ
# from the machine-precision ones by ~1e-8, at 0.6x the time (one 53k-cell population: 13.2 s vs 22.4 s)
STATE_SELFTRAIN_SVD_TOL: Final = 1e-4
# from this many cells on, the principal components come from the gene covariance (accumulated over dense blocks of
# rows, then its top eigenvectors): on the 100k pipeline file, two threads, 12,167 cells 1.9 s against ARPACK's
# 4.6 s and 8,052 cells 1.4 against 2.4 s, but 1,883 cells 0.71 against 0.44 s (the eigendecomposition's fixed cost)
STATE_SELFTRAIN_GRAM_CELLS: Final = 5000
# a backed matrix is read for self-training on the HVGS + this many most variable genes (float64 pre-selection)
STATE_SELFTRAIN_HVG_MARGIN: Final = 500
STATE_SELFTRAIN_ROUNDS: Final = 2
STATE_SELFTRAIN_MIN_CELLS: Final = 50
STATE_SELFTRAIN_MIN_SEEDS: Final = 10
# a state gets a carried score from this many seeds, and keeps its class from this many where the specificity test
# confirmed them on a full panel (other classes, "none of these" included, need STATE_SELFTRAIN_MIN_SEEDS): a small
# confirmed cluster can be all the seeds a state gets where its signature reads little of its programme (deep 10x
# generator seed 200: 8 progenitor-exhausted seeds, the other 134 progenitor cells in two clusters highest in
# another list and left "none of these"; library 2.2, with the stress stand-in column)
STATE_SELFTRAIN_MIN_STATE_SEEDS: Final = 5
# cluster seeds: k-means clusters (2 K + 4, at most STATE_SELFTRAIN_MAX_CLUSTERS) of a population's
# expression PCs, centred within each sample on its score-adjusted mean; a cluster seeds the state whose mean
# z-score is highest there when it reaches STATE_CLUSTER_SEED_Z and STATE_CLUSTER_SEED_SHARE of that state's highest
# cluster mean and at least STATE_CLUSTER_SUPPORT of its cells are that state's mixture calls (or the mean reaches
# STATE_CLUSTER_STRONG_Z, or its cells' mixture calls of that state outnumber those of all other states together,
# or the state has no mixture call in the population and leads by STATE_CLUSTER_UNCALLED_LEAD, below)
STATE_SELFTRAIN_MAX_CLUSTERS: Final = 40
# and at most one cluster per this many cells: a population with fewer cells than 2 K + 4 such clusters need (K states)
# gets fewer clusters than its states and "none of these" need, and some states lead none (call_states warns; generator,
# 4 settings x 100-600 cells per patient x 2 seeds, benchmarks/states_size.py: those populations' calls 68 % right at
# a confidence 0.22 above that, mean ARI 0.33; the others' 92.5 %, 0.016 above, ARI 0.63; docs/states_evaluation.md)
STATE_CLUSTER_CELLS: Final = 20  # SelfTrainParams.cluster_cells
# such a population is called by the mean probabilities of several seedings: one cluster per each of these many cells,
# with STATE_SMALL_SEEDINGS random states each (release 2.24; benchmarks/states_size.py, 100-400 cells per patient x
# seeds 200-201: the listed populations' calls' ECE 0.182 -> 0.057 on the development settings, 0.137 -> 0.033 held out)
STATE_SMALL_CLUSTER_CELLS: Final = (20, 14, 10)  # SelfTrainParams.small_cluster_cells
STATE_SMALL_SEEDINGS: Final = 3
# a population its clusters fit is called by the mean probabilities of this many seedings (k-means and calibration
# folds at as many random states; STATE_CALIBRATION_REPEATS is shared out over them; the smoothing's nearest cells
# are found once per population, release 2.28): which clusters seed a state turns on the cut there too (release 2.26)
STATE_SEEDINGS: Final = 3
# call_states warns of a state of whose calls one of the seedings averaged makes fewer than this share, on average
# (uns[...]["self_train"]["seedings"]; release 2.27)
STATE_SEEDING_AGREEMENT: Final = 0.8
# a population whose first seedings disagree so (a state under STATE_SEEDING_AGREEMENT) is seeded again at the next
# random states, up to this many batches of seedings in all (release 2.29): the mean of three seedings of
# Sade-Feldman 2018's 516 T cells called 30-116 of the 166 terminal-exhausted cells at ten random states
STATE_SEEDING_BATCHES: Final = 3
STATE_CLUSTER_SEED_Z: Final = 0.15
STATE_CLUSTER_SEED_SHARE: Final = 0.5
STATE_CLUSTER_SUPPORT: Final = 0.1
STATE_CLUSTER_STRONG_Z: Final = 1.0
# a cluster whose best state does not seed it but of whose cells at least STATE_CLUSTER_MAJORITY are one state's
# mixture calls seeds that state when its mean z-score there is high, else seeds nothing (not "none of these")
STATE_CLUSTER_MAJORITY: Final = 0.5
# a state the mixture calls in fewer than STATE_SELFTRAIN_MIN_SEEDS cells of the population (none, before release
# 2.26) is backed in a cluster where it is best and high and leads the cluster's next state by at least
# STATE_CLUSTER_UNCALLED_LEAD (z units): the mixture says nothing of it there,
# and a cluster nearly as high in a sibling may be the sibling's, read through the genes the two share
STATE_CLUSTER_UNCALLED_LEAD: Final = 0.25
# a cluster where the mixture calls cells but none of the states it calls there is high in the cluster (its calls
# scattered over programmes the cluster does not express) backs its best state when the share of its cells the
# mixture calls is at least STATE_CLUSTER_SCATTERED_CALLED times the population's (a cluster the mixture mostly
# leaves unassigned is no state's: a monocyte-like cluster highest in a TAM2_SPP1 list removed from the data)
STATE_CLUSTER_SCATTERED_CALLED: Final = 0.5
# carried score of a seeded state (a self-training feature): the mean expression of the (at most)
# STATE_CARRY_GENES genes whose AUROC of the state's seeds against the cells that do not score for it reaches
# STATE_CARRY_AUROC (none when fewer than STATE_CARRY_MIN_GENES)
STATE_CARRY_GENES: Final = 30
STATE_CARRY_MIN_GENES: Final = 3
STATE_CARRY_AUROC: Final = 0.7
# a carried artefact column is read on the genes two or more populations agree on alone where at least
# STATE_CARRY_ALONE_GENES of them are left, else on the population's own genes averaged with the list's read (3-5
# genes alone also read clean cells' noise; genes only one population chooses may be one of its states')
STATE_CARRY_ALONE_GENES: Final = 10
# carried artefact column (tl/_state_artefact_carry.py): an artefact column that flags at least
# STATE_ARTEFACT_CARRY_MIN_CELLS cells of a parent population is carried to the genes that separate them from the
# clean cells (the STATE_CARRY_* gene rule, the signature genes of the population's states left out)
STATE_ARTEFACT_CARRY_MIN_CELLS: Final = 20
# a column flagging at least STATE_ARTEFACT_CARRY_VOTE_CELLS cells of a population chooses genes there that count
# towards the genes the populations agree on (its own genes are read only from STATE_ARTEFACT_CARRY_MIN_CELLS on)
STATE_ARTEFACT_CARRY_VOTE_CELLS: Final = 10
# the classifier's probabilities are averaged with those of the STATE_SMOOTH_NEIGHBORS nearest cells
# (PC space), weight STATE_SMOOTHING on the neighbours
STATE_SMOOTH_NEIGHBORS: Final = 15
STATE_SMOOTHING: Final = 0.5
STATE_SMOOTH_POOL: Final = 20_000  # neighbours searched among at most this many cells of a population
# specificity of a cluster seed (tl/_state_specificity.py): a cluster seeds a state only when the state's
# signature genes are up in it (AUROC of the cluster against its reference cells >= STATE_SPECIFICITY_AUROC)
# more often than expression-matched background genes (STATE_SPECIFICITY_BINS mean-expression bins of up to
# STATE_SPECIFICITY_BACKGROUND genes), one-sided binomial p <= STATE_SPECIFICITY_ALPHA, and at least
# STATE_SPECIFICITY_MIN_UP of its measured genes (detected in >= STATE_SPECIFICITY_MIN_DETECTION of the cells) are up
STATE_SPECIFICITY_AUROC: Final = 0.65
STATE_SPECIFICITY_ALPHA: Final = 0.01
STATE_SPECIFICITY_MIN_UP: Final = 0.15
# second route (tl/_state_specificity.py, majority_test): the STATE_SPECIFICITY_MAJORITY-th share of the state's
# measured genes, ranked by AUROC, is up (that gene's AUROC >= STATE_SPECIFICITY_AUROC) and is higher than an
# order statistic of as many expression-matched background genes would be (one-sided p <= STATE_SPECIFICITY_ALPHA)
STATE_SPECIFICITY_MAJORITY: Final = 0.5
# a short panel (fewer than STATE_SPECIFICITY_MIN_GENES measured genes) skips the binomial test; it seeds only a
# cluster in which at most this share of the expression-matched background genes is up (a cluster that differs from its
# reference in many genes, through depth, quality or doublets, makes one or two panel genes up meaningless)
STATE_SPECIFICITY_SHORT_MAX_NULL: Final = 0.15
# a short panel no cluster seeds is looked for by its measured genes' mean log expression instead of its score (a
# within-cell rank score follows the panel's genes the state does not raise); a "none of these" cluster high in that
# mean seeds it where the specificity test passes and one of its genes is up at least this much (AUROC against the
# rest): the one-gene rule is tested in the cluster the genes themselves point to, so it needs more than chance gives
# (false short-panel clusters of sessions 23 and 27: best gene 0.66-0.73)
STATE_SHORT_EXPRESSION_AUROC: Final = 0.75
# every short panel, seeded or not, is then looked for through its co-expressed genes (tl/_state_coexpression.py): a
# measured gene whose STATE_COEXPRESSION_PARTNERS-th highest within-sample correlation beats that of the
# STATE_COEXPRESSION_NULL nearest expression-matched background genes (p <= STATE_SPECIFICITY_ALPHA / its measured
# genes) and its partners form a module; cells of its high normal component (posterior >= STATE_COEXPRESSION_POSTERIOR)
# seed the state
STATE_COEXPRESSION_PARTNERS: Final = 2
STATE_COEXPRESSION_NULL: Final = 400
STATE_COEXPRESSION_POSTERIOR: Final = 0.9
STATE_SPECIFICITY_BACKGROUND: Final = 1500
STATE_SPECIFICITY_BINS: Final = 10
STATE_SPECIFICITY_MIN_DETECTION: Final = 0.01
# a state with fewer measured signature genes is a short panel (one definition: _state_specificity.is_short;
# the 2-5 gene marker panels, or a longer list of which few genes are measured): not tested by the binomial
STATE_SPECIFICITY_MIN_GENES: Final = 8
# a cluster is compared with the population's cells that do not score for the state: the clusters whose mean
# z-score of the state is at most STATE_SPECIFICITY_REFERENCE_Z; each side is subsampled to at most
# STATE_SPECIFICITY_MAX_CELLS cells (fixed seed)
STATE_SPECIFICITY_REFERENCE_Z: Final = 0.0
STATE_SPECIFICITY_MAX_CELLS: Final = 2000
# calibration of the self-trained probabilities: cross-fitted over this many folds (< 2: in-sample, no
# temperature), smoothed, then temperature-scaled on the training cells
STATE_CALIBRATION_FOLDS: Final = 5
# the cross-fitting is repeated over this many random fold splits and the held-out probabilities averaged (an
# ensemble of held-out models: the confidence does not hang on one split)
STATE_CALIBRATION_REPEATS: Final = 3

ROLES: Final = ("resistance", "response", "state", "program", "marker", "artefact")
EVIDENCE: Final = ("published_list", "marker_panel", "derived")
SPECIES: Final = ("human", "mouse")
#: Version of the curated signature library (signatures/*.yaml); signatures/CHANGELOG.md says what changed.
SIGNATURE_LIBRARY_VERSION: Final = "2.4"
