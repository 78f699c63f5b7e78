"""Benchmark: encrypt and decrypt a generated file (1 GiB by default) with apps.keys.files.

Prints one JSON object: throughput in MB/s for each step and the process's peak
RSS, which must stay flat whatever the file size (streaming, one chunk at a time).

    DATABASE_URL=... .venv/bin/python benchmarks/encryption.py [--size-mb 1024] [--chunk-kib 64]

The plaintext is written to a temporary directory first (random 1 MiB blocks,
so nothing compresses), then encrypted file to file, decrypted file to a hashing
sink (sequential reader), and read again through the seekable reader. The data
key row it creates is destroyed at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

MIB = 1024 * 1024


class HashingSink:
    def __init__(self) -> None:
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        return len(data)


def rss_mib() -> float:
    return psutil.Process().memory_info().rss / MIB


def peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def timed(action) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="plaintext size in MiB")
    parser.add_argument("--chunk-kib", type=int, default=64, help="chunk size in KiB")
    parser.add_argument("--dir", default=None, help="where to put the temporary files")
    args = parser.parse_args()

    import django

    django.setup()
    from apps.keys import files

    size = args.size_mb * MIB
    chunk_size = args.chunk_kib * 1024
    rss_after_setup = rss_mib()
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        plain, encrypted = Path(folder) / "plain.bin", Path(folder) / "plain.bin.enc"
        source_sha = hashlib.sha256()
        with open(plain, "wb") as handle:
            for _ in range(args.size_mb):
                block = os.urandom(MIB)
                source_sha.update(block)
                handle.write(block)

        def encrypt() -> None:
            with open(plain, "rb") as src, open(encrypted, "wb") as dst:
                encrypt.data_key = files.encrypt_stream(  # type: ignore[attr-defined]
                    src, dst, purpose="benchmark", chunk_size=chunk_size
                )

        sink = HashingSink()

        def decrypt() -> None:
            with open(encrypted, "rb") as src:
                files.decrypt_stream(src, sink)

        seek_sink = HashingSink()

        def read_seekable() -> None:
            with files.open_decrypted(encrypted) as reader:
                while block := reader.read(MIB):
                    seek_sink.write(block)

        encrypt_seconds = timed(encrypt)
        decrypt_seconds = timed(decrypt)
        seekable_seconds = timed(read_seekable)
        overhead = encrypted.stat().st_size - size
        files.data_key_destroy(data_key=encrypt.data_key, reason="benchmark")  # type: ignore[attr-defined]

    correct = sink.sha.digest() == seek_sink.sha.digest() == source_sha.digest()
    megabytes = size / 1_000_000
    print(
        json.dumps(
            {
                "benchmark": "encryption",
                "size_mib": args.size_mb,
                "chunk_kib": args.chunk_kib,
                "encrypt_mb_per_s": round(megabytes / encrypt_seconds, 1),
                "decrypt_mb_per_s": round(megabytes / decrypt_seconds, 1),
                "seekable_read_mb_per_s": round(megabytes / seekable_seconds, 1),
                "encrypt_seconds": round(encrypt_seconds, 2),
                "decrypt_seconds": round(decrypt_seconds, 2),
                "ciphertext_overhead_bytes": overhead,
                "rss_after_setup_mib": round(rss_after_setup, 1),
                "peak_rss_mib": round(peak_rss_mib(), 1),
                "round_trip_identical": correct,
            }
        )
    )
    if not correct:
        sys.exit(1)


if __name__ == "__main__":
    main()
