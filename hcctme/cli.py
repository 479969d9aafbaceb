"""The ``hcctme`` command.

``hcctme demo`` and ``hcctme run`` run the whole pipeline; ``score``, ``states``, ``compare`` and
``crosstalk`` run single steps on an h5ad file; ``signatures`` and ``axes`` show the curated
knowledge; ``workflow`` runs the shipped Snakemake workflow. Inputs are never overwritten and every
output is written atomically. The command never executes content read from input files.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from hcctme._constants import GENE_METHODS, KB_SETTINGS, Defaults, Keys
from hcctme._logging import STEP_LOGGER

EXIT_USAGE = 2
EXIT_FAILURE = 1


def _add_global(parser: argparse.ArgumentParser, *, default: object = False) -> None:
    parser.add_argument("-v", "--verbose", action="store_true", default=default, help="log progress (INFO)")
    parser.add_argument("--no-progress", action="store_true", default=default, help="hide progress bars")


def _add_keys(parser: argparse.ArgumentParser, *, condition: bool = True) -> None:
    parser.add_argument("--sample-key", default=Defaults.SAMPLE_KEY, help="obs column naming the patient/sample")
    if condition:
        parser.add_argument("--condition-key", default=Defaults.CONDITION_KEY,
                            help="obs column with the condition (e.g. response)")
        parser.add_argument("--reference", default=Defaults.REFERENCE, help="reference level of the condition")


def _add_matrix(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--layer", default=None, help='layer with log-normalised expression (default, or "X": .X)')
    parser.add_argument("--use-raw", action=argparse.BooleanOptionalAction, default=None,
                        help="read adata.raw (default: scanpy's rule)")


def _add_min_coverage(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--min-coverage", type=float, default=Defaults.MIN_COVERAGE,
                        help="score a signature when at least this share of its genes is measured (default "
                             f"{Defaults.MIN_COVERAGE}; lower it for a gene panel)")


def _add_genes(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gene-symbols", default=None, metavar="COLUMN",
                        help="harmonise gene names first, from this var column (e.g. feature_name, gene_ids)")
    parser.add_argument("--species", default=None, choices=["auto", "human", "mouse"],
                        help="harmonise gene names first (mouse genes map to human orthologs)")


def _add_de_method(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--de-method", default=GENE_METHODS[0], choices=list(GENE_METHODS),
                        help="pseudobulk gene test: limma-trend (default) or limma-voom (seconds per cell type), "
                             "or PyDESeq2 (minutes per cell type at 200 patients x 20,000 genes)")


def _add_context_map(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--context-map", action="append", default=[], metavar="FILE.yaml|LABEL=CONTEXT",
                        help="map your cell-type labels to cell contexts: a YAML file {label: context} or "
                             "LABEL=CONTEXT (repeatable)")


def _add_backed(parser: argparse.ArgumentParser) -> None:
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--backed", dest="backed", action="store_true", default=None,
                      help="read the input backed (anndata.read_h5ad(path, backed='r'), layers on disk too): every "
                           "step reads the matrices in chunks (default: backed when the matrices would fill more "
                           "than a quarter of the available memory)")
    mode.add_argument("--in-memory", dest="backed", action="store_false",
                      help="read the whole input into memory (refused when it is larger than the available memory)")


def _add_write_full(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--write-full", action="store_true",
                        help="write hcctme.h5ad with the matrices (X, layers, raw) too; by default it holds the "
                             "results only (obs, var, obsm, uns)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``hcctme`` command (global flags are accepted before or after the command)."""
    parser = argparse.ArgumentParser(prog="hcctme", description="hcctme: resistance analysis of HCC single-cell "
                                     "and spatial cohorts (run `hcctme demo` for a first report)")
    _add_global(parser)
    common = argparse.ArgumentParser(add_help=False)  # the global flags, accepted after the command too
    _add_global(common, default=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True)
    add = functools.partial(sub.add_parser, parents=[common])

    demo = add("demo", help="run the whole pipeline on the built-in demo cohort")
    demo.add_argument("--out", default="hcctme_demo_out", help="output folder")
    _add_write_full(demo)

    run = add("run", help="run the whole pipeline on an h5ad file")
    run.add_argument("input", help="input .h5ad (never modified)")
    run.add_argument("--out", required=True, help="output folder")
    _add_keys(run)
    run.add_argument("--no-condition", action="store_true",
                     help="a cohort without conditions (no outcome labels): describe it (scores, states, per-sample "
                          "T+A response and crosstalk, profiles against the cohort) without comparing")
    run.add_argument("--cell-type-key", default=Defaults.CELL_TYPE_KEY)
    _add_matrix(run)
    run.add_argument("--counts-layer", default=None,
                     help=f"layer with raw counts for gene-level tests, or 'raw' for adata.raw (default: "
                          f"{Keys.COUNTS!r} when present, else the tests are skipped and recorded as skipped)")
    run.add_argument("--signatures", default=None,
                     help="your gene sets (GMT/YAML file), scored in addition to the library's")
    _add_min_coverage(run)
    _add_genes(run)
    _add_context_map(run)
    run.add_argument("--no-genes", action="store_true", help="skip pseudobulk differential expression")
    run.add_argument("--genes-groups", nargs="+", default=None, metavar="CELL_TYPE",
                     help="pseudobulk differential expression in these cell types only (default: all)")
    _add_de_method(run)
    run.add_argument("--no-crosstalk", action="store_true", help="skip ligand-receptor inference")
    run.add_argument("--n-jobs", type=int, default=1)
    _add_backed(run)
    _add_write_full(run)

    score = add("score", help="score cells against signatures (tl.score)")
    score.add_argument("input")
    score.add_argument("--out", required=True, help="output .h5ad")
    score.add_argument("--signatures", default=None, help="GMT/YAML path or comma-separated library ids")
    score.add_argument("--method", default="ucell", choices=["ucell", "mean", "aucell", "ulm"])
    _add_matrix(score)
    _add_genes(score)
    score.add_argument("--max-rank", type=int, default=Defaults.MAX_RANK)
    _add_min_coverage(score)
    score.add_argument("--chunk-size", type=int, default=None)
    score.add_argument("--n-jobs", type=int, default=1)
    _add_backed(score)

    states = add("states", help="call resistance cell states (tl.call_states)")
    states.add_argument("input")
    states.add_argument("--out", required=True, help="output .h5ad")
    states.add_argument("--cell-type-key", required=True)
    states.add_argument("--sample-key", default=None)
    _add_context_map(states)
    _add_backed(states)

    compare = add("compare", help="patient-level comparison (tl.compare)")
    compare.add_argument("input")
    compare.add_argument("--out", required=True, help="output .tsv")
    _add_keys(compare)
    compare.add_argument("--features", default="scores", choices=["scores", "composition", "genes"])
    compare.add_argument("--groupby", default=None)
    compare.add_argument("--parent-key", default=None)
    compare.add_argument("--layer", default=Keys.COUNTS,
                         help='counts layer for features=genes ("X": the raw counts are in .X)')
    _add_de_method(compare)
    compare.add_argument("--min-cells", type=int, default=Defaults.MIN_CELLS,
                         help="samples with fewer cells in a group are left out of that group")
    _add_backed(compare)

    crosstalk = add("crosstalk", help="ligand-receptor crosstalk, annotated with the resistance axes (tl.crosstalk)")
    crosstalk.add_argument("input")
    crosstalk.add_argument("--out", required=True, help="output .tsv")
    crosstalk.add_argument("--groupby", required=True)
    crosstalk.add_argument("--sample-key", default=None)
    crosstalk.add_argument("--condition-key", default=None)
    crosstalk.add_argument("--reference", default=None,
                           help=f"reference level (default {Defaults.REFERENCE!r} with --condition-key)")
    crosstalk.add_argument("--min-cells", type=int, default=Defaults.MIN_CELLS,
                           help="groups with fewer cells in a sample are skipped there")
    crosstalk.add_argument("--expr-prop", type=float, default=0.1,
                           help="fewest share of a group's cells expressing a ligand / receptor (LIANA's filter)")
    crosstalk.add_argument("--min-samples", type=int, default=3,
                           help="with --condition-key: fewest samples per level where an interaction is tested")
    crosstalk.add_argument("--resource", default="consensus", help="LIANA resource name (bundled, read offline)")
    crosstalk.add_argument("--axes-only", action="store_true",
                           help="score only the interactions of the resistance axes (much faster)")
    _add_matrix(crosstalk)
    _add_genes(crosstalk)
    _add_backed(crosstalk)

    sigs = add("signatures", help="the curated signature library")
    sigs_sub = sigs.add_subparsers(dest="action", required=True)
    sigs_list = sigs_sub.add_parser("list", help="list signatures")
    sigs_list.add_argument("--context", default=None, help="only this cell_context")
    sigs_show = sigs_sub.add_parser("show", help="show one signature")
    sigs_show.add_argument("id")
    sigs_export = sigs_sub.add_parser("export", help="export signatures")
    sigs_export.add_argument("--format", choices=["gmt", "net", "yaml"], default="gmt")
    sigs_export.add_argument("--out", default=None, help="file (default: standard output)")
    sigs_export.add_argument("ids", nargs="*", help="library ids (default: all)")

    axes = add("axes", help="the resistance axes knowledge base")
    axes.add_argument("--therapies", action="store_true",
                      help="list therapies (tier, approval status per region, trial) instead of axes")
    axes.add_argument("--setting", choices=KB_SETTINGS, default=None,
                      help="only the axes / therapies of this treatment setting")
    axes.add_argument("--axis", action="append", default=None, help="only this axis id (repeatable)")

    workflow = add("workflow", help="run the shipped Snakemake workflow")
    workflow.add_argument("--configfile", required=True)
    workflow.add_argument("--cores", type=int, default=None,
                          help="local cores (default 1; with --executor after --, snakemake's --jobs decides)")
    workflow.add_argument("--directory", default=None, help="working directory (default: current)")
    workflow.add_argument("snakemake_args", nargs=argparse.REMAINDER,
                          help="further arguments passed to snakemake (after --)")
    return parser


def _looks_like_path(value: str) -> bool:
    return Path(value).suffix != "" or "/" in value or "\\" in value or Path(value).exists()


def _signatures_arg(value: str | None):
    """A GMT/YAML path (anything path-like: a missing one is reported as a missing file) or library ids."""
    from hcctme import _validate

    if value is None:
        return None
    if _looks_like_path(value):
        return str(_validate.existing_file(value, what="signature file"))
    return [v.strip() for v in value.split(",") if v.strip()]


def _check_outputs(out: str, *inputs: str, folder: bool = False) -> None:
    """Refuse, before any work, an output that is one of the inputs or cannot be written."""
    from hcctme import _files

    _files.refuse_overwrite(out, *inputs, folder=folder)
    _files.check_writable(out, folder=folder)


_DATA_KINDS = ("h5ad", "10x_h5", "loom", "hdf5", "zarr", "mtx", "gzip", "rds")


def _refuse_replacing_data(out: str) -> None:
    """Refuse a text output (an exported gene-set file) over an existing data file: a slip of --out would lose it."""
    from hcctme import _files

    path = Path(out)
    if path.is_file() and (kind := _files.sniff(path)) in _DATA_KINDS:
        raise ValueError(f"--out {out!r} is an existing {kind} data file, which this text export would replace; "
                         "give another file name (e.g. signatures.gmt)")


def _harmonise(adata, args: argparse.Namespace) -> None:
    if args.gene_symbols is None and args.species is None:
        return
    from hcctme import pp

    pp.harmonize_genes(adata, gene_symbols=args.gene_symbols, species=args.species or "auto")


def _cmd_demo(args: argparse.Namespace) -> int:
    from hcctme import datasets, pipeline

    _check_outputs(args.out, folder=True)
    adata = datasets.demo()
    pipeline.run(adata)
    written = pipeline.write_outputs(adata, args.out, full=args.write_full)
    print(f"hcctme demo: {len(written)} files in {Path(args.out).resolve()}")
    print(f"report: {written['report'].resolve()}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from hcctme import _files, pipeline

    _check_outputs(args.out, args.input, folder=True)
    signatures = _signatures_arg(args.signatures)
    if isinstance(signatures, list):
        raise ValueError("--signatures takes a GMT/YAML file of your gene sets (added to the library's); "
                         "library signatures are always scored")
    context_map = _parse_context_map(args.context_map)
    adata = _files.read_h5ad(args.input, backed=args.backed)
    pipeline.run(
        adata,
        sample_key=args.sample_key,
        condition_key=None if args.no_condition else args.condition_key,
        reference=args.reference,
        cell_type_key=args.cell_type_key,
        layer=_layer(args.layer),
        use_raw=args.use_raw,
        counts_layer=args.counts_layer,
        signatures=signatures,
        min_coverage=args.min_coverage,
        context_map=context_map,
        gene_symbols=args.gene_symbols,
        species=args.species,
        genes=not args.no_genes,
        genes_groups=args.genes_groups,
        de_method=args.de_method,
        crosstalk=not args.no_crosstalk,
        n_jobs=args.n_jobs,
    )
    written = pipeline.write_outputs(adata, args.out, input_path=args.input, full=args.write_full)
    print(f"report: {written['report'].resolve()}")
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    from hcctme import _files, tl

    _check_outputs(args.out, args.input)
    signatures = _signatures_arg(args.signatures)
    adata = _files.read_h5ad(args.input, backed=args.backed)
    _harmonise(adata, args)
    tl.score(adata, signatures, method=args.method, layer=_layer(args.layer),
             use_raw=args.use_raw, max_rank=args.max_rank, min_coverage=args.min_coverage, chunk_size=args.chunk_size,
             n_jobs=args.n_jobs)
    _files.write_h5ad(adata, args.out)  # a backed input's matrices are copied block by block, not loaded
    print(args.out)
    return 0


def _parse_context_map(values: Sequence[str]) -> dict[str, str] | None:
    """``--context-map`` values: YAML files ``{label: context}`` and ``LABEL=CONTEXT`` pairs, merged in order."""
    if not values:
        return None
    from hcctme import _files

    mapping: dict[str, str | None] = {}
    for value in values:
        if value.endswith((".yaml", ".yml")) or (Path(value).is_file() and "=" not in value):
            mapping.update(_files.read_context_map(value))
        elif "=" in value:
            label, context = value.rsplit("=", 1)
            mapping[label] = context
        else:
            raise ValueError(f"--context-map takes a YAML file or LABEL=CONTEXT, got {value!r}")
    return mapping


def _cmd_states(args: argparse.Namespace) -> int:
    from hcctme import _files, tl

    _check_outputs(args.out, args.input)
    context_map = _parse_context_map(args.context_map)
    adata = _files.read_h5ad(args.input, backed=args.backed)
    tl.call_states(adata, cell_type_key=args.cell_type_key, sample_key=args.sample_key, context_map=context_map)
    _files.write_h5ad(adata, args.out)
    print(args.out)
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from hcctme import _files, get, tl

    _check_outputs(args.out, args.input)
    adata = _files.read_h5ad(args.input, backed=args.backed)
    tl.compare(adata, condition_key=args.condition_key, sample_key=args.sample_key,
               reference=args.reference, features=args.features, groupby=args.groupby,
               parent_key=args.parent_key, layer=_layer(args.layer), min_cells=args.min_cells,
               method=args.de_method if args.features == "genes" else "auto")
    _files.write_table(get.compare(adata), args.out)
    print(args.out)
    return 0


def _cmd_crosstalk(args: argparse.Namespace) -> int:
    from hcctme import _files, get, tl

    _check_outputs(args.out, args.input)
    adata = _files.read_h5ad(args.input, backed=args.backed)
    _harmonise(adata, args)
    reference = args.reference if args.reference is not None or args.condition_key is None else Defaults.REFERENCE
    tl.crosstalk(adata, groupby=args.groupby, sample_key=args.sample_key, condition_key=args.condition_key,
                 reference=reference, layer=_layer(args.layer), use_raw=args.use_raw, min_cells=args.min_cells,
                 expr_prop=args.expr_prop, min_samples=args.min_samples, resource=args.resource,
                 axes_only=args.axes_only)
    _files.write_table(get.crosstalk(adata, differential=args.condition_key is not None), args.out)
    print(args.out)
    return 0


def _cmd_signatures(args: argparse.Namespace) -> int:
    import pandas as pd

    from hcctme import sig

    if args.action == "list":
        table = sig.list() if args.context is None else sig.list(cell_context=args.context)
        with pd.option_context("display.max_rows", None, "display.width", 200, "display.max_colwidth", 60):
            print(table[["id", "cell_context", "role", "n_genes", "citation"]].to_string(index=False))
        return 0
    if args.action == "show":
        import yaml

        print(yaml.safe_dump(sig.get(args.id).to_dict(), sort_keys=False, allow_unicode=True), end="")
        return 0
    if args.out:
        _check_outputs(args.out)
        _refuse_replacing_data(args.out)
    sigs = sig.load(args.ids or None)
    if args.format == "gmt":
        text = sigs.to_gmt()
    elif args.format == "net":
        text = sigs.to_net().to_csv(sep="\t", index=False)
    else:
        text = sig.to_yaml(sigs)
    if args.out:
        from hcctme import _files

        _files.write_text(text, args.out)
        print(args.out)
    else:
        sys.stdout.write(text)
    return 0


AXES_COLUMNS = ["axis", "name", "ligand", "receptor", "interaction", "sender", "receiver", "settings", "therapies"]
THERAPY_COLUMNS = ["axis", "therapy", "tier", "status", "fda", "ema", "nmpa", "settings", "trial", "nct",
                   "trial_outcome", "negative_trials"]


def _cmd_axes(args: argparse.Namespace) -> int:
    import pandas as pd

    from hcctme import kb

    if args.therapies:
        table = kb.therapies(args.axis, setting=args.setting)[THERAPY_COLUMNS]
    else:
        table = kb.axes(args.axis, setting=args.setting)[AXES_COLUMNS]
    if table.empty:  # pandas would print "Empty DataFrame" and the column list
        what = "therapy" if args.therapies else "axis"
        print(f"no {what} matches --axis {' '.join(args.axis or ['(all)'])} --setting {args.setting}")
        return 0
    with pd.option_context("display.max_rows", None, "display.width", 250, "display.max_colwidth", 60):
        print(table.fillna("-").to_string(index=False))
    return 0


def _cmd_workflow(args: argparse.Namespace) -> int:
    from hcctme.workflow import run_workflow

    extra = list(args.snakemake_args)
    if extra[:1] == ["--"]:  # the separator only: a later "--" is snakemake's
        extra = extra[1:]
    return run_workflow(args.configfile, cores=args.cores, directory=args.directory, extra_args=extra)


COMMANDS = {
    "demo": _cmd_demo,
    "run": _cmd_run,
    "score": _cmd_score,
    "states": _cmd_states,
    "compare": _cmd_compare,
    "crosstalk": _cmd_crosstalk,
    "signatures": _cmd_signatures,
    "axes": _cmd_axes,
    "workflow": _cmd_workflow,
}


def _quiet_terminal(*, verbose: bool) -> None:
    """Third-party warnings off the terminal (unless verbose) and one hcctme line per pipeline step."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    steps = logging.getLogger(STEP_LOGGER)
    steps.setLevel(logging.INFO)
    steps.propagate = verbose
    for old in [h for h in steps.handlers if h.get_name() == STEP_LOGGER]:
        steps.removeHandler(old)
    if verbose:
        return
    warnings.filterwarnings("ignore", category=SyntaxWarning)
    warnings.filterwarnings("ignore", module=r"(?!hcctme\b)")
    handler = logging.StreamHandler()  # the current sys.stderr
    handler.set_name(STEP_LOGGER)
    handler.setFormatter(logging.Formatter("hcctme %(message)s"))
    steps.addHandler(handler)


def _layer(value: str | None) -> str | None:
    """``--layer``'s value as the tools take it: ``X`` (or nothing) names ``.X``."""
    return None if value in (None, "X") else value


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hcctme`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    _quiet_terminal(verbose=args.verbose)
    if args.no_progress:
        from hcctme._settings import settings

        settings.progress = False
    try:
        return COMMANDS[args.command](args)
    except (ValueError, KeyError, TypeError, FileNotFoundError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"hcctme {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # the reader stopped early (`hcctme signatures list | head`): nothing left to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes stdout
        return 0
    except OSError as err:  # disk full, permissions changed while running...
        print(f"hcctme {args.command}: error: {err}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
