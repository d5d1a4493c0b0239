"""SPDY/3.1 framing and a small asyncio session: what ``kubectl port-forward`` speaks.

Written from the public SPDY/3.1 draft. Three layers, each usable alone:

- **Frames** (:class:`SynStream`, :class:`SynReply`, :class:`RstStream`, :class:`Settings`,
  :class:`Ping`, :class:`GoAway`, :class:`Headers`, :class:`WindowUpdate`, :class:`Data`):
  :func:`encode` turns one into bytes; a :class:`FrameReader` is fed bytes in chunks of any size
  and returns whole frames. Malformed input raises :class:`ProtocolError`, never anything else;
  unknown control frame types are skipped, as the spec requires.
- **Header blocks**: a :class:`HeaderCodec` per direction, because SPDY compresses every header
  block of a session with one zlib stream (seeded with :data:`DICTIONARY`, sync-flushed per
  block). Names are lowercased on both sides; repeated values are joined with NUL.
- **Session** over an abstract :class:`Transport` (a byte stream: a socket, or the binary
  messages of a WebSocket concatenated). Client sessions open odd stream ids, servers even.
  An incoming SYN_STREAM is answered with an empty SYN_REPLY and handed to ``on_stream``;
  :meth:`Session.open_stream` waits for the peer's SYN_REPLY. Peer PINGs are echoed.

Flow control: every DATA byte a stream's reader consumes is given back to the peer with
WINDOW_UPDATE (stream and session windows) once half a window (:data:`UPDATE_AT`) has been
consumed, so a peer that honours the 64 KiB window never waits on us (unless the session is
made with ``window_updates=False``: a client of a spdystream server, which never enforces
windows and closes its socket right after its last frame, so an unread WINDOW_UPDATE of ours
would turn that close into a reset that drops the end of its output). Our own sending is
*not* held to the peer's window: kubectl's SPDY library (spdystream) never sends
WINDOW_UPDATE, so honouring it would stall every transfer past 64 KiB. Back-pressure
comes from the transport instead, and a stream whose unread buffer passes
:data:`HIGH_WATER` pauses the reading of the whole session until it drains (the same
head-of-line rule spdystream has).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

VERSION = 3
MAX_LENGTH = (1 << 24) - 1
DEFAULT_WINDOW = 64 * 1024
UPDATE_AT = DEFAULT_WINDOW // 2
HIGH_WATER = 1 << 20
CHUNK = 32 * 1024

SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS = 1, 2, 3, 4
PING, GOAWAY, HEADERS, WINDOW_UPDATE = 6, 7, 8, 9
FLAG_FIN, FLAG_UNIDIRECTIONAL, FLAG_CLEAR_SETTINGS = 0x01, 0x02, 0x01

# RST_STREAM status codes
PROTOCOL_ERROR, INVALID_STREAM, REFUSED_STREAM, UNSUPPORTED_VERSION = 1, 2, 3, 4
CANCEL, INTERNAL_ERROR, FLOW_CONTROL_ERROR, STREAM_IN_USE = 5, 6, 7, 8
STREAM_ALREADY_CLOSED, FRAME_TOO_LARGE = 9, 11
# GOAWAY status codes
GOAWAY_OK, GOAWAY_PROTOCOL_ERROR, GOAWAY_INTERNAL_ERROR = 0, 1, 2

_NAMES = (
    "options head post put delete trace accept accept-charset accept-encoding accept-language "
    "accept-ranges age allow authorization cache-control connection content-base "
    "content-encoding content-language content-length content-location content-md5 "
    "content-range content-type date etag expect expires from host if-match "
    "if-modified-since if-none-match if-range if-unmodified-since last-modified location "
    "max-forwards pragma proxy-authenticate proxy-authorization range referer retry-after "
    "server te trailer transfer-encoding upgrade user-agent vary via warning www-authenticate "
    "method get status"
)
_WORDS = [*_NAMES.split(), "200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie"]
_WORDS += ["keep-alive", "origin"]
_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 "
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
#: The zlib dictionary of SPDY/3 header compression (the spec's, byte for byte).
DICTIONARY = b"".join(struct.pack(">I", len(w)) + w.encode() for w in _WORDS) + _TAIL.encode()


class ProtocolError(Exception):
    """The peer broke the framing rules; the session cannot continue."""


class StreamReset(Exception):
    """The stream was reset (RST_STREAM) or its session ended."""


# -- frames -------------------------------------------------------------------------------------

Header = Mapping[str, str]


@dataclass(frozen=True)
class SynStream:
    stream_id: int
    headers: Header = field(default_factory=dict)
    associated_id: int = 0
    priority: int = 0
    fin: bool = False
    unidirectional: bool = False


@dataclass(frozen=True)
class SynReply:
    stream_id: int
    headers: Header = field(default_factory=dict)
    fin: bool = False


@dataclass(frozen=True)
class Headers:
    stream_id: int
    headers: Header = field(default_factory=dict)
    fin: bool = False


@dataclass(frozen=True)
class RstStream:
    stream_id: int
    status: int


@dataclass(frozen=True)
class Settings:
    entries: tuple[tuple[int, int, int], ...] = ()  # (flags, id, value)
    clear: bool = False


@dataclass(frozen=True)
class Ping:
    ping_id: int


@dataclass(frozen=True)
class GoAway:
    last_good_stream_id: int
    status: int = GOAWAY_OK


@dataclass(frozen=True)
class WindowUpdate:
    stream_id: int
    delta: int


@dataclass(frozen=True)
class Data:
    stream_id: int
    data: bytes = b""
    fin: bool = False


Frame = SynStream | SynReply | Headers | RstStream | Settings | Ping | GoAway | WindowUpdate | Data


class HeaderCodec:
    """One direction's header-block compression state (see the module docstring)."""

    def __init__(self) -> None:
        self._compress = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zdict=DICTIONARY)
        self._decompress = zlib.decompressobj(zdict=DICTIONARY)

    def pack(self, headers: Header) -> bytes:
        raw = [struct.pack(">I", len(headers))]
        for name, value in headers.items():
            n, v = name.lower().encode(), value.encode()
            raw += [struct.pack(">I", len(n)), n, struct.pack(">I", len(v)), v]
        block = b"".join(raw)
        return self._compress.compress(block) + self._compress.flush(zlib.Z_SYNC_FLUSH)

    def unpack(self, block: bytes) -> dict[str, str]:
        try:
            raw = self._decompress.decompress(block, MAX_LENGTH)
        except zlib.error as err:
            raise ProtocolError(f"bad header block: {err}") from None
        if self._decompress.unconsumed_tail:
            raise ProtocolError("header block too large")
        view, headers = _Cursor(raw), {}
        count = view.u32()
        if count > len(raw) // 8:
            raise ProtocolError("header block: impossible number of pairs")
        for _ in range(count):
            name = view.take(view.u32())
            value = view.take(view.u32())
            if not name:
                raise ProtocolError("header block: empty name")
            try:
                key = name.decode().lower()
                headers[key] = value.decode()
            except UnicodeDecodeError:
                raise ProtocolError("header block: not UTF-8") from None
        if view.remaining():
            raise ProtocolError("header block: trailing bytes")
        return headers


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ProtocolError("frame truncated")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u32(self) -> int:
        return int(struct.unpack(">I", self.take(4))[0])

    def id31(self) -> int:
        return self.u32() & 0x7FFFFFFF

    def remaining(self) -> int:
        return len(self.data) - self.pos


def _control(kind: int, flags: int, payload: bytes) -> bytes:
    if len(payload) > MAX_LENGTH:
        raise ValueError("frame too large")
    return struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload)) + payload


def encode(frame: Frame, codec: HeaderCodec) -> bytes:
    """The bytes of ``frame``; header blocks go through ``codec`` (stateful: encode in order)."""
    match frame:
        case Data(sid, data, fin):
            if len(data) > MAX_LENGTH:
                raise ValueError("frame too large")
            return struct.pack(">II", sid & 0x7FFFFFFF, (int(fin) << 24) | len(data)) + data
        case SynStream(sid, headers, assoc, prio, fin, uni):
            flags = (FLAG_FIN if fin else 0) | (FLAG_UNIDIRECTIONAL if uni else 0)
            head = struct.pack(">IIBB", sid, assoc, (prio & 7) << 5, 0)
            return _control(SYN_STREAM, flags, head + codec.pack(headers))
        case SynReply(sid, headers, fin):
            payload = struct.pack(">I", sid) + codec.pack(headers)
            return _control(SYN_REPLY, FLAG_FIN if fin else 0, payload)
        case Headers(sid, headers, fin):
            payload = struct.pack(">I", sid) + codec.pack(headers)
            return _control(HEADERS, FLAG_FIN if fin else 0, payload)
        case RstStream(sid, status):
            return _control(RST_STREAM, 0, struct.pack(">II", sid, status))
        case Settings(entries, clear):
            body = b"".join(struct.pack(">II", (f << 24) | i, v) for f, i, v in entries)
            flags = FLAG_CLEAR_SETTINGS if clear else 0
            return _control(SETTINGS, flags, struct.pack(">I", len(entries)) + body)
        case Ping(ping_id):
            return _control(PING, 0, struct.pack(">I", ping_id))
        case GoAway(last, status):
            return _control(GOAWAY, 0, struct.pack(">II", last, status))
        case WindowUpdate(sid, delta):
            return _control(WINDOW_UPDATE, 0, struct.pack(">II", sid, delta))
    raise TypeError(f"not a SPDY frame: {frame!r}")


class FrameReader:
    """Incremental decoder: :meth:`feed` bytes, get the frames they complete."""

    def __init__(self, codec: HeaderCodec | None = None) -> None:
        self.codec = codec or HeaderCodec()
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames: list[Frame] = []
        while len(self._buf) >= 8:
            length = int.from_bytes(self._buf[5:8], "big")
            if len(self._buf) < 8 + length:
                break
            head, payload = bytes(self._buf[:8]), bytes(self._buf[8 : 8 + length])
            del self._buf[: 8 + length]
            frame = self._decode(head, payload)
            if frame is not None:
                frames.append(frame)
        return frames

    def _decode(self, head: bytes, payload: bytes) -> Frame | None:
        flags = head[4]
        if not head[0] & 0x80:
            sid = int.from_bytes(head[:4], "big")
            return Data(sid, payload, bool(flags & FLAG_FIN))
        version = int.from_bytes(head[:2], "big") & 0x7FFF
        if version != VERSION:
            raise ProtocolError(f"unsupported SPDY version {version}")
        kind, view = int.from_bytes(head[2:4], "big"), _Cursor(payload)
        fin = bool(flags & FLAG_FIN)
        if kind == SYN_STREAM:
            sid, assoc = view.id31(), view.id31()
            prio = view.take(2)[0] >> 5
            headers = self.codec.unpack(view.take(view.remaining()))
            uni = bool(flags & FLAG_UNIDIRECTIONAL)
            return SynStream(sid, headers, assoc, prio, fin, uni)
        if kind in (SYN_REPLY, HEADERS):
            sid = view.id31()
            headers = self.codec.unpack(view.take(view.remaining()))
            return (SynReply if kind == SYN_REPLY else Headers)(sid, headers, fin)
        if kind == SETTINGS:
            count = view.u32()
            if count * 8 != view.remaining():
                raise ProtocolError("SETTINGS: length does not match its entries")
            entries = []
            for _ in range(count):
                word = view.u32()
                entries.append((word >> 24, word & 0xFFFFFF, view.u32()))
            return Settings(tuple(entries), bool(flags & FLAG_CLEAR_SETTINGS))
        fixed = {RST_STREAM: 8, PING: 4, GOAWAY: 8, WINDOW_UPDATE: 8}
        if kind not in fixed:
            return None  # unknown control frames are ignored
        if len(payload) != fixed[kind]:
            raise ProtocolError(f"control frame {kind}: bad length {len(payload)}")
        if kind == RST_STREAM:
            return RstStream(view.id31(), view.u32())
        if kind == PING:
            return Ping(view.u32())
        if kind == GOAWAY:
            return GoAway(view.id31(), view.u32())
        return WindowUpdate(view.id31(), view.id31())


# -- session ------------------------------------------------------------------------------------


class Transport(Protocol):
    """A byte stream: ``read`` returns ``b""`` at the end."""

    async def read(self) -> bytes: ...

    async def write(self, data: bytes) -> None: ...

    async def close(self) -> None: ...


class TcpTransport:
    """An asyncio TCP connection as a :class:`Transport`."""

    READ_SIZE = 64 * 1024

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def read(self) -> bytes:
        try:
            return await self.reader.read(self.READ_SIZE)
        except ConnectionError:
            return b""

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


class Stream:
    """One SPDY stream: bytes in both directions, half-close with :meth:`close`."""

    def __init__(self, session: Session, stream_id: int, headers: Header) -> None:
        self.session, self.id, self.headers = session, stream_id, dict(headers)
        self.replied = asyncio.Event()
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._unacked = 0
        self._readable = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self.remote_closed = False
        self.local_closed = False
        self.reset_status: int | None = None

    async def read(self) -> bytes:
        """The next bytes the peer sent; ``b""`` once it half-closed (or reset) the stream."""
        while not self._chunks:
            if self.remote_closed or self.reset_status is not None:
                return b""
            self._readable.clear()
            await self._readable.wait()
        data = self._chunks.popleft()
        self._buffered -= len(data)
        if self._buffered <= HIGH_WATER:
            self._drained.set()
        await self.session._consumed(self, len(data))
        return data

    async def write(self, data: bytes) -> None:
        for i in range(0, len(data), CHUNK):
            self._check_writable()
            await self.session._send(Data(self.id, data[i : i + CHUNK]))

    async def close(self) -> None:
        """Half-close: we send no more (DATA with FIN). Idempotent."""
        if self.local_closed or self.reset_status is not None:
            return
        self.local_closed = True
        await self.session._send(Data(self.id, b"", fin=True))
        self.session._maybe_forget(self)

    async def reset(self, status: int = CANCEL) -> None:
        """Abort the stream in both directions (RST_STREAM)."""
        if self.reset_status is not None:
            return
        self._mark_reset(status)
        with contextlib.suppress(ConnectionError, StreamReset):
            await self.session._send(RstStream(self.id, status))

    def _check_writable(self) -> None:
        if self.reset_status is not None:
            raise StreamReset(f"stream {self.id} was reset ({self.reset_status})")
        if self.local_closed:
            raise StreamReset(f"stream {self.id} is closed for writing")

    def _deliver(self, data: bytes, fin: bool) -> None:
        if data:
            self._chunks.append(data)
            self._buffered += len(data)
            if self._buffered > HIGH_WATER:
                self._drained.clear()
        if fin:
            self.remote_closed = True
        self._readable.set()

    def _mark_reset(self, status: int) -> None:
        self.reset_status = status
        self.replied.set()
        self._readable.set()
        self._drained.set()
        self.session._streams.pop(self.id, None)


StreamHandler = Callable[[Stream], Awaitable[None]]


class Session:
    """A SPDY/3.1 session (see the module docstring for what it guarantees)."""

    def __init__(
        self,
        transport: Transport,
        *,
        client: bool,
        on_stream: StreamHandler | None = None,
        window_updates: bool = True,
    ) -> None:
        self.transport, self.client, self.on_stream = transport, client, on_stream
        self.window_updates = window_updates
        self._out, self._reader = HeaderCodec(), FrameReader()
        self._write_lock = asyncio.Lock()
        self._streams: dict[int, Stream] = {}
        self._next_id = 1 if client else 2
        self._last_peer_id = 0
        self._handlers: set[asyncio.Task[None]] = set()
        self._gone_away = False
        self._unacked = 0
        self.closed = asyncio.Event()

    async def run(self) -> None:
        """Read and dispatch frames until the transport ends, GOAWAY, or a protocol error."""
        try:
            while not self._gone_away and not self.closed.is_set():
                data = await self.transport.read()
                if not data:
                    break
                for frame in self._reader.feed(data):
                    await self._dispatch(frame)
        except ProtocolError:
            with contextlib.suppress(Exception):
                await self._send(GoAway(self._last_peer_id, GOAWAY_PROTOCOL_ERROR))
        finally:
            await self.close(goaway=False)

    async def open_stream(self, headers: Header, timeout: float = 30.0) -> Stream:
        """Open a stream and wait for the peer's SYN_REPLY (or raise :class:`StreamReset`)."""
        if self.closed.is_set():
            raise StreamReset("session closed")
        async with self._write_lock:
            stream = Stream(self, self._next_id, headers)
            self._next_id += 2
            self._streams[stream.id] = stream
            await self.transport.write(encode(SynStream(stream.id, headers), self._out))
        await asyncio.wait_for(stream.replied.wait(), timeout)
        if stream.reset_status is not None:
            raise StreamReset(f"stream {stream.id} refused ({stream.reset_status})")
        return stream

    async def close(self, *, goaway: bool = True) -> None:
        """End the session: GOAWAY, reset every stream, close the transport. Idempotent."""
        if self.closed.is_set():
            return
        if goaway:
            with contextlib.suppress(Exception):
                await self._send(GoAway(self._last_peer_id))
        self.closed.set()
        for stream in list(self._streams.values()):
            stream._mark_reset(CANCEL)
        for task in list(self._handlers):
            task.cancel()
        with contextlib.suppress(Exception):
            await self.transport.close()

    async def _send(self, frame: Frame) -> None:
        if self.closed.is_set():
            raise StreamReset("session closed")
        async with self._write_lock:
            await self.transport.write(encode(frame, self._out))

    async def _consumed(self, stream: Stream, n: int) -> None:
        stream._unacked += n
        self._unacked += n
        if self.closed.is_set() or not self.window_updates:
            return
        with contextlib.suppress(ConnectionError, StreamReset):
            if stream._unacked >= UPDATE_AT:
                if stream.reset_status is None and not stream.remote_closed:
                    await self._send(WindowUpdate(stream.id, stream._unacked))
                stream._unacked = 0
            if self._unacked >= UPDATE_AT:
                delta, self._unacked = self._unacked, 0
                await self._send(WindowUpdate(0, delta))

    def _maybe_forget(self, stream: Stream) -> None:
        if stream.local_closed and stream.remote_closed:
            self._streams.pop(stream.id, None)

    async def _dispatch(self, frame: Frame) -> None:
        match frame:
            case Data(sid, data, fin):
                stream = self._streams.get(sid)
                if stream is None or stream.remote_closed:
                    await self._send(RstStream(sid, INVALID_STREAM))
                    return
                stream._deliver(data, fin)
                self._maybe_forget(stream)
                await stream._drained.wait()
            case SynStream(sid, headers, _, _, fin, uni):
                await self._accept(sid, headers, fin, uni)
            case SynReply(sid, headers, fin) | Headers(sid, headers, fin):
                stream = self._streams.get(sid)
                if stream is None:
                    await self._send(RstStream(sid, INVALID_STREAM))
                    return
                stream.headers.update(headers)
                stream.replied.set()
                if fin:
                    stream._deliver(b"", True)
                    self._maybe_forget(stream)
            case RstStream(sid, status):
                stream = self._streams.get(sid)
                if stream is not None:
                    stream._mark_reset(status)
            case Ping(ping_id):
                if (ping_id % 2 == 1) != self.client:  # the peer's ping: echo it
                    await self._send(frame)
            case GoAway():
                self._gone_away = True
            case Settings() | WindowUpdate():
                pass  # see "Flow control" in the module docstring

    async def _accept(self, sid: int, headers: Header, fin: bool, uni: bool) -> None:
        if sid == 0 or (sid % 2 == 1) != (not self.client) or sid <= self._last_peer_id:
            raise ProtocolError(f"bad stream id {sid} in SYN_STREAM")
        self._last_peer_id = sid
        if self.on_stream is None:
            await self._send(RstStream(sid, REFUSED_STREAM))
            return
        stream = Stream(self, sid, headers)
        stream.remote_closed = fin
        stream.local_closed = uni
        stream.replied.set()
        self._streams[sid] = stream
        await self._send(SynReply(sid, {}))
        task = asyncio.create_task(self.on_stream(stream))
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)
