"""Signature and SignatureSet: the gene-set model every tool consumes."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pandas as pd

from hcctme import _files

_MAPPINGS = ("weights", "source", "excluded")  # Signature fields held as read-only mappings


@dataclass(frozen=True)
class Signature:
    """One curated (or user) gene signature.

    Attributes mirror the YAML schema of ``signatures/*.yaml`` (see DESIGN.md). ``genes_down``
    holds genes expected to be low in the state; scorers that support signed signatures (UCell)
    subtract their score. ``validated`` says whether the signature was shown on real labelled data
    to separate its state from the sibling states (None: no such claim made); ``validation`` gives
    the dataset and AUROC, or the reason it could not be tested. ``excluded`` maps each gene of the
    source list that the entry leaves out to the reason (e.g. a marker of another lineage).
    """

    id: str
    genes_up: tuple[str, ...]
    genes_down: tuple[str, ...] = ()
    name: str = ""
    collection: str = "user"
    cell_context: str = "any"
    species: str = "human"
    weights: Mapping[str, float] = field(default_factory=dict)
    source: Mapping[str, str] = field(default_factory=dict)
    evidence: str = "derived"
    role: str = "program"
    version: int = 1
    validated: bool | None = None
    validation: str = ""
    excluded: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for side in ("genes_up", "genes_down"):
            if isinstance(getattr(self, side), str):  # tuple("CD8A") would be its letters
                raise TypeError(f"signature {self.id!r}: {side} must be a list of genes, not the string "
                                f"{getattr(self, side)!r}")
            object.__setattr__(self, side, tuple(getattr(self, side)))
        for name in _MAPPINGS:
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))
        if not self.name:
            object.__setattr__(self, "name", self.id)

    # read-only mappings (MappingProxyType) cannot be pickled: the state holds plain dicts
    def __getstate__(self) -> dict[str, Any]:
        return {k: dict(v) if k in _MAPPINGS else v for k, v in self.__dict__.items()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            object.__setattr__(self, k, MappingProxyType(dict(v)) if k in _MAPPINGS else v)

    def __hash__(self) -> int:
        return hash((self.id, self.genes_up, self.genes_down, tuple(sorted(self.weights.items()))))

    @property
    def genes(self) -> tuple[str, ...]:
        """All genes, up then down."""
        return self.genes_up + self.genes_down

    @property
    def citation(self) -> str:
        """Short citation with PMID or DOI when known."""
        src = self.source
        parts = [src.get("citation", "")]
        if src.get("pmid"):
            parts.append(f"PMID {src['pmid']}")
        elif src.get("doi"):
            parts.append(f"doi:{src['doi']}")
        return "; ".join(p for p in parts if p)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (the YAML schema)."""
        return {
            "id": self.id,
            "name": self.name,
            "collection": self.collection,
            "cell_context": self.cell_context,
            "species": self.species,
            "genes_up": list(self.genes_up),
            "genes_down": list(self.genes_down),
            "weights": dict(self.weights),
            "source": dict(self.source),
            "evidence": self.evidence,
            "role": self.role,
            "version": self.version,
            **self._validation_fields(),
        }

    def _validation_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        if self.validated is not None:
            fields["validated"] = self.validated
        if self.validation:
            fields["validation"] = self.validation
        if self.excluded:
            fields["excluded"] = dict(self.excluded)
        return fields


_FILTER_FIELDS = ("id", "name", "collection", "cell_context", "species", "evidence", "role", "version", "validated")


def _is_many(value: Any) -> bool:
    """A filter value naming several values (a list, array or Series), not one (a string)."""
    return not isinstance(value, (str, bytes)) and isinstance(value, Iterable)


def _check_filter(sigs: Sequence[Signature], name: str, wanted: Any) -> None:
    """Refuse a filter field signatures lack, or a value none of ``sigs`` holds (it would filter everything out)."""
    if name not in _FILTER_FIELDS:
        raise TypeError(f"signatures cannot be filtered by {name!r}; filter by one of {list(_FILTER_FIELDS)}")
    present = {getattr(sig, name) for sig in sigs}
    values = wanted if _is_many(wanted) else [wanted]
    missing = [v for v in values if v not in present]
    if sigs and missing:
        known = sorted(map(str, present))
        raise ValueError(
            f"no signature has {name}={missing[0]!r}; the {name} values here are "
            f"{', '.join(known[:20])}{', ...' if len(known) > 20 else ''}"
        )


class SignatureSet(Sequence[Signature]):
    """An ordered, id-unique collection of signatures with the library version it came from.

    Index by position or by id: ``sigs["TAM2_SPP1"]``.
    """

    def __init__(
        self, signatures: Iterable[Signature], *, library_version: str = "user", origin: str = ""
    ) -> None:
        self._sigs: tuple[Signature, ...] = tuple(signatures)
        wrong = [s for s in self._sigs if not isinstance(s, Signature)]
        if wrong:
            raise TypeError(f"a SignatureSet holds Signature objects, got {type(wrong[0]).__name__} {wrong[0]!r}; "
                            "build one from gene lists with hcctme.sig.load")
        ids = [s.id for s in self._sigs]
        dups = sorted({i for i in ids if ids.count(i) > 1})
        if dups:
            raise ValueError(f"duplicate signature ids: {dups}; ids must be unique within a set")
        self._index = {s.id: s for s in self._sigs}
        self._library_version = str(library_version)
        self._origin = str(origin)

    @property
    def library_version(self) -> str:
        """The version of the library the set came from; read-only.

        :func:`hcctme.sig.load` tags the user's own sets with the library version they were loaded beside;
        ``"user"`` marks a set built directly from :class:`Signature` objects that are not the library's.
        """
        return self._library_version

    @property
    def origin(self) -> str:
        """Where the set was loaded from (a path, or the kind of object); read-only."""
        return self._origin

    # Sequence protocol -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._sigs)

    def __iter__(self) -> Iterator[Signature]:
        return iter(self._sigs)

    def __getitem__(self, key: int | str | slice) -> Signature | SignatureSet:  # type: ignore[override]
        if isinstance(key, slice):
            return SignatureSet(self._sigs[key], library_version=self.library_version, origin=self.origin)
        if isinstance(key, str):
            try:
                return self._index[key]
            except KeyError:
                raise KeyError(
                    f"no signature {key!r} in this set; see hcctme.sig.list() for the library ids"
                ) from None
        return self._sigs[key]

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            return key in self._index
        return key in self._sigs

    def __repr__(self) -> str:
        return f"SignatureSet({len(self)} signatures, library_version={self.library_version!r})"

    def __eq__(self, other: object) -> bool:
        """Equal when both hold equal signatures in the same order (the library version is provenance)."""
        return isinstance(other, SignatureSet) and self._sigs == other._sigs

    def __hash__(self) -> int:
        return hash(self._sigs)

    def __add__(self, other: SignatureSet) -> SignatureSet:
        if not isinstance(other, SignatureSet):
            return NotImplemented  # Python raises the TypeError naming both operand types
        return SignatureSet(list(self) + list(other), library_version=self.library_version)

    # Views -----------------------------------------------------------------------------------------
    @property
    def ids(self) -> list[str]:
        return [s.id for s in self._sigs]

    def subset(self, ids: Iterable[str] | str) -> SignatureSet:
        """The signatures with these ids, in the given order (one id may be given as a string)."""
        if isinstance(ids, str):
            ids = [ids]
        return SignatureSet([self[i] for i in ids], library_version=self.library_version, origin=self.origin)

    def filter(self, **fields: Any) -> SignatureSet:
        """Signatures whose attributes equal the given values (a list means any of them).

        ``sigs.filter(cell_context="macrophage", role=["state", "resistance"])``. A field that signatures do not
        have, or a value that no signature of the set holds (a typo), is refused with the values there are.
        """
        fields = {name: list(wanted) if _is_many(wanted) else wanted for name, wanted in fields.items()}
        for name, wanted in fields.items():
            _check_filter(self._sigs, name, wanted)

        def keep(sig: Signature) -> bool:
            for name, wanted in fields.items():
                value = getattr(sig, name)
                if _is_many(wanted):
                    if value not in wanted:
                        return False
                elif value != wanted:
                    return False
            return True

        return SignatureSet(
            [s for s in self._sigs if keep(s)], library_version=self.library_version, origin=self.origin
        )

    def genes(self) -> list[str]:
        """Union of all genes, in first-seen order."""
        return list(dict.fromkeys(g for s in self._sigs for g in s.genes))

    def to_frame(self) -> pd.DataFrame:
        """One row per signature: id, name, collection, cell_context, role, n_genes, validated, citation."""
        rows = [
            {
                "id": s.id,
                "name": s.name,
                "collection": s.collection,
                "cell_context": s.cell_context,
                "role": s.role,
                "evidence": s.evidence,
                "n_genes": len(s.genes),
                "n_up": len(s.genes_up),
                "n_down": len(s.genes_down),
                "validated": s.validated,
                "citation": s.citation,
                "validation": s.validation,
            }
            for s in self._sigs
        ]
        columns = ["id", "name", "collection", "cell_context", "role", "evidence", "n_genes", "n_up",
                   "n_down", "validated", "citation", "validation"]
        frame = pd.DataFrame(rows, columns=columns)
        frame["validated"] = frame["validated"].astype("boolean")
        return frame

    def to_net(self) -> pd.DataFrame:
        """Decoupler network: columns source, target, weight (+1 up, -1 down unless weighted)."""
        rows = []
        for sig in self._sigs:
            rows += [(sig.id, gene, float(sig.weights.get(gene, 1.0))) for gene in sig.genes_up]
            rows += [(sig.id, gene, -abs(float(sig.weights.get(gene, 1.0)))) for gene in sig.genes_down]
        return pd.DataFrame(rows, columns=["source", "target", "weight"])

    def to_gmt(self, path: str | Path | None = None) -> str:
        """GMT text (genes_up only; a signed signature gives ``ID_UP``/``ID_DOWN`` lines).

        The description is a link to the source (DOI, else PubMed, as MSigDB writes a URL), else the name or
        citation with ``_`` for whitespace: readers such as decoupler's ``read_gmt`` split lines on any whitespace
        and would read the words of a spaced description as genes.
        """
        lines = []
        for sig in self._sigs:
            description = _gmt_description(sig)
            if sig.genes_down:
                lines.append("\t".join([f"{sig.id}_UP", description, *sig.genes_up]))
                lines.append("\t".join([f"{sig.id}_DOWN", description, *sig.genes_down]))
            else:
                lines.append("\t".join([sig.id, description, *sig.genes_up]))
        text = "\n".join(lines) + "\n"
        if path is not None:
            _files.write_text(text, path)
        return text

    def to_dict(self) -> dict[str, list[str]]:
        """Id -> genes_up (the form scanpy/decoupler users pass around)."""
        return {s.id: list(s.genes_up) for s in self._sigs}


def _gmt_description(sig: Signature) -> str:
    """A GMT description without whitespace: the source's DOI or PubMed link, else the citation or name."""
    doi, pmid = sig.source.get("doi"), sig.source.get("pmid")
    if doi:
        return f"https://doi.org/{str(doi).strip()}"
    if pmid:
        return f"https://pubmed.ncbi.nlm.nih.gov/{str(pmid).strip()}/"
    return "_".join((sig.citation or sig.name or sig.id).split())

