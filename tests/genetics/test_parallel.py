"""Blocks of a scan as Dask tasks on a real (local) cluster, and the in-process runner."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from distributed import Client, LocalCluster

from mixedmodels.errors import DataError
from mixedmodels.genetics import scan
from mixedmodels.genetics.parallel import run_blocks


@pytest.fixture(scope="module")
def client():
    # Worker processes (not threads): tasks and the shared state really are
    # pickled and sent, and PLINK blocks are read by the workers themselves.
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def test_scan_on_local_cluster_equals_in_process(panel, decomposition, client):
    match, X = panel
    Y = match.phenotypes[["pheno1", "pheno2"]]
    here = scan(match.genotypes, Y, X, decomposition, chunk_size=300)
    there = scan(match.genotypes, Y, X, decomposition, chunk_size=300, scheduler=client)
    pd.testing.assert_frame_equal(there, here, check_exact=False, rtol=1e-10, atol=1e-12)
    in_memory = match.genotypes.read(0, 120)
    sent = scan(
        in_memory, Y, X, decomposition, chunk_size=50, scheduler=client, assume_same_order=True
    )
    np.testing.assert_allclose(sent["lrt"], here["lrt"].to_numpy().reshape(2, -1)[:, :120].ravel())


def test_in_process_runner_keeps_order_and_counts(capsys):
    blocks = [(0, 3), (3, 5), (5, 9)]
    out = run_blocks(lambda x, k: (x, k), blocks, lambda a, b: b - a, "k", progress=True)
    assert out == [(3, "k"), (2, "k"), (4, "k")]
    assert "9/9" in capsys.readouterr().err


def test_unknown_scheduler_is_an_error():
    with pytest.raises(DataError, match="scheduler must be 'threads'"):
        run_blocks(lambda x, k: x, [(0, 1)], lambda a, b: a, None, scheduler=3)


def test_scheduler_is_checked_before_any_work():
    from mixedmodels.genetics.parallel import open_scheduler

    with pytest.raises(DataError, match="scheduler must be 'threads'.*not 'threds'"):
        open_scheduler("threds")  # a typo is not an address
    with pytest.raises(
        DataError, match=r"cannot reach the Dask scheduler at tcp://127.0.0.1:1 within 1 s"
    ):
        open_scheduler("tcp://127.0.0.1:1", timeout=1.0)  # a bounded wait, then the address
