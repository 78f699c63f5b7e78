"""Envelope encryption of files at rest, streaming, in authenticated chunks.

Every file gets its own random 256-bit data key (a ``DataKey`` row, wrapped by
the master key). The file is a header followed by records; each record seals
one chunk of plaintext with AES-256-GCM using the STREAM construction
(Hoang, Reyhanitabar, Rogaway, Vizar 2015)::

    header  = magic "ICXENC" | version u8 | data key id (16) | chunk size u32 | nonce prefix (7)
    record  = plaintext length u32 | AES-GCM(chunk, nonce, aad=header) (length + 16 bytes)
    nonce   = nonce prefix (7) | chunk counter u32 | final flag u8 (1 on the last record only)

Every record but the last holds exactly ``chunk size`` bytes; the last one holds
0..chunk size bytes and carries the final flag. Binding the counter and the
final flag into the nonce, and the header into every tag, means a modified
byte, a header pointing at another key, reordered records, a missing final
record (truncation) and data after the final record are all detected, each
with its own error code. The length prefix is not secret and needs no AAD: GCM
authenticates the ciphertext length, so a forged prefix fails authentication.

Memory is bounded by one chunk (64 KiB by default) whatever the file size.
Streaming readers hand out plaintext chunk by chunk as each authenticates, so a
consumer must treat what it read as untrusted until the stream ends without an
error; the path helpers (``decrypt_file``) write to a temporary file and only
rename it into place on success.
"""

from __future__ import annotations

import io
import os
import struct
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from apps.keys.keyring import KeyringError, data_key_binding, keyring
from apps.keys.models import DataKey
from apps.keys.services import data_key_destroy, data_keys_destroy  # noqa: F401  (re-exported)

MAGIC = b"ICXENC"
FORMAT_VERSION = 1
_HEADER = struct.Struct(">6sB16sI7s")
HEADER_BYTES = _HEADER.size  # 34
_LENGTH = struct.Struct(">I")
TAG_BYTES = 16
NONCE_PREFIX_BYTES = 7
DATA_KEY_BYTES = 32
DEFAULT_CHUNK_SIZE = 64 * 1024
MIN_CHUNK_SIZE = 1024
MAX_CHUNK_SIZE = 16 * 1024 * 1024
MAX_CHUNKS = 2**32  # the counter is 32 bits
# How far either side of a failing record to look for it, to tell "reordered" from "altered".
_REORDER_WINDOW = 16

# Error codes and messages (tests assert against these).
NOT_ENCRYPTED = "not_encrypted"
UNSUPPORTED_VERSION = "unsupported_version"
BAD_HEADER = "bad_header"
UNKNOWN_DATA_KEY = "unknown_data_key"
DESTROYED_DATA_KEY = "destroyed_data_key"
WRONG_PURPOSE = "wrong_purpose"
MASTER_KEY_UNAVAILABLE = "master_key_unavailable"
TAMPERED = "tampered"
REORDERED = "reordered"
TRUNCATED = "truncated"
TRAILING_DATA = "trailing_data"
TOO_LARGE = "too_large"

MESSAGES = {
    NOT_ENCRYPTED: "This is not an Interchange encrypted file (bad magic or short header).",
    UNSUPPORTED_VERSION: "Encrypted file format version {version} is not supported.",
    BAD_HEADER: "The encrypted file header is invalid: {detail}.",
    UNKNOWN_DATA_KEY: "The file's data key {key_id} does not exist; the file cannot be read.",
    DESTROYED_DATA_KEY: (
        "The file's data key {key_id} was destroyed on {destroyed_at} (retention purge); "
        "the file can no longer be read."
    ),
    WRONG_PURPOSE: "The file was encrypted for {actual!r}, not {expected!r}.",
    MASTER_KEY_UNAVAILABLE: "The file's data key cannot be unwrapped: {detail}",
    TAMPERED: "Chunk {index} failed authentication: the encrypted file was altered.",
    REORDERED: "Chunk {index} is out of order (it was sealed as chunk {found}).",
    TRUNCATED: "The encrypted file is truncated: {detail}.",
    TRAILING_DATA: "Data follows the final chunk ({detail}); the encrypted file was appended to.",
    TOO_LARGE: "The file exceeds the format's limit of 2**32 chunks.",
}


class EncryptedFileError(Exception):
    """An encrypted file cannot be read (or written); ``code`` is one of the constants above."""

    def __init__(self, code: str, **params: object) -> None:
        self.code = code
        self.params = params
        super().__init__(MESSAGES[code].format(**params))


@dataclass(frozen=True)
class FileHeader:
    data_key_id: uuid.UUID
    chunk_size: int
    nonce_prefix: bytes
    raw: bytes

    @property
    def record_size(self) -> int:
        """Size on disk of every record but the last."""
        return _LENGTH.size + self.chunk_size + TAG_BYTES


def _nonce(prefix: bytes, index: int, final: bool) -> bytes:
    return prefix + index.to_bytes(4, "big") + (b"\x01" if final else b"\x00")


def _read_exactly(src: BinaryIO, size: int) -> bytes:
    """Read ``size`` bytes unless EOF comes first (sockets and pipes may return short reads)."""
    data = src.read(size)
    if data is None:
        data = b""
    if len(data) == size or not data:
        return data
    parts = [data]
    got = len(data)
    while got < size:
        more = src.read(size - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


# --- writing ---------------------------------------------------------------------------------


def _data_key_create(*, purpose: str) -> tuple[DataKey, bytes]:
    """A fresh data key row (wrapped) and the raw key, which only lives in memory."""
    key_id = uuid.uuid4()
    raw = os.urandom(DATA_KEY_BYTES)
    wrapped = keyring().wrap(raw, purpose=data_key_binding(purpose), object_id=str(key_id))
    data_key = DataKey.objects.create(
        id=key_id, purpose=purpose, wrapped_key=wrapped.blob, master_key_id=wrapped.master_key_id
    )
    return data_key, raw


class EncryptingWriter(io.RawIOBase):
    """A write-only file object that encrypts what it is given into ``dst``.

    ``close()`` seals the final record; without it the file is (detectably)
    truncated. Use as a context manager. ``data_key`` is the row created for it.
    """

    def __init__(
        self, dst: BinaryIO, *, purpose: str, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> None:
        super().__init__()
        if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(f"chunk_size must be in [{MIN_CHUNK_SIZE}, {MAX_CHUNK_SIZE}]")
        self._dst = dst
        self._chunk_size = chunk_size
        self.data_key, raw = _data_key_create(purpose=purpose)
        self._aead = AESGCM(raw)
        self._prefix = os.urandom(NONCE_PREFIX_BYTES)
        self._header = _HEADER.pack(
            MAGIC, FORMAT_VERSION, self.data_key.id.bytes, chunk_size, self._prefix
        )
        self._buffer = bytearray()
        self._index = 0
        self._finished = False
        self.bytes_in = 0
        dst.write(self._header)

    def writable(self) -> bool:
        return True

    def _seal(self, chunk: bytes | memoryview, *, final: bool) -> None:
        if self._index >= MAX_CHUNKS:
            raise EncryptedFileError(TOO_LARGE)
        nonce = _nonce(self._prefix, self._index, final)
        sealed = self._aead.encrypt(nonce, bytes(chunk), self._header)
        self._dst.write(_LENGTH.pack(len(chunk)))
        self._dst.write(sealed)
        self._index += 1

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        if self._finished:
            raise ValueError("write to a closed EncryptingWriter")
        view = memoryview(data).cast("B")
        size = len(view)
        self.bytes_in += size
        size_left = self._chunk_size
        # A full buffer is sealed only once more data arrives: the last chunk must carry
        # the final flag, and until close() any chunk may turn out to be the last.
        if self._buffer:
            take = min(size_left - len(self._buffer), len(view))
            self._buffer += view[:take]
            view = view[take:]
            if len(self._buffer) == size_left and len(view):
                self._seal(self._buffer, final=False)
                self._buffer.clear()
        while len(view) > size_left:
            self._seal(view[:size_left], final=False)
            view = view[size_left:]
        if len(view):
            self._buffer += view
        return size

    def close(self) -> None:
        if not self._finished and not self.closed:
            self._finished = True
            self._seal(self._buffer, final=True)
            self._buffer.clear()
            self._dst.flush()
        super().close()

    def abandon(self) -> None:
        """Stop without sealing the final record (the output is then unreadable, by design)."""
        self._finished = True
        super().close()

    def __exit__(self, exc_type, exc, traceback):  # type: ignore[no-untyped-def]
        # IOBase would close() (and so seal the final record) even when the block failed,
        # turning a half-written file into one that looks complete.
        if exc_type is not None:
            self.abandon()
        else:
            self.close()

    def __del__(self) -> None:
        # Garbage collection must never seal a final record for a writer nobody closed.
        if not getattr(self, "_finished", True):
            self.abandon()


def encrypt_stream(
    src: BinaryIO, dst: BinaryIO, *, purpose: str, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> DataKey:
    """Encrypt everything ``src`` yields into ``dst`` under a new data key, and return the key."""
    writer = EncryptingWriter(dst, purpose=purpose, chunk_size=chunk_size)
    try:
        while block := src.read(chunk_size):
            writer.write(block)
    except BaseException:
        writer.abandon()
        raise
    writer.close()
    return writer.data_key


# --- reading ---------------------------------------------------------------------------------


def read_header(src: BinaryIO) -> FileHeader:
    """Parse (not authenticate) the header; useful to find a file's data key for a purge."""
    raw = _read_exactly(src, HEADER_BYTES)
    if len(raw) != HEADER_BYTES or not raw.startswith(MAGIC):
        raise EncryptedFileError(NOT_ENCRYPTED)
    _magic, version, key_bytes, chunk_size, prefix = _HEADER.unpack(raw)
    if version != FORMAT_VERSION:
        raise EncryptedFileError(UNSUPPORTED_VERSION, version=version)
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise EncryptedFileError(BAD_HEADER, detail=f"chunk size {chunk_size} out of range")
    return FileHeader(
        data_key_id=uuid.UUID(bytes=key_bytes), chunk_size=chunk_size, nonce_prefix=prefix, raw=raw
    )


class _Opener:
    """Authenticates records of one file and classifies failures precisely."""

    def __init__(self, header: FileHeader, *, purpose: str | None) -> None:
        self.header = header
        self.data_key = _load_data_key(header.data_key_id, purpose=purpose)
        self._aead = AESGCM(_unwrap_data_key(self.data_key))

    def _try(self, index: int, sealed: bytes, final: bool) -> bytes | None:
        try:
            return self._aead.decrypt(
                _nonce(self.header.nonce_prefix, index, final), sealed, self.header.raw
            )
        except InvalidTag:
            return None

    def opens_as_final(self, index: int, sealed: bytes) -> bool:
        return self._try(index, sealed, True) is not None

    def open(self, index: int, sealed: bytes, *, final: bool) -> bytes:
        """The plaintext of record ``index``, expected (not) to be the last record."""
        plain = self._try(index, sealed, final)
        if plain is not None:
            return plain
        if self._try(index, sealed, not final) is not None:
            if final:  # the last record present was sealed as a middle one
                raise EncryptedFileError(
                    TRUNCATED,
                    detail=f"chunk {index} is not the final chunk; later ones are missing",
                )
            raise EncryptedFileError(TRAILING_DATA, detail=f"after chunk {index}")
        for found in range(max(0, index - _REORDER_WINDOW), index + _REORDER_WINDOW + 1):
            if found == index:
                continue
            if any(self._try(found, sealed, final) is not None for final in (False, True)):
                raise EncryptedFileError(REORDERED, index=index, found=found)
        raise EncryptedFileError(TAMPERED, index=index)


def _load_data_key(key_id: uuid.UUID, *, purpose: str | None) -> DataKey:
    data_key = DataKey.objects.filter(pk=key_id).first()
    if data_key is None:
        raise EncryptedFileError(UNKNOWN_DATA_KEY, key_id=key_id)
    if data_key.destroyed_at is not None:
        raise EncryptedFileError(
            DESTROYED_DATA_KEY, key_id=key_id, destroyed_at=data_key.destroyed_at.isoformat()
        )
    if purpose is not None and data_key.purpose != purpose:
        raise EncryptedFileError(WRONG_PURPOSE, actual=data_key.purpose, expected=purpose)
    return data_key


def _unwrap_data_key(data_key: DataKey) -> bytes:
    try:
        return keyring().unwrap(
            bytes(data_key.wrapped_key),
            master_key_id=data_key.master_key_id,
            purpose=data_key_binding(data_key.purpose),
            object_id=str(data_key.id),
        )
    except KeyringError as exc:
        raise EncryptedFileError(MASTER_KEY_UNAVAILABLE, detail=str(exc)) from exc


def iter_decrypted(src: BinaryIO, *, purpose: str | None = None) -> Iterator[bytes]:
    """Yield the plaintext chunk by chunk, each only after it authenticated.

    Works on any readable stream (no seeking). Raises ``EncryptedFileError`` as
    soon as something is wrong, possibly after earlier chunks were yielded.
    """
    header = read_header(src)
    opener = _Opener(header, purpose=purpose)
    chunk_size = header.chunk_size
    index = 0
    prefix = _read_exactly(src, _LENGTH.size)
    while True:
        if len(prefix) < _LENGTH.size:
            where = "no final chunk" if not prefix else f"chunk {index} is cut short"
            raise EncryptedFileError(TRUNCATED, detail=where)
        (length,) = _LENGTH.unpack(prefix)
        if length > chunk_size:
            raise EncryptedFileError(TAMPERED, index=index)
        sealed = _read_exactly(src, length + TAG_BYTES)
        if len(sealed) < length + TAG_BYTES:
            raise EncryptedFileError(TRUNCATED, detail=f"chunk {index} is cut short")
        if length < chunk_size:
            # Only the last record may be short, so this one must carry the final flag.
            plain = opener.open(index, sealed, final=True)
            if _read_exactly(src, 1):
                raise EncryptedFileError(TRAILING_DATA, detail=f"after chunk {index}")
            yield plain
            return
        prefix = _read_exactly(src, _LENGTH.size)
        final = not prefix
        plain = opener.open(index, sealed, final=final)
        yield plain
        if final:
            return
        index += 1


def decrypt_stream(src: BinaryIO, dst: BinaryIO, *, purpose: str | None = None) -> int:
    """Decrypt ``src`` into ``dst``; return the plaintext byte count."""
    total = 0
    for chunk in iter_decrypted(src, purpose=purpose):
        dst.write(chunk)
        total += len(chunk)
    return total


class DecryptingReader(io.RawIOBase):
    """A seekable, read-only view of the plaintext of an encrypted, seekable file.

    For consumers that need random access (``zipfile`` reads the central
    directory at the end of an archive). On open the final record is
    authenticated, so truncation and appended data are caught before any read;
    each other record is authenticated when first touched. One decrypted chunk
    is cached at a time.
    """

    def __init__(self, src: BinaryIO, *, purpose: str | None = None) -> None:
        super().__init__()
        if not src.seekable():
            raise ValueError("DecryptingReader needs a seekable source; use iter_decrypted")
        self._src = src
        src.seek(0)
        self.header = read_header(src)
        self._opener = _Opener(self.header, purpose=purpose)
        self.data_key = self._opener.data_key
        self._position = 0
        self._cached_index = -1
        self._cached = b""
        body = src.seek(0, io.SEEK_END) - HEADER_BYTES
        if body < _LENGTH.size + TAG_BYTES:
            raise EncryptedFileError(TRUNCATED, detail="no final chunk")
        self._count = -(-body // self.header.record_size)  # ceil
        plain = self._authenticate_last(body)
        self._size = (self._count - 1) * self.header.chunk_size + len(plain)
        self._cached_index, self._cached = self._count - 1, plain

    def _authenticate_last(self, body: int) -> bytes:
        """Check the file ends with its final record, exactly; classify what is wrong if not."""
        last = self._count - 1
        try:
            length, sealed = self._read_record(last)
            claimed = _LENGTH.size + length + TAG_BYTES
            actual = body - last * self.header.record_size
            if claimed > actual:
                raise EncryptedFileError(TRUNCATED, detail=f"chunk {last} is cut short")
            plain = self._opener.open(last, sealed, final=True)
            if claimed < actual:
                raise EncryptedFileError(TRAILING_DATA, detail=f"after chunk {last}")
            return plain
        except EncryptedFileError as error:
            # Bytes appended after a full final record form a bogus extra "record".
            if last > 0 and error.code != TRAILING_DATA and self._is_final(last - 1):
                raise EncryptedFileError(TRAILING_DATA, detail=f"after chunk {last - 1}") from None
            raise

    def _is_final(self, index: int) -> bool:
        length, sealed = self._read_record(index)
        return length == len(sealed) - TAG_BYTES and self._opener.opens_as_final(index, sealed)

    def _read_record(self, index: int) -> tuple[int, bytes]:
        self._src.seek(HEADER_BYTES + index * self.header.record_size)
        prefix = _read_exactly(self._src, _LENGTH.size)
        if len(prefix) < _LENGTH.size:
            raise EncryptedFileError(TRUNCATED, detail=f"chunk {index} is cut short")
        (length,) = _LENGTH.unpack(prefix)
        if length > self.header.chunk_size:
            raise EncryptedFileError(TAMPERED, index=index)
        return length, _read_exactly(self._src, length + TAG_BYTES)

    def _chunk(self, index: int) -> bytes:
        if index != self._cached_index:
            length, sealed = self._read_record(index)
            final = index == self._count - 1
            if len(sealed) != length + TAG_BYTES or (
                not final and length != self.header.chunk_size
            ):
                raise EncryptedFileError(TAMPERED, index=index)
            self._cached = self._opener.open(index, sealed, final=final)
            self._cached_index = index
        return self._cached

    @property
    def size(self) -> int:
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        position = base + offset
        if position < 0:
            raise ValueError("negative seek position")
        self._position = position
        return position

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def, override]
        view = memoryview(buffer).cast("B")
        written = 0
        chunk_size = self.header.chunk_size
        while written < len(view) and self._position < self._size:
            index, offset = divmod(self._position, chunk_size)
            piece = self._chunk(index)[offset : offset + len(view) - written]
            view[written : written + len(piece)] = piece
            written += len(piece)
            self._position += len(piece)
        return written

    def close(self) -> None:
        self._cached = b""
        super().close()


# --- paths -----------------------------------------------------------------------------------


def _temporary_beside(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")


def _open_private(path: Path) -> BinaryIO:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    return os.fdopen(fd, "wb")


@contextmanager
def open_encrypted(
    path: str | os.PathLike[str], *, purpose: str, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> Iterator[EncryptingWriter]:
    """Write an encrypted file at ``path``; it appears there (mode 0600) only when complete."""
    final_path = Path(path)
    final_path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_beside(final_path)
    try:
        with _open_private(temporary) as handle:
            writer = EncryptingWriter(handle, purpose=purpose, chunk_size=chunk_size)
            try:
                yield writer
            except BaseException:
                writer.abandon()
                raise
            writer.close()
            os.fsync(handle.fileno())
        os.replace(temporary, final_path)
    finally:
        temporary.unlink(missing_ok=True)


def encrypt_file(
    src_path: str | os.PathLike[str], dst_path: str | os.PathLike[str], *, purpose: str
) -> DataKey:
    """Encrypt a plaintext file into ``dst_path``; returns the new data key."""
    with open(src_path, "rb") as src, open_encrypted(dst_path, purpose=purpose) as writer:
        while block := src.read(DEFAULT_CHUNK_SIZE):
            writer.write(block)
    return writer.data_key


def decrypt_file(
    src_path: str | os.PathLike[str],
    dst_path: str | os.PathLike[str],
    *,
    purpose: str | None = None,
) -> int:
    """Decrypt into ``dst_path``, which only appears once the whole file authenticated."""
    final_path = Path(dst_path)
    temporary = _temporary_beside(final_path)
    try:
        with open(src_path, "rb") as src, _open_private(temporary) as dst:
            total = decrypt_stream(src, dst, purpose=purpose)
        os.replace(temporary, final_path)
        return total
    finally:
        temporary.unlink(missing_ok=True)


def open_decrypted(
    path: str | os.PathLike[str], *, purpose: str | None = None, buffer_size: int = 0
) -> io.BufferedReader:
    """A seekable binary file object over the plaintext of an encrypted file.

    ``zipfile.ZipFile(open_decrypted(path))`` reads a staged archive without a
    plaintext copy ever touching the disk.
    """
    handle = open(path, "rb")  # noqa: SIM115 (owned and closed by the reader)
    try:
        reader = DecryptingReader(handle, purpose=purpose)
    except BaseException:
        handle.close()
        raise
    reader_close = reader.close

    def close_both() -> None:
        reader_close()
        handle.close()

    reader.close = close_both  # type: ignore[method-assign]
    return io.BufferedReader(reader, buffer_size or reader.header.chunk_size)


def data_key_id_of(path: str | os.PathLike[str]) -> uuid.UUID:
    """The id of the data key an encrypted file names (no decryption, no database)."""
    with open(path, "rb") as handle:
        return read_header(handle).data_key_id
