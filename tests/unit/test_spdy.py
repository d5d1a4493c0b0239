"""SPDY/3.1 framing, header blocks and sessions (machinery/spdy.py)."""

from __future__ import annotations

import asyncio
import hashlib
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from machinery import spdy

# -- frames and header blocks -------------------------------------------------------------------

ids = st.integers(1, 2**31 - 1)
names = st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12)
header_maps = st.dictionaries(names, st.text(max_size=20), max_size=5)
frames = st.one_of(
    st.builds(
        spdy.SynStream,
        ids,
        header_maps,
        st.integers(0, 2**31 - 1),
        st.integers(0, 7),
        st.booleans(),
        st.booleans(),
    ),
    st.builds(spdy.SynReply, ids, header_maps, st.booleans()),
    st.builds(spdy.Headers, ids, header_maps, st.booleans()),
    st.builds(spdy.RstStream, ids, st.integers(0, 2**32 - 1)),
    st.builds(
        spdy.Settings,
        st.lists(
            st.tuples(st.integers(0, 255), st.integers(0, 2**24 - 1), st.integers(0, 2**32 - 1)),
            max_size=4,
        ).map(tuple),
        st.booleans(),
    ),
    st.builds(spdy.Ping, st.integers(0, 2**32 - 1)),
    st.builds(spdy.GoAway, st.integers(0, 2**31 - 1), st.integers(0, 2**32 - 1)),
    st.builds(spdy.WindowUpdate, st.integers(0, 2**31 - 1), st.integers(1, 2**31 - 1)),
    st.builds(spdy.Data, ids, st.binary(max_size=300), st.booleans()),
)


def test_dictionary_is_the_specs() -> None:
    assert len(spdy.DICTIONARY) == 1423
    digest = "51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02"
    assert hashlib.sha256(spdy.DICTIONARY).hexdigest() == digest


@pytest.mark.parametrize(
    ("frame", "wire"),
    [
        (spdy.Ping(1), "8003 0006 00000004 00000001"),
        (spdy.Data(3, b"hi", fin=True), "00000003 01000002 6869"),
        (spdy.RstStream(5, spdy.CANCEL), "8003 0003 00000008 00000005 00000005"),
        (spdy.WindowUpdate(0, 65536), "8003 0009 00000008 00000000 00010000"),
        (spdy.GoAway(7), "8003 0007 00000008 00000007 00000000"),
    ],
    ids=["ping", "data-fin", "rst-cancel", "window-update-session", "goaway-ok"],
)
def test_wire_format(frame: spdy.Frame, wire: str) -> None:
    assert spdy.encode(frame, spdy.HeaderCodec()).hex() == wire.replace(" ", "")


def test_syn_stream_header_block_is_zlib_with_the_dictionary() -> None:
    raw = spdy.encode(spdy.SynStream(1, {"StreamType": "error", "port": "80"}), spdy.HeaderCodec())
    assert raw[:4] == bytes.fromhex("80030001") and raw[4] == 0  # no flags
    block = zlib.decompressobj(zdict=spdy.DICTIONARY).decompress(raw[18:])
    assert block == (
        b"\x00\x00\x00\x02"
        b"\x00\x00\x00\x0astreamtype\x00\x00\x00\x05error"
        b"\x00\x00\x00\x04port\x00\x00\x00\x0280"
    )


def test_header_compression_state_carries_across_frames() -> None:
    out, reader = spdy.HeaderCodec(), spdy.FrameReader()
    first = spdy.encode(spdy.SynStream(1, {"streamtype": "error", "requestid": "0"}), out)
    second = spdy.encode(spdy.SynStream(3, {"streamtype": "data", "requestid": "0"}), out)
    assert len(second) < len(first)  # the shared zlib stream already knows the names
    got = reader.feed(first + second)
    assert [f.headers for f in got] == [  # type: ignore[union-attr]
        {"streamtype": "error", "requestid": "0"},
        {"streamtype": "data", "requestid": "0"},
    ]
    with pytest.raises(spdy.ProtocolError):  # the second block alone cannot be decoded
        spdy.FrameReader().feed(second)


@given(st.lists(frames, max_size=8), st.integers(1, 64))
@settings(max_examples=200, deadline=None)
def test_round_trip_in_chunks_of_any_size(sent: list[spdy.Frame], chunk: int) -> None:
    out = spdy.HeaderCodec()
    wire = b"".join(spdy.encode(f, out) for f in sent)
    reader = spdy.FrameReader()
    got: list[spdy.Frame] = []
    for i in range(0, len(wire), chunk):
        got += reader.feed(wire[i : i + chunk])
    assert got == sent


@given(st.binary(max_size=400))
@settings(max_examples=500, deadline=None)
def test_decoder_fails_only_with_protocol_error(data: bytes) -> None:
    reader = spdy.FrameReader()
    try:
        reader.feed(data)
    except spdy.ProtocolError:
        pass


@given(st.lists(frames, min_size=1, max_size=4), st.data())
@settings(max_examples=200, deadline=None)
def test_corrupted_frames_fail_only_with_protocol_error(
    sent: list[spdy.Frame], data: st.DataObject
) -> None:
    out = spdy.HeaderCodec()
    wire = bytearray(b"".join(spdy.encode(f, out) for f in sent))
    for _ in range(data.draw(st.integers(1, 4))):
        wire[data.draw(st.integers(0, len(wire) - 1))] = data.draw(st.integers(0, 255))
    try:
        spdy.FrameReader().feed(bytes(wire))
    except spdy.ProtocolError:
        pass


def test_unknown_control_frames_are_skipped() -> None:
    unknown = bytes.fromhex("8003 00ff 00000002 abcd".replace(" ", ""))
    ping = spdy.encode(spdy.Ping(2), spdy.HeaderCodec())
    assert spdy.FrameReader().feed(unknown + ping) == [spdy.Ping(2)]


@pytest.mark.parametrize(
    "wire",
    [
        "8002 0006 00000004 00000001",
        "8003 0006 00000003 000000",
        "8003 0004 00000008 0000000200000000",
    ],
    ids=["spdy2", "short-ping", "settings-count-mismatch"],
)
def test_malformed_control_frames(wire: str) -> None:
    with pytest.raises(spdy.ProtocolError):
        spdy.FrameReader().feed(bytes.fromhex(wire.replace(" ", "")))


# -- sessions -----------------------------------------------------------------------------------


class Pipe:
    """One end of an in-memory byte pipe; records the frames it carried."""

    def __init__(self, inbox: asyncio.Queue[bytes], outbox: asyncio.Queue[bytes]) -> None:
        self.inbox, self.outbox = inbox, outbox
        self.sent = spdy.FrameReader()
        self.frames: list[spdy.Frame] = []

    async def read(self) -> bytes:
        return await self.inbox.get()

    async def write(self, data: bytes) -> None:
        self.frames += self.sent.feed(data)
        await self.outbox.put(data)

    async def close(self) -> None:
        await self.outbox.put(b"")


def pipes() -> tuple[Pipe, Pipe]:
    a: asyncio.Queue[bytes] = asyncio.Queue()
    b: asyncio.Queue[bytes] = asyncio.Queue()
    return Pipe(a, b), Pipe(b, a)


async def test_streams_carry_bytes_both_ways_with_half_close() -> None:
    client_end, server_end = pipes()
    accepted: asyncio.Queue[spdy.Stream] = asyncio.Queue()

    async def on_stream(stream: spdy.Stream) -> None:
        await accepted.put(stream)

    client = spdy.Session(client_end, client=True)
    server = spdy.Session(server_end, client=False, on_stream=on_stream)
    tasks = [asyncio.create_task(client.run()), asyncio.create_task(server.run())]

    stream = await client.open_stream({"streamtype": "data", "port": "80", "requestID": "0"})
    remote = await asyncio.wait_for(accepted.get(), 5)
    assert remote.headers == {"streamtype": "data", "port": "80", "requestid": "0"}
    assert (stream.id, remote.id) == (1, 1)

    await stream.write(b"x" * 100_000)  # more than one 64 KiB window
    received = b""
    while len(received) < 100_000:
        received += await remote.read()
    assert received == b"x" * 100_000
    await stream.close()
    assert await remote.read() == b""
    await remote.write(b"pong")
    await remote.close()
    assert await stream.read() == b"pong"
    assert await stream.read() == b""

    # consumed bytes are given back in batches of half a window, per stream and for the session,
    # so a peer honouring the 64 KiB window always has at least half of it
    updates = [f for f in server_end.frames if isinstance(f, spdy.WindowUpdate)]
    for sid in (1, 0):
        deltas = [u.delta for u in updates if u.stream_id == sid]
        assert all(d >= spdy.UPDATE_AT for d in deltas)
        assert 100_000 - spdy.UPDATE_AT < sum(deltas) <= 100_000
    assert isinstance(server_end.frames[0], spdy.SynReply)

    await client.close()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert server.closed.is_set()


async def test_reset_stream_ends_reads_and_refuses_writes() -> None:
    client_end, server_end = pipes()
    accepted: asyncio.Queue[spdy.Stream] = asyncio.Queue()
    client = spdy.Session(client_end, client=True)
    server = spdy.Session(server_end, client=False, on_stream=accepted.put)
    tasks = [asyncio.create_task(client.run()), asyncio.create_task(server.run())]
    stream = await client.open_stream({"streamtype": "data"})
    remote = await asyncio.wait_for(accepted.get(), 5)
    await stream.reset()
    assert await remote.read() == b""
    assert remote.reset_status == spdy.CANCEL
    with pytest.raises(spdy.StreamReset):
        await remote.write(b"late")
    await server.close()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert client.closed.is_set()


async def test_peer_pings_are_echoed_and_streams_refused_without_handler() -> None:
    _, server_end = pipes()
    server = spdy.Session(server_end, client=False)  # no on_stream: every stream is refused
    task = asyncio.create_task(server.run())
    out = spdy.HeaderCodec()
    await server_end.inbox.put(spdy.encode(spdy.Ping(1), out))
    await server_end.inbox.put(spdy.encode(spdy.SynStream(1, {"a": "b"}), out))
    await server_end.inbox.put(b"")
    await asyncio.wait_for(task, 5)
    assert server_end.frames[:2] == [spdy.Ping(1), spdy.RstStream(1, spdy.REFUSED_STREAM)]


async def test_a_protocol_error_ends_the_session_with_goaway() -> None:
    _, server_end = pipes()
    server = spdy.Session(server_end, client=False, on_stream=lambda s: asyncio.sleep(0))
    task = asyncio.create_task(server.run())
    # an even stream id from a client is a protocol error
    await server_end.inbox.put(spdy.encode(spdy.SynStream(2, {}), spdy.HeaderCodec()))
    await asyncio.wait_for(task, 5)
    assert server_end.frames == [spdy.GoAway(0, spdy.GOAWAY_PROTOCOL_ERROR)]
    assert server.closed.is_set()
