"""The curated library (``signatures/*.yaml``) and the public ``sig`` functions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

from hcctme._logging import logger
from hcctme._version import library_dir, signature_digest
from hcctme.sig import _genes, _io
from hcctme.sig._model import Signature, SignatureSet


@lru_cache(maxsize=1)
def library() -> SignatureSet:
    """The whole curated library, validated against the schema and the known human symbols."""
    directory = library_dir()
    sigs = _io.read_yaml_dir(directory, strict=True, known_symbols=_genes.known_human_symbols())
    return SignatureSet(sigs, library_version=signature_digest(directory), origin=str(directory))


def list_signatures(**fields: Any) -> pd.DataFrame:
    """The library as a table: id, name, collection, cell_context, role, n_genes, validated, citation.

    ``validated`` is True when the signature separates its state from the sibling states on real
    labelled data (AUROC >= 0.8, see signatures/VALIDATION.md), False when it could not be shown or
    tested (``validation`` says why) and missing for entries that make no such claim (programmes).

    Keyword arguments filter rows, e.g. ``sig.list(cell_context="macrophage")``.

    Parameters
    ----------
    **fields
        Signature fields and the value to keep (a list keeps any of its values): ``id``, ``name``,
        ``collection``, ``cell_context``, ``species``, ``evidence``, ``role``, ``version`` or ``validated``. Another
        field raises a ``TypeError``; a value no library signature holds (a typo) a ``ValueError`` listing the
        values there are. Without them, the whole library.

    Returns
    -------
    DataFrame
        One row per signature, in library order: id, name, collection, cell_context, role, evidence, n_genes,
        n_up, n_down, validated (nullable boolean), citation and validation.
    """
    return library().filter(**fields).to_frame()


def get(signature_id: str) -> Signature:
    """One library signature by id.

    Parameters
    ----------
    signature_id
        A library id (see ``hcctme.sig.list()``); a ``KeyError`` when the library has no such id, a
        ``TypeError`` when it is not a string.

    Returns
    -------
    Signature
    """
    if not isinstance(signature_id, str):
        raise TypeError(f"give a library signature id (a string, see hcctme.sig.list()), got "
                        f"{type(signature_id).__name__} {signature_id!r}")
    return library()[signature_id]


def _to_human(sigs: Iterable[Signature]) -> list[Signature]:
    """Map mouse signatures to human symbols through the ortholog table (never by case).

    Genes without a human ortholog are dropped (logged); weights follow their genes; the result
    has ``species="human"``. A signature left without genes is an error.
    """
    from dataclasses import replace

    mapping = _genes.mouse_to_human()
    out = []
    for sig in sigs:
        if sig.species != "mouse":
            out.append(sig)
            continue
        up = list(dict.fromkeys(mapping[g] for g in sig.genes_up if g in mapping))
        down = list(dict.fromkeys(mapping[g] for g in sig.genes_down if g in mapping))
        both = set(up) & set(down)
        if both:  # two mouse genes of opposite sign share one human ortholog: ambiguous, drop
            logger.warning("signature %s: human gene(s) %s are orthologs of both up and down mouse genes; "
                           "dropped", sig.id, sorted(both))
            up = [g for g in up if g not in both]
            down = [g for g in down if g not in both]
        lost = [g for g in sig.genes if g not in mapping]
        if lost:
            logger.warning("signature %s: %d mouse gene(s) without a human ortholog dropped: %s",
                           sig.id, len(lost), lost[:10])
        if not up:
            raise ValueError(
                f"signature {sig.id!r}: none of its mouse genes_up has a human ortholog in the shipped "
                f"table ({list(sig.genes_up)[:10]}); check that these are mouse symbols (e.g. 'Cd8a')"
            )
        weights = {}
        for gene, weight in sig.weights.items():
            human = mapping.get(gene)
            if human is not None and (human in up or human in down):
                weights.setdefault(human, weight)
        out.append(replace(sig, genes_up=tuple(up), genes_down=tuple(down), weights=weights, species="human"))
    return out


def load(x: Any = None, *, species: str = "human") -> SignatureSet:
    """Load signatures from any supported source.

    Parameters
    ----------
    x
        ``None`` (the whole library); a library id or list of ids; a dict ``{name: [genes]}`` or
        ``{name: {"up": [...], "down": [...]}}``; a path to a ``.gmt`` file, a ``.yaml`` file or a
        directory of YAML files; a decoupler net DataFrame (source, target, weight); a
        :class:`SignatureSet` (returned as is).
    species
        Species of the gene symbols in dicts/GMT/nets ("human" or "mouse"). Mouse lists are mapped
        to human symbols through the shipped ortholog table. YAML entries carry their own ``species:``
        field, which this argument does not override.

    Returns
    -------
    SignatureSet
    """
    if species not in ("human", "mouse"):
        raise ValueError(f"species={species!r}; use 'human' or 'mouse'")
    if x is None:
        return library()
    if isinstance(x, SignatureSet):
        return x
    if isinstance(x, Signature):
        try:
            lib = library()
        except FileNotFoundError:  # no library beside the package: the user's object stands alone
            return SignatureSet([x])
        if x.id in lib and lib[x.id] == x:  # a library signature keeps the library's version in the provenance
            return lib.subset([x.id])
        return SignatureSet([x])
    if isinstance(x, pd.DataFrame):
        sigs = _io.from_net(x)
    elif isinstance(x, Mapping):
        sigs = _io.from_dict(x)
    elif isinstance(x, Path) or (isinstance(x, str) and _looks_like_path(x)):
        sigs = _from_path(Path(x))
    elif isinstance(x, str):
        return library().subset([x])
    elif isinstance(x, (list, tuple)) and all(isinstance(i, str) for i in x):
        lib = library()
        missing = [i for i in x if i not in lib]
        if missing:
            raise KeyError(f"unknown signature id(s) {missing}; see hcctme.sig.list() for the library ids")
        return lib.subset(x)
    else:
        raise TypeError(
            f"cannot load signatures from {type(x).__name__}; pass library ids, a dict of gene lists, "
            "a GMT/YAML path or a decoupler net DataFrame"
        )
    if species == "mouse" and not _is_yaml(x):  # a YAML entry says its own species
        sigs = [_with_species(s, "mouse") for s in sigs]
    return SignatureSet(_to_human(sigs), library_version=_current_version(), origin=_origin(x))


def _current_version() -> str:
    """The library version user sets are tagged with.

    Loading a user set never needs the library itself to be present or valid.
    """
    try:
        return signature_digest(library_dir())
    except FileNotFoundError:
        return "user"


def _origin(x: Any) -> str:
    if isinstance(x, (str, Path)):
        return str(x)
    return type(x).__name__


def _is_yaml(x: Any) -> bool:
    """Whether ``x`` names a YAML file or a folder of them (read by :func:`_from_path`)."""
    if not isinstance(x, str | Path) or (isinstance(x, str) and not _looks_like_path(x)):
        return False
    path = Path(x)
    return path.is_dir() or path.suffix.lower() in (".yaml", ".yml")


def _with_species(sig: Signature, species: str) -> Signature:
    from dataclasses import replace

    return replace(sig, species=species)


def _looks_like_path(text: str) -> bool:
    """Whether a string names a file or folder, not library ids.

    Library ids never hold a dot or a slash: "sets.txt" or "dir/x" is a (maybe missing) file; so is an existing
    file or folder whose name is not a library id ("mysigs").
    """
    return "." in text or "/" in text or "\\" in text or (Path(text).exists() and text not in library())


def _from_path(path: Path) -> list[Signature]:
    if not path.exists():
        raise FileNotFoundError(f"signature file {str(path)!r} does not exist; check the path")
    if path.is_dir():
        return _io.read_yaml_dir(path)
    if path.suffix.lower() == ".gmt":
        return _io.read_gmt(path)
    if path.suffix.lower() in (".yaml", ".yml"):
        return _io.read_yaml(path)
    raise ValueError(f"{path}: unknown signature file type {path.suffix!r}; use .gmt, .yaml or .yml")


def to_net(x: Any = None) -> pd.DataFrame:
    """Decoupler net (source, target, weight) of the library or of anything :func:`load` takes.

    Parameters
    ----------
    x
        Anything :func:`load` takes (read with ``species="human"``); ``None``: the whole library.

    Returns
    -------
    DataFrame
        One row per signature x gene: ``source`` (signature id), ``target`` (gene) and ``weight`` (+1 for
        genes_up, -1 for genes_down, or the gene's weight with that sign).
    """
    return load(x).to_net()


def to_gmt(x: Any = None, path: str | Path | None = None) -> str:
    """GMT text of the library or of anything :func:`load` takes; written to ``path`` if given.

    Parameters
    ----------
    x
        Anything :func:`load` takes (read with ``species="human"``); ``None``: the whole library.
    path
        File to write the text to (UTF-8, replaced atomically); ``None`` writes nothing.

    Returns
    -------
    str
        The GMT text: one line per signature (id, description, genes_up); a signature with genes_down
        gives two lines, ``<id>_UP`` and ``<id>_DOWN``. The description holds no whitespace (decoupler's
        reader splits on it): the source's DOI link, else its PubMed link, else the citation or name with ``_``
        for spaces. Weights, names and other metadata are not kept.
    """
    return load(x).to_gmt(path)


def to_yaml(x: Any = None, path: str | Path | None = None) -> str:
    """YAML text (library schema) of the library or of anything :func:`load` takes.

    Parameters
    ----------
    x
        Anything :func:`load` takes (read with ``species="human"``); ``None``: the whole library.
    path
        File to write the text to (UTF-8, replaced atomically); ``None`` writes nothing.

    Returns
    -------
    str
        The YAML text: a list of signature entries with every field of the schema (weights and sources
        included), which :func:`load` reads back.
    """
    return _io.to_yaml(load(x), path)
