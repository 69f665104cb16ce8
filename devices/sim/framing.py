"""NETCONF message framing over SSH (RFC 6242 section 4): a pure codec, no I/O.

Two framings exist. base:1.0 ends each message with `]]>]]>`; base:1.1 sends a message as
one or more chunks `\\n#SIZE\\n<SIZE bytes>` closed by `\\n##\\n`. Every session starts in
base:1.0 (the hellos) and may switch to chunked right after the hello exchange, possibly in
the middle of a buffer already received, so the decoder hands out one message at a time
and reads its `chunked` flag before each one.
"""

from __future__ import annotations

from collections.abc import Iterator

from changeline.devices.sim.errors import SimError

END_OF_MESSAGE = b"]]>]]>"
END_OF_CHUNKS = b"\n##\n"
MAX_CHUNK_SIZE = 4294967295
# "\n#" + 10 digits + "\n": a longer header without its newline is malformed, so a
# garbage stream is rejected after 13 bytes instead of being buffered for ever.
_MAX_CHUNK_HEADER = 2 + len(str(MAX_CHUNK_SIZE)) + 1


class FramingError(SimError):
    """The byte stream violates the negotiated framing; RFC 6242 says end the session."""


def encode_end_of_message(message: bytes) -> bytes:
    """Frame one message for base:1.0."""
    if END_OF_MESSAGE in message:
        # Well-formed XML cannot contain the delimiter (`>` in text is escaped by any
        # serializer), so this is a caller bug, not something to frame silently.
        raise FramingError("message contains the base:1.0 end-of-message delimiter")
    return message + END_OF_MESSAGE


def encode_chunked(message: bytes, *, max_chunk_size: int = MAX_CHUNK_SIZE) -> bytes:
    """Frame one message for base:1.1, split into chunks of at most `max_chunk_size`."""
    if not message:
        raise FramingError("a chunked message needs at least one byte")
    if not 1 <= max_chunk_size <= MAX_CHUNK_SIZE:
        raise FramingError(f"chunk size must be 1..{MAX_CHUNK_SIZE}, got {max_chunk_size}")
    parts = []
    for start in range(0, len(message), max_chunk_size):
        chunk = message[start:start + max_chunk_size]
        parts.append(b"\n#%d\n" % len(chunk))
        parts.append(chunk)
    parts.append(END_OF_CHUNKS)
    return b"".join(parts)


def encode(message: bytes, *, chunked: bool) -> bytes:
    return encode_chunked(message) if chunked else encode_end_of_message(message)


class MessageDecoder:
    """Incremental decoder: `feed` bytes as they arrive, iterate the complete messages.

    Starts in base:1.0; set `chunked = True` once base:1.1 is negotiated. The iterator
    returned by `feed` decodes lazily, so a switch made while iterating applies to the
    very next message, including bytes that arrived in the same read as the hello.
    A `FramingError` leaves the decoder unusable, as the session must end anyway.
    """

    def __init__(self) -> None:
        self.chunked = False
        self._buffer = bytearray()
        self._eom_scan_from = 0
        self._chunks: list[bytes] = []

    def feed(self, data: bytes) -> Iterator[bytes]:
        self._buffer += data
        return iter(self.next_message, None)

    def next_message(self) -> bytes | None:
        """The next complete message, or None until more bytes arrive."""
        return self._next_chunked() if self.chunked else self._next_end_of_message()

    def _next_end_of_message(self) -> bytes | None:
        end = self._buffer.find(END_OF_MESSAGE, self._eom_scan_from)
        if end < 0:
            # Rescan only the tail that could hold a delimiter split across reads.
            self._eom_scan_from = max(0, len(self._buffer) - len(END_OF_MESSAGE) + 1)
            return None
        message = bytes(self._buffer[:end])
        del self._buffer[:end + len(END_OF_MESSAGE)]
        self._eom_scan_from = 0
        return message

    def _next_chunked(self) -> bytes | None:
        while True:
            header = self._chunk_header()
            if header is None:
                return None
            header_len, size = header
            if size == 0:  # end-of-chunks
                del self._buffer[:header_len]
                if not self._chunks:
                    raise FramingError("end-of-chunks without any chunk")
                message, self._chunks = b"".join(self._chunks), []
                return message
            if len(self._buffer) < header_len + size:
                return None
            self._chunks.append(bytes(self._buffer[header_len:header_len + size]))
            del self._buffer[:header_len + size]

    def _chunk_header(self) -> tuple[int, int] | None:
        """(header length, chunk size) of the header at the buffer start; size 0 means
        end-of-chunks. None when the header is still incomplete."""
        buf = self._buffer
        for i, expected in enumerate(b"\n#"[:len(buf)]):
            if buf[i] != expected:
                raise FramingError(f"expected chunk header, got {bytes(buf[:16])!r}")
        if len(buf) < 3:
            return None
        if buf[2:3] == b"#":
            if len(buf) < 4:
                return None
            if buf[3:4] != b"\n":
                raise FramingError(f"malformed end-of-chunks {bytes(buf[:4])!r}")
            return 4, 0
        end = buf.find(b"\n", 2, _MAX_CHUNK_HEADER)
        if end < 0:
            digits = bytes(buf[2:_MAX_CHUNK_HEADER])
            if len(buf) >= _MAX_CHUNK_HEADER or not digits.isdigit():
                raise FramingError(f"malformed chunk size {digits!r}")
            return None
        return end + 1, _chunk_size(bytes(buf[2:end]))


def _chunk_size(digits: bytes) -> int:
    # RFC 6242: chunk-size = [1-9][0-9]*, at most 4294967295; no sign, no leading zero.
    if not digits.isdigit() or digits.startswith(b"0"):
        raise FramingError(f"malformed chunk size {digits!r}")
    size = int(digits)
    if size > MAX_CHUNK_SIZE:
        raise FramingError(f"chunk size {size} exceeds {MAX_CHUNK_SIZE}")
    return size
