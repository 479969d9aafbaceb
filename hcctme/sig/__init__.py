"""Signature library: curated, citable gene signatures and loaders for user gene sets.

``hcctme.sig.list()`` shows the library; ``get``/``load`` return signatures; ``to_net``/``to_gmt``
export them for decoupler, gseapy or other tools.
"""

from hcctme.sig._model import Signature, SignatureSet
from hcctme.sig._registry import get, library, library_dir, load, to_gmt, to_net, to_yaml
from hcctme.sig._registry import list_signatures as list
from hcctme.sig._schema import SignatureSchemaError

__all__ = [
           "Signature",
           "SignatureSchemaError",
           "SignatureSet",
           "get",
           "library",
           "library_dir",
           "list",
           "load",
           "to_gmt",
           "to_net",
           "to_yaml",
]
