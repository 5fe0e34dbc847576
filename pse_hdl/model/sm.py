"""Sparsification Manager, golden model (docs/SPEC.md, section 4).

A weight with code 0 is pruned: it occupies no zone space and costs no MAC cycle. In reversible
mode (default) its master copy is kept, so a later allocation can bring it back; in destructive
mode the master is cleared, as the specification's literal ``w.value = 0`` does, and the weight
stays pruned while the prune threshold is above zero.
"""

import numpy as np

from .fixed import to_int64

__all__ = ["sparsify"]


def sparsify(codes, master, reversible=True):
    """Return ``(master_after, pruned_mask)``."""
    pruned = to_int64(codes) == 0
    master = to_int64(master)
    if reversible:
        return master, pruned
    return np.where(pruned, 0, master), pruned
