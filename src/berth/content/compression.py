"""Compression of content streams: gzip, bzip2, xz and zstd sniffed and decoded.

Pure: fed bytes, returns bytes; no files, no stores. Layer tars arrive compressed in
any of these (or plain); what the content store keeps is what they decompress to.
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from typing import Protocol

from berth.errors import InvalidParameter

try:
    from isal import isal_zlib as _zlib
except ImportError:  # isal is optional: the stdlib decodes gzip too, only slower
    _zlib = zlib  # type: ignore[no-redef,misc]
try:
    import zstandard
except ImportError:
    zstandard = None  # type: ignore[assignment]

_DECODE_ERRORS: tuple[type[Exception], ...] = (
    zlib.error, _zlib.error, OSError, EOFError, lzma.LZMAError,  # type: ignore[assignment]
    *((zstandard.ZstdError,) if zstandard is not None else ()))


class _Decoder(Protocol):
    @property
    def eof(self) -> bool: ...
    @property
    def unused_data(self) -> bytes: ...
    def decompress(self, data: bytes | memoryview) -> bytes: ...


class Decompressor:
    """Turns a gzip, bzip2, xz, zstd or plain byte stream into plain bytes, chunk by chunk.

    Pure: fed bytes, returns bytes. The format is sniffed from the first six bytes;
    concatenated gzip members (as pigz and some tools write) and zstd frames are all
    decoded. gzip goes through isal when it is installed, zstd through zstandard.
    """

    def __init__(self) -> None:
        self._head = b""
        self._kind: str | None = None
        self._decoder: _Decoder | None = None

    def _new_decoder(self) -> _Decoder | None:
        if self._kind == "gzip":
            return _zlib.decompressobj(16 + _zlib.MAX_WBITS)
        if self._kind == "bzip2":
            return bz2.BZ2Decompressor()
        if self._kind == "xz":
            return lzma.LZMADecompressor()
        if self._kind == "zstd":
            if zstandard is None:
                raise InvalidParameter("zstd-compressed data, but the zstandard module is not installed")
            return zstandard.ZstdDecompressor().decompressobj()  # type: ignore[no-any-return]
        return None

    def feed(self, data: bytes | memoryview) -> bytes | memoryview:
        if self._kind is None:
            self._head += data
            if len(self._head) < 6:
                return b""
            data, self._head = self._head, b""
            self._sniff(data)
        return self._decode(data)

    def _sniff(self, head: bytes) -> None:
        self._kind = compression_of(head)
        self._decoder = self._new_decoder()

    def _decode(self, data: bytes | memoryview) -> bytes | memoryview:
        if self._decoder is None:
            return data
        out = []
        try:
            while data:
                if self._decoder.eof:  # a further concatenated member
                    self._decoder = self._new_decoder()
                    assert self._decoder is not None
                out.append(self._decoder.decompress(data))
                data = self._decoder.unused_data if self._decoder.eof else b""
        except _DECODE_ERRORS as e:
            raise InvalidParameter(f"invalid {self._kind} data: {e}") from None
        return b"".join(out)

    def finish(self) -> bytes | memoryview:
        """The last bytes; an error if the compressed stream stopped half way."""
        out: bytes | memoryview = b""
        if self._kind is None:
            data, self._head = self._head, b""
            self._sniff(data)
            out = self._decode(data)
        if self._decoder is not None and not self._decoder.eof:
            raise InvalidParameter(f"invalid {self._kind} data: unexpected end of stream")
        return out


def compression_of(head: bytes) -> str:
    """"gzip", "bzip2", "xz", "zstd" or "plain", from a stream's first six bytes."""
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh"):
        return "bzip2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    return "plain"
