"""A small BGEN writer for the tests: layout 2, biallelic, diploid, unphased.

Neither bgen-reader nor cbgen writes BGEN, so the tests make their files with
this (it is not part of the package).  The layout follows the BGEN v1.2
specification (https://www.well.ox.ac.uk/~gav/bgen_format/spec/v1.2.html):

* header block: ``offset`` (uint32, where the variants start, counted from
  byte 4), ``L_H = 20``, ``M`` variants, ``N`` samples, ``b"bgen"``, flags
  (bits 0–1 compression 0/1 = none/zlib, bits 2–5 layout, bit 31 sample IDs);
* optional sample identifier block: ``L_SI``, ``N``, then ``uint16`` length + ID;
* per variant: ``uint16``-length-prefixed id, rsid and chromosome, ``uint32``
  position, ``uint16`` K = 2 alleles, each ``uint32``-length-prefixed; then the
  genotype block ``C`` (+ ``D``, the uncompressed length, when compressed) and
  the probability data: ``N``, ``K``, ploidy min/max = 2, one ploidy byte per
  sample (bit 7 = missing), phased = 0, ``B`` bits, then for each sample
  ``P(AA)`` and ``P(AB)`` as ``B``-bit integers packed little-endian (``P(BB)``
  is implied).  The first allele ``A`` is the counted one: dosage ``2P(AA) + P(AB)``.

Uncompressed files (``compression=0``) follow the specification, but cbgen
crashes on them, so the package refuses them (see ``mixedmodels.genio.bgen``).
``flags_override`` writes any flags word (to make files of an unsupported
layout or compression for the error tests).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np


def _probabilities(dosage: np.ndarray) -> np.ndarray:
    """``(P(AA), P(AB), P(BB))`` for each dosage: hard calls exactly, others on the AA–AB–BB path."""
    d = np.nan_to_num(dosage, nan=0.0)
    aa = np.clip(d - 1.0, 0.0, 1.0)
    bb = np.clip(1.0 - d, 0.0, 1.0)
    return np.column_stack([aa, 1.0 - aa - bb, bb])


def _pack(values: np.ndarray, bits: int) -> bytes:
    """Unsigned ``bits``-bit integers, packed little-endian bit by bit (spec §"layout 2")."""
    if bits % 8 == 0:
        return values.astype(f"<u{bits // 8}").tobytes()
    as_bits = ((values[:, None].astype(np.uint64) >> np.arange(bits, dtype=np.uint64)) & 1).ravel()
    return np.packbits(as_bits.astype(np.uint8), bitorder="little").tobytes()


def _genotype_block(dosage: np.ndarray, bits: int) -> bytes:
    n = dosage.size
    missing = np.isnan(dosage)
    scale = 2**bits - 1
    probs = _probabilities(dosage)
    ints = np.round(probs[:, :2] * scale).astype(np.int64)
    ints[:, 1] = np.minimum(ints[:, 1], scale - ints[:, 0])
    ints[missing] = 0
    ploidy = np.where(missing, 0x82, 0x02).astype(np.uint8).tobytes()
    return (
        struct.pack("<IHBB", n, 2, 2, 2) + ploidy + struct.pack("<BB", 0, bits)
        + _pack(ints.ravel(), bits)
    )  # fmt: skip


def _string(text: str, width: str = "<H") -> bytes:
    raw = text.encode()
    return struct.pack(width, len(raw)) + raw


def write_bgen(
    path: str | Path,
    dosages: np.ndarray,
    *,
    snp: list[str],
    chrom: list[str],
    pos: list[int],
    alleles: list[tuple[str, str]],
    samples: list[str] | None = None,
    bits: int = 16,
    compression: int = 1,
    flags_override: int | None = None,
) -> None:
    """Write ``dosages`` (n × m counts of each variant's first allele, NaN missing) as BGEN."""
    n, m = dosages.shape
    sample_block = b""
    if samples is not None:
        body = b"".join(_string(s) for s in samples)
        sample_block = struct.pack("<II", 8 + len(body), n) + body
    flags = (compression & 3) | (2 << 2) | ((samples is not None) << 31)
    flags = flags if flags_override is None else flags_override
    header = struct.pack("<III", 20, m, n) + b"bgen"
    header += struct.pack("<I", flags)
    out = [struct.pack("<I", 20 + len(sample_block)), header, sample_block]
    for j in range(m):
        a1, a2 = alleles[j]
        out.append(
            _string(snp[j]) + _string(snp[j]) + _string(str(chrom[j]))
            + struct.pack("<IH", int(pos[j]), 2) + _string(a1, "<I") + _string(a2, "<I")
        )  # fmt: skip
        data = _genotype_block(dosages[:, j], bits)
        if compression == 1:
            packed = zlib.compress(data)
            out.append(struct.pack("<II", len(packed) + 4, len(data)) + packed)
        else:
            out.append(struct.pack("<I", len(data)) + data)
    Path(path).write_bytes(b"".join(out))


def write_sample_file(path: str | Path, samples: list[str]) -> None:
    """An Oxford ``.sample`` file: header, the type line, one ``ID_1 ID_2 missing`` row each."""
    lines = ["ID_1 ID_2 missing", "0 0 0", *(f"{s} {s} 0" for s in samples)]
    Path(path).write_text("\n".join(lines) + "\n")
