"""BGEN genotype files (``.bgen`` + optional Oxford ``.sample``), read lazily variant by variant.

The files are decoded by ``cbgen`` (the C BGEN library behind bgen-reader; the
``genetics`` extra), which needs a *metafile* of variant offsets: it is made
once beside the ``.bgen`` (``FILE.bgen.metafile``) or, where that folder is
not writable, in a temporary folder.  The header is checked here first so that
an unsupported file gets a message naming its layout and compression.

Genotypes are *dosages of the first allele* listed for each variant (PLINK's
A1 convention, :mod:`mixedmodels.genio.plink`): ``2 P(AA) + P(AB)`` for an
unphased diploid call, ``P(h1 = A) + P(h2 = A)`` for a phased one, ``NaN``
where the call is flagged missing.  Multi-allelic variants and other ploidies
are refused.  Several files (one per chromosome, ``"chr*.bgen"``) are joined
into one source whose SNPs follow the files in natural order (chr2 before chr10).
"""

from __future__ import annotations

import glob
import re
import struct
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from mixedmodels._text import few
from mixedmodels.errors import DataError, MixedModelsError
from mixedmodels.genio.genotypes import ConcatenatedSnps, select_snps

__all__ = ["BgenData", "BgenHeader", "read_bgen", "read_bgen_header", "read_sample_file"]

_COMPRESSION = {0: "none", 1: "zlib", 2: "zstd"}
#: (layout, compression) pairs read.  The specification also defines layout 2
#: uncompressed, but cbgen 1.0.6 crashes the process (a segmentation fault) on
#: such files, so they are refused here with a message rather than read.
SUPPORTED = {(1, 0), (1, 1), (2, 1), (2, 2)}


def _cbgen():
    try:
        import cbgen
    except ImportError:
        raise MixedModelsError(
            "reading BGEN files needs the cbgen package: pip install mixedmodels[genetics]"
        ) from None
    return cbgen


@dataclass(frozen=True)
class BgenHeader:
    """The header block: variant and sample counts, layout, compression, embedded sample IDs."""

    n_variants: int
    n_samples: int
    layout: int
    compression: int
    has_sample_ids: bool


def read_bgen_header(path: Path) -> BgenHeader:
    """Parse and check the first block of a BGEN file (spec v1.2, "header block")."""
    try:
        raw = _head(path)
    except OSError as exc:
        raise DataError(f"cannot read BGEN file {path}: {exc}") from None
    if len(raw) < 24:
        raise DataError(f"{path} is too short to be a BGEN file ({len(raw)} bytes)")
    _, length, m, n = struct.unpack_from("<IIII", raw, 0)
    magic = raw[16:20]
    if magic not in (b"bgen", b"\0\0\0\0") or length < 20 or length + 4 > len(raw):
        raise DataError(f"{path} is not a BGEN file (no 'bgen' magic number in its header)")
    (flags,) = struct.unpack_from("<I", raw, length)
    layout, compression = (flags >> 2) & 0xF, flags & 0x3
    header = BgenHeader(m, n, layout, compression, bool(flags >> 31))
    if (layout, compression) not in SUPPORTED:
        name = _COMPRESSION.get(compression, f"unknown ({compression})")
        raise DataError(
            f"{path}: BGEN layout {layout} with compression {name} is not supported; "
            "layout 1 (uncompressed or zlib) and layout 2 (zlib or zstd) are; recompress it "
            "with e.g. qctool or plink2 --export bgen-1.2"
        )
    return header


def _head(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(4096)


def read_sample_file(path: str | Path) -> np.ndarray:
    """Sample IDs of an Oxford ``.sample`` file: ``ID_2`` when present (the individual), else ``ID_1``.

    The first line names the columns, the second gives their types (``0 0 0 D ...``).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"sample file not found: {path}")
    try:
        table = pd.read_csv(path, sep=r"\s+", dtype=str, keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is not an Oxford .sample file: {type(exc).__name__}") from None
    if "ID_1" not in table.columns:
        raise DataError(f"{path} has no ID_1 column: not an Oxford .sample file")
    table = table.iloc[1:]  # the line of column types
    return table["ID_2" if "ID_2" in table.columns else "ID_1"].to_numpy().astype(str)


@dataclass(frozen=True, eq=False)
class BgenData:
    """One BGEN file, possibly restricted to some samples; genotypes not yet read.

    Attributes
    ----------
    path, metafile : Path
    variants : DataFrame
        snp, chrom, pos, allele_1 (the counted allele), allele_2, rsid, offset.
    ids : ndarray of str
        All samples of the file.
    sample_index : ndarray of int
        Rows used, in the order used.
    """

    path: Path
    metafile: Path
    variants: pd.DataFrame = field(repr=False)
    ids: np.ndarray = field(repr=False)
    sample_index: np.ndarray = field(repr=False)

    @property
    def n_samples(self) -> int:
        return int(self.sample_index.size)

    @property
    def n_snps(self) -> int:
        return len(self.variants)

    @property
    def iid(self) -> np.ndarray:
        return self.ids[self.sample_index]

    def snp_table(self) -> pd.DataFrame:
        return self.variants[["snp", "chrom", "pos", "allele_1", "allele_2"]].reset_index(drop=True)

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Dosages of the first allele of variants ``start:stop``, (n, stop - start), NaN missing."""
        stop = self.n_snps if stop is None else stop
        out = np.empty((self.n_samples, max(stop - start, 0)), order="F")
        bgen = _cbgen().bgen_file(self.path)
        try:
            for k, offset in enumerate(self.variants["offset"].to_numpy()[start:stop]):
                out[:, k] = self._dosage(bgen.read_genotype(int(offset)), start + k)
        finally:
            bgen.close()
        return out

    def _dosage(self, genotype, j: int) -> np.ndarray:
        probability = genotype.probability[self.sample_index]
        ploidy = genotype.ploidy[self.sample_index]
        missing = genotype.missing[self.sample_index]
        if ((ploidy != 2) & ~missing).any():
            raise DataError(
                f"{self.path}: variant {self.variants['snp'].iloc[j]} has calls of ploidy "
                f"{few(np.unique(ploidy[ploidy != 2]))}; only diploid calls are read"
            )
        if genotype.phased:
            dosage = probability[:, 0] + probability[:, 2]
        else:
            dosage = 2.0 * probability[:, 0] + probability[:, 1]
        return np.where(missing, np.nan, dosage)

    def select_samples(self, iids: object) -> BgenData:
        """The same file restricted to the individuals ``iids``, in that order."""
        position = pd.Index(self.ids).get_indexer(pd.Index(np.asarray(iids).astype(str)))
        if (position < 0).any():
            absent = np.asarray(iids).astype(str)[position < 0]
            raise DataError(f"{len(absent)} id(s) not in {self.path}: {few(absent)}")
        return replace(self, sample_index=position)

    def __getitem__(self, key: object):
        return select_snps(self, key)


def _natural_key(path: Path) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def _metafile(path: Path, bgen) -> Path:
    """The metafile beside ``path`` (made if absent), or in a temporary folder if read-only."""
    beside = path.with_name(path.name + ".metafile")
    if beside.is_file() and beside.stat().st_mtime >= path.stat().st_mtime:
        return beside
    try:
        bgen.create_metafile(beside)
        return beside
    except (RuntimeError, OSError):
        target = Path(tempfile.mkdtemp(prefix="mixedmodels-bgen-")) / beside.name
        bgen.create_metafile(target)
        return target


def _variants(metafile: Path, path: Path) -> pd.DataFrame:
    cbgen = _cbgen()
    meta = cbgen.bgen_metafile(metafile)
    try:
        parts = [meta.read_partition(i).variants for i in range(meta.npartitions)]
    finally:
        meta.close()

    def text(name: str) -> np.ndarray:
        return np.concatenate([getattr(v, name) for v in parts]).astype(str)

    alleles = pd.Series(text("allele_ids")).str.split(",")
    many = alleles.str.len() != 2
    if many.any():
        raise DataError(
            f"{path}: variant(s) {few(text('id')[many.to_numpy()])} are not biallelic; "
            "only biallelic variants are read"
        )
    ids, rsids = text("id"), text("rsid")
    return pd.DataFrame(
        {
            "snp": np.where(rsids != "", rsids, ids),
            "chrom": text("chromosome"),
            "pos": np.concatenate([v.position for v in parts]).astype(np.int64),
            "allele_1": alleles.str[0].to_numpy(),
            "allele_2": alleles.str[1].to_numpy(),
            "rsid": rsids,
            "offset": np.concatenate([v.offset for v in parts]).astype(np.int64),
        }
    )


def _open_one(path: Path, sample_path: Path | None) -> BgenData:
    header = read_bgen_header(path)
    bgen = _cbgen().bgen_file(path)
    try:
        embedded = bgen.read_samples().astype(str) if header.has_sample_ids else None
        metafile = _metafile(path, bgen)
    finally:
        bgen.close()
    ids = _sample_ids(path, header, embedded, sample_path)
    variants = _variants(metafile, path)
    return BgenData(path, metafile, variants, ids, np.arange(header.n_samples))


def _sample_ids(path, header, embedded, sample_path) -> np.ndarray:
    if sample_path is None:
        if embedded is None:
            return np.array([f"sample_{i}" for i in range(header.n_samples)])
        return embedded
    ids = read_sample_file(sample_path)
    if ids.size != header.n_samples:
        raise DataError(
            f"sample file {sample_path} lists {ids.size} samples but {path} holds "
            f"{header.n_samples}: they do not describe the same individuals"
        )
    if embedded is not None and not (embedded == ids).all():
        first = int(np.flatnonzero(embedded != ids)[0])
        raise DataError(
            f"sample file {sample_path} does not match the IDs stored in {path}: row {first} "
            f"is {str(ids[first])!r} there and {str(embedded[first])!r} in the BGEN file"
        )
    if len(set(ids)) != ids.size:
        raise DataError(f"sample file {sample_path} repeats sample IDs")
    return ids


def read_bgen(pattern: str | Path, samples: str | Path | None = None):
    """Open one BGEN file, or several (a glob such as ``"chr*.bgen"``) as one genotype source.

    Parameters
    ----------
    pattern : str or Path
        A file, or a glob pattern matching one file per chromosome (joined in
        natural order of their names).
    samples : str or Path, optional
        An Oxford ``.sample`` file giving the sample IDs (checked against the
        file's sample count, and against IDs stored in the file if any); without
        it the stored IDs are used, else ``sample_0, sample_1, ...``.

    Returns
    -------
    BgenData for one file, or a ConcatenatedSnps of them; either is a
    :class:`~mixedmodels.genio.GenotypeSource` like a PLINK file set.
    """
    paths = sorted((Path(p) for p in glob.glob(str(pattern))), key=_natural_key)
    if not paths:
        raise DataError(f"no BGEN file matches {pattern}")
    sample_path = None if samples is None else Path(samples)
    parts = [_open_one(path, sample_path) for path in paths]
    return parts[0] if len(parts) == 1 else ConcatenatedSnps(tuple(parts))
