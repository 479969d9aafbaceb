"""call_states reads values, not how a sparse matrix stores them (sweep 55): zeros kept as stored entries read
as detected genes in the specificity panel (confidence moved by up to 0.14; 5 calls lost)."""

import numpy as np

import hcctme


def test_stored_zeros_do_not_change_the_calls():
    a = hcctme.datasets.simulate_cohort(n_patients=6, cells_per_patient=100, random_state=0)
    a.X = a.X.tocsr()
    a.X.data[a.X.data < 1.5] = 0.0  # zeros kept as stored entries
    b = a.copy()
    b.X.eliminate_zeros()
    assert a.X.nnz > b.X.nnz
    for adata in (a, b):
        hcctme.tl.score(adata)
        hcctme.tl.call_states(adata, cell_type_key="cell_type", sample_key="patient")
    assert (a.obs["hcctme_state"].astype(str) == b.obs["hcctme_state"].astype(str)).all()
    np.testing.assert_allclose(a.obs["hcctme_state_confidence"], b.obs["hcctme_state_confidence"], atol=1e-9)
    assert (a.X.data == 0).any()  # the input untouched
