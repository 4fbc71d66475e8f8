"""BIMBAM mean-genotype files for the tests, written from a genotype source (not part of the package)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def write_bimbam(path, G, table, sep=", "):
    """One line per SNP: name, counted allele, other allele, dosages (NA when missing)."""
    with open(path, "w") as out:
        for j, row in enumerate(table.itertuples()):
            dos = ["NA" if np.isnan(v) else repr(float(v)) for v in G[:, j]]
            out.write(sep.join([row.snp, row.allele_1, row.allele_2, *dos]) + "\n")


def write_bimbam_panel(plink, folder: Path) -> Path:
    """``geno.txt``, ``anno.txt`` (snp, pos, chrom) and ``ids.txt`` of a PLINK source in ``folder``."""
    G, table = plink.read(), plink.snp_table()
    write_bimbam(folder / "geno.txt", G, table)
    table[["snp", "pos", "chrom"]].to_csv(folder / "anno.txt", header=False, index=False)
    pd.Series(plink.iid).to_csv(folder / "ids.txt", header=False, index=False)
    return folder
