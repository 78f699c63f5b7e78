"""Envelope file encryption: round trips, constant memory, and every kind of tampering detected."""

from __future__ import annotations

import hashlib
import io
import os
import struct
import tracemalloc
import zipfile

import pytest

from apps.keys import files
from apps.keys.files import EncryptedFileError
from apps.keys.master import generate_key
from apps.keys.models import DataKey

pytestmark = pytest.mark.django_db

CHUNK = files.MIN_CHUNK_SIZE  # small chunks make multi-chunk files cheap to build
RECORD = 4 + CHUNK + files.TAG_BYTES
HEADER = files.HEADER_BYTES
PURPOSE = "tests.files"


def encrypt(data: bytes, *, chunk_size: int = CHUNK, purpose: str = PURPOSE) -> bytes:
    out = io.BytesIO()
    files.encrypt_stream(io.BytesIO(data), out, purpose=purpose, chunk_size=chunk_size)
    return out.getvalue()


def decrypt_streaming(ciphertext: bytes, **kwargs) -> bytes:  # type: ignore[no-untyped-def]
    out = io.BytesIO()
    files.decrypt_stream(io.BytesIO(ciphertext), out, **kwargs)
    return out.getvalue()


def decrypt_seeking(ciphertext: bytes, **kwargs) -> bytes:  # type: ignore[no-untyped-def]
    return files.DecryptingReader(io.BytesIO(ciphertext), **kwargs).read()


READERS = pytest.mark.parametrize("decrypt", [decrypt_streaming, decrypt_seeking])


# --- round trips -----------------------------------------------------------------------------


@READERS
@pytest.mark.parametrize(
    "size", [0, 1, 17, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 517, 10 * CHUNK - 3]
)
def test_any_size_round_trips(master_key, decrypt, size):
    data = os.urandom(size)

    ciphertext = encrypt(data)

    assert decrypt(ciphertext) == data
    assert len(ciphertext) == HEADER + max(1, -(-size // CHUNK)) * (4 + files.TAG_BYTES) + size


def test_the_default_chunk_size_round_trips_a_multi_chunk_file(master_key):
    data = os.urandom(3 * files.DEFAULT_CHUNK_SIZE + 5)
    ciphertext = encrypt(data, chunk_size=files.DEFAULT_CHUNK_SIZE)
    assert decrypt_streaming(ciphertext) == data
    assert [len(c) for c in files.iter_decrypted(io.BytesIO(ciphertext))] == [
        files.DEFAULT_CHUNK_SIZE
    ] * 3 + [5]


def test_ciphertext_reveals_nothing_and_every_file_gets_its_own_data_key(master_key):
    data = b"pupil,date_of_birth\n" * 500
    first, second = encrypt(data), encrypt(data)

    assert b"pupil" not in first
    assert first != second
    assert (
        files.read_header(io.BytesIO(first)).data_key_id
        != files.read_header(io.BytesIO(second)).data_key_id
    )
    assert DataKey.objects.filter(purpose=PURPOSE).count() == 2


def test_the_data_key_is_stored_only_wrapped(master_key):
    out = io.BytesIO()
    data_key = files.encrypt_stream(io.BytesIO(b"x"), out, purpose=PURPOSE)

    stored = DataKey.objects.get(pk=data_key.pk)
    assert len(bytes(stored.wrapped_key)) == 1 + 12 + 32 + 16  # format, nonce, key, tag
    assert stored.master_key_id == data_key.master_key_id


def test_a_writer_can_be_fed_in_pieces_of_any_size(master_key):
    data = os.urandom(5 * CHUNK + 3)
    out = io.BytesIO()
    with files.EncryptingWriter(out, purpose=PURPOSE, chunk_size=CHUNK) as writer:
        for start, size in zip(range(0, len(data), 700), [700] * 100, strict=False):
            writer.write(data[start : start + size])
    assert decrypt_streaming(out.getvalue()) == data


def test_a_seekable_reader_serves_zipfile_without_a_plaintext_copy(master_key, tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("users.csv", "sourcedId,givenName\n" + "u1,Ann\n" * 5000)
        archive.writestr("manifest.csv", "propertyName,value\n")
    path = tmp_path / "upload.zip.enc"
    with files.open_encrypted(path, purpose=PURPOSE, chunk_size=CHUNK) as writer:
        writer.write(buffer.getvalue())

    with files.open_decrypted(path, purpose=PURPOSE) as plain, zipfile.ZipFile(plain) as archive:
        assert sorted(archive.namelist()) == ["manifest.csv", "users.csv"]
        assert archive.read("users.csv").count(b"u1,Ann") == 5000
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_path_helpers_round_trip_and_name_the_data_key(master_key, tmp_path):
    source, encrypted, decrypted = tmp_path / "a.csv", tmp_path / "a.enc", tmp_path / "a.out"
    source.write_bytes(os.urandom(200_000))

    data_key = files.encrypt_file(source, encrypted, purpose=PURPOSE)

    assert files.data_key_id_of(encrypted) == data_key.id
    assert files.decrypt_file(encrypted, decrypted) == 200_000
    assert decrypted.read_bytes() == source.read_bytes()


def test_a_failed_write_leaves_no_file_behind(master_key, tmp_path):
    path = tmp_path / "bundle.enc"
    with pytest.raises(RuntimeError), files.open_encrypted(path, purpose=PURPOSE) as writer:
        writer.write(b"half of it")
        raise RuntimeError("source went away")
    assert list(tmp_path.iterdir()) == []


def test_a_writer_left_by_an_exception_is_not_sealed_into_a_complete_looking_file(master_key):
    out = io.BytesIO()
    with pytest.raises(RuntimeError), files.EncryptingWriter(out, purpose=PURPOSE) as writer:
        writer.write(b"half of it")
        raise RuntimeError("boom")
    with pytest.raises(EncryptedFileError) as error:
        decrypt_streaming(out.getvalue())
    assert error.value.code == files.TRUNCATED


def test_a_failed_decryption_leaves_no_plaintext_file(master_key, tmp_path):
    encrypted, decrypted = tmp_path / "a.enc", tmp_path / "a.out"
    data = os.urandom(5 * files.DEFAULT_CHUNK_SIZE)
    encrypted.write_bytes(encrypt(data, chunk_size=files.DEFAULT_CHUNK_SIZE)[:-100])

    with pytest.raises(EncryptedFileError):
        files.decrypt_file(encrypted, decrypted)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.enc"]


# --- tampering -------------------------------------------------------------------------------


def _record(index: int) -> slice:
    start = HEADER + index * RECORD
    return slice(start, start + RECORD)


def flip_byte(ciphertext: bytes, offset: int) -> bytes:
    data = bytearray(ciphertext)
    data[offset] ^= 0x01
    return bytes(data)


def swap_records(ciphertext: bytes, a: int, b: int) -> bytes:
    data = bytearray(ciphertext)
    data[_record(a)], data[_record(b)] = ciphertext[_record(b)], ciphertext[_record(a)]
    return bytes(data)


SHORT_FINAL = 3 * CHUNK + 512  # three full records and a short final one
EXACT = 3 * CHUNK  # the final record is a full one

TAMPERING = {
    # name: (plaintext size, how to tamper, expected code)
    "byte flipped in a chunk": (
        SHORT_FINAL,
        lambda c: flip_byte(c, _record(1).start + 100),
        files.TAMPERED,
    ),
    "byte flipped in the final chunk": (
        SHORT_FINAL,
        lambda c: flip_byte(c, len(c) - 1),
        files.TAMPERED,
    ),
    "nonce prefix in the header changed": (
        SHORT_FINAL,
        lambda c: flip_byte(c, HEADER - 1),
        files.TAMPERED,
    ),
    "chunk size in the header changed": (
        SHORT_FINAL,
        lambda c: c[:23] + struct.pack(">I", 2 * CHUNK) + c[27:],
        files.TAMPERED,
    ),
    "record length forged": (
        SHORT_FINAL,
        lambda c: c[: _record(1).start] + struct.pack(">I", CHUNK + 1) + c[_record(1).start + 4 :],
        files.TAMPERED,
    ),
    "chunks reordered": (SHORT_FINAL, lambda c: swap_records(c, 1, 2), files.REORDERED),
    "final chunk removed": (SHORT_FINAL, lambda c: c[: _record(3).start], files.TRUNCATED),
    "final chunk removed (exact multiple)": (
        EXACT,
        lambda c: c[: _record(2).start],
        files.TRUNCATED,
    ),
    "cut in the middle of a chunk": (
        SHORT_FINAL,
        lambda c: c[: _record(2).start + 50],
        files.TRUNCATED,
    ),
    "cut in a length prefix": (SHORT_FINAL, lambda c: c[: _record(3).start + 2], files.TRUNCATED),
    "every chunk removed": (SHORT_FINAL, lambda c: c[:HEADER], files.TRUNCATED),
    "bytes appended": (SHORT_FINAL, lambda c: c + b"extra", files.TRAILING_DATA),
    "bytes appended (exact multiple)": (EXACT, lambda c: c + b"extra", files.TRAILING_DATA),
    "two bytes appended (exact multiple)": (EXACT, lambda c: c + b"xy", files.TRAILING_DATA),
    "a whole chunk appended": (EXACT, lambda c: c + c[_record(0)], files.TRAILING_DATA),
    "not an encrypted file": (SHORT_FINAL, lambda c: b"PK\x03\x04" + c[4:], files.NOT_ENCRYPTED),
    "unknown format version": (
        SHORT_FINAL,
        lambda c: c[:6] + b"\x09" + c[7:],
        files.UNSUPPORTED_VERSION,
    ),
}


@READERS
@pytest.mark.parametrize("name", list(TAMPERING))
def test_tampering_is_detected_with_its_own_error(master_key, decrypt, name):
    size, tamper, expected = TAMPERING[name]
    ciphertext = encrypt(os.urandom(size))
    assert decrypt(ciphertext)  # intact, it reads

    with pytest.raises(EncryptedFileError) as error:
        decrypt(tamper(ciphertext))

    assert error.value.code == expected, str(error.value)
    assert str(error.value) == files.MESSAGES[expected].format(**error.value.params)


def test_a_header_pointing_at_another_files_data_key_fails_authentication(master_key):
    victim, other = encrypt(os.urandom(2 * CHUNK)), encrypt(b"other")
    other_key = files.read_header(io.BytesIO(other)).data_key_id
    forged = victim[:7] + other_key.bytes + victim[23:]

    with pytest.raises(EncryptedFileError) as error:
        decrypt_streaming(forged)
    assert error.value.code == files.TAMPERED


@READERS
def test_a_file_whose_data_key_row_is_gone_names_the_key(master_key, decrypt):
    ciphertext = encrypt(b"secret")
    key_id = files.read_header(io.BytesIO(ciphertext)).data_key_id
    DataKey.objects.filter(pk=key_id).delete()

    with pytest.raises(EncryptedFileError) as error:
        decrypt(ciphertext)
    assert error.value.code == files.UNKNOWN_DATA_KEY
    assert str(key_id) in str(error.value)


@READERS
def test_a_destroyed_data_key_makes_the_file_unreadable_for_good(master_key, decrypt):
    out = io.BytesIO()
    data_key = files.encrypt_stream(io.BytesIO(b"pupil record"), out, purpose=PURPOSE)

    assert files.data_key_destroy(data_key=data_key, reason="retention: 30 days") is True

    stored = DataKey.objects.get(pk=data_key.pk)
    assert bytes(stored.wrapped_key) == b"" and stored.destroyed_at is not None
    with pytest.raises(EncryptedFileError) as error:
        decrypt(out.getvalue())
    assert error.value.code == files.DESTROYED_DATA_KEY
    assert files.data_key_destroy(data_key=data_key) is False  # idempotent


def test_destroying_many_data_keys_is_one_statement(master_key, django_assert_max_num_queries):
    keys = [
        files.encrypt_stream(io.BytesIO(b"x"), io.BytesIO(), purpose=PURPOSE) for _ in range(20)
    ]

    with django_assert_max_num_queries(4):  # the update and the audit record
        destroyed = files.data_keys_destroy(data_key_ids=[k.pk for k in keys], reason="purge")

    assert destroyed == 20
    assert not DataKey.objects.filter(destroyed_at__isnull=True, purpose=PURPOSE).exists()


def test_reading_with_an_expected_purpose_refuses_another_kind_of_file(master_key):
    ciphertext = encrypt(b"bundle", purpose="delivery.bundle")

    with pytest.raises(EncryptedFileError) as error:
        decrypt_streaming(ciphertext, purpose="roster.staging")
    assert error.value.code == files.WRONG_PURPOSE
    assert decrypt_streaming(ciphertext, purpose="delivery.bundle") == b"bundle"


def test_without_the_master_key_that_wrapped_it_the_file_names_the_missing_key(
    settings, master_key
):
    ciphertext = encrypt(b"secret")
    wrapped_by = DataKey.objects.get().master_key_id
    settings.INTERCHANGE_MASTER_KEY = generate_key()

    with pytest.raises(EncryptedFileError) as error:
        decrypt_streaming(ciphertext)
    assert error.value.code == files.MASTER_KEY_UNAVAILABLE
    assert wrapped_by in str(error.value)


# --- constant memory -------------------------------------------------------------------------

LARGE_FILE_MB = int(os.environ.get("INTERCHANGE_TEST_LARGE_FILE_MB", "300"))
MEMORY_CEILING = 4 * 1024 * 1024


class RandomSource(io.RawIOBase):
    """``size`` random bytes, produced on demand and hashed as they go: never held whole."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.sha = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:  # type: ignore[override]
        n = self.left if n < 0 else min(n, self.left)
        block = os.urandom(n)
        self.left -= n
        self.sha.update(block)
        return block


class HashingSink(io.RawIOBase):
    def __init__(self) -> None:
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[no-untyped-def, override]
        self.sha.update(data)
        self.size += len(data)
        return len(data)


def _peak_while(action) -> int:  # type: ignore[no-untyped-def]
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_large_file_round_trips_in_constant_memory(master_key, tmp_path):
    size = LARGE_FILE_MB * 1024 * 1024
    source, path = RandomSource(size), tmp_path / "large.enc"

    def encrypt_large() -> None:
        with open(path, "wb") as dst:
            files.encrypt_stream(source, dst, purpose=PURPOSE)

    sink = HashingSink()

    def decrypt_large() -> None:
        with open(path, "rb") as src:
            files.decrypt_stream(src, sink)

    seek_sink = HashingSink()

    def read_seeking() -> None:
        with files.open_decrypted(path) as plain:
            while block := plain.read(1024 * 1024):
                seek_sink.write(block)

    assert _peak_while(encrypt_large) < MEMORY_CEILING
    assert path.stat().st_size > size
    assert _peak_while(decrypt_large) < MEMORY_CEILING
    assert _peak_while(read_seeking) < MEMORY_CEILING
    assert sink.size == seek_sink.size == size
    assert sink.sha.digest() == seek_sink.sha.digest() == source.sha.digest()
