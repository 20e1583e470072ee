"""The session's socket helpers keep trio's contract: data then b"" at EOF, cancellable waits,
a close from another task wakes the reader, and a reader that always finds data still yields."""

from __future__ import annotations

import os
import threading
import time

import pytest
import trio
import trio.testing

from supervisor_sim.supervision import SupervisorConfig
from supervisor_sim.supervision._io import YIELD_EVERY, Spin, receive_some, send_all


async def socket_stream_pair() -> tuple[trio.SocketStream, trio.SocketStream]:
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    async with trio.open_nursery() as nursery:
        accepted: list[trio.SocketStream] = []

        async def accept() -> None:
            accepted.append(await listener.accept())

        nursery.start_soon(accept)
        client = await trio.open_tcp_stream("127.0.0.1", port)
    await listener.aclose()
    return client, accepted[0]


async def test_reads_what_was_sent_then_empty_bytes_at_eof() -> None:
    """Bytes written by the peer arrive whole; a closed peer reads as b""."""
    a, b = await socket_stream_pair()
    await send_all(a, b"hello")
    got = b""
    while len(got) < 5:
        got += await receive_some(b)
    assert got == b"hello"
    await a.aclose()
    assert await receive_some(b) == b""
    await b.aclose()


async def test_a_large_write_that_does_not_fit_is_finished_by_send_all() -> None:
    """A write larger than the socket buffer still arrives complete and in order."""
    a, b = await socket_stream_pair()
    payload = bytes(range(256)) * 40_000  # 10 MB: far more than one non-blocking write takes
    received = bytearray()

    async def reader() -> None:
        while len(received) < len(payload):
            received.extend(await receive_some(b))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await send_all(a, payload)
    assert bytes(received) == payload
    await a.aclose()
    await b.aclose()


async def test_closing_the_socket_elsewhere_wakes_a_waiting_reader() -> None:
    """A reader blocked on an idle socket gets ClosedResourceError when another task closes it."""
    a, b = await socket_stream_pair()
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            errors: list[BaseException] = []

            async def reader() -> None:
                try:
                    await receive_some(b)
                except trio.ClosedResourceError as exc:
                    errors.append(exc)

            nursery.start_soon(reader)
            await trio.testing.wait_all_tasks_blocked()
            await b.aclose()
    assert len(errors) == 1
    with pytest.raises(trio.ClosedResourceError):
        await receive_some(b)
    await a.aclose()


async def test_a_waiting_reader_is_cancellable() -> None:
    """Waiting for data is a checkpoint: a cancel scope ends it."""
    a, b = await socket_stream_pair()
    with trio.move_on_after(0.05) as scope:
        await receive_some(b)
    assert scope.cancelled_caught
    await a.aclose()
    await b.aclose()


async def test_a_reader_that_always_finds_data_still_lets_other_tasks_run() -> None:
    """Immediate reads yield to the scheduler at least every YIELD_EVERY reads."""
    a, b = await socket_stream_pair()
    reads = YIELD_EVERY * 10
    await send_all(a, b"x" * reads)
    await trio.sleep(0.05)  # let every byte reach b's receive buffer
    other_ran = 0
    done = False

    async def other() -> None:
        nonlocal other_ran
        while not done:
            other_ran += 1
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(other)
        await trio.lowlevel.checkpoint()
        before = other_ran
        for _ in range(reads):
            assert await receive_some(b, 1) == b"x"
        after = other_ran
        done = True
    assert after - before >= reads // YIELD_EVERY - 1
    await a.aclose()
    await b.aclose()


async def test_a_spinning_read_returns_data_that_arrives_later() -> None:
    """With a spin budget, data written by the peer shortly after is returned whole."""
    a, b = await socket_stream_pair()

    def write_soon() -> None:
        time.sleep(0.002)
        os.write(a.socket.fileno(), b"late")  # from a thread: no trio call

    thread = threading.Thread(target=write_soon)
    thread.start()
    got = b""
    with trio.fail_after(5):
        while len(got) < 4:
            got += await receive_some(b, spin=1e-3)
    thread.join()
    assert got == b"late"
    await a.aclose()
    await b.aclose()


async def test_a_spinning_read_is_still_cancellable() -> None:
    """Spinning then waiting on an idle socket ends when its cancel scope does."""
    a, b = await socket_stream_pair()
    with trio.move_on_after(0.05) as scope:
        await receive_some(b, spin=1e-3)
    assert scope.cancelled_caught
    await a.aclose()
    await b.aclose()


def test_the_comm_spin_is_bounded_to_a_millisecond() -> None:
    """Nothing else runs while a read spins, so SupervisorConfig refuses a budget over 1 ms."""
    assert SupervisorConfig().comm_spin > 0
    assert SupervisorConfig(comm_spin=0).comm_spin == 0
    with pytest.raises(ValueError, match="comm_spin"):
        SupervisorConfig(comm_spin=0.01)


async def test_only_a_lone_comm_reader_spins(store, monkeypatch) -> None:
    """One session reads its comm channel with the spin budget; two at once read without it."""
    from _session_helpers import SCRIPTED, run_task

    from supervisor_sim.supervision import _session

    spins: list[tuple[int, float]] = []
    real = _session.receive_some

    async def recording(stream, max_bytes=65536, *, spin=None):  # type: ignore[no-untyped-def]
        if spin is None:  # the log/stdout/stderr readers pass no spin budget
            return await real(stream, max_bytes)
        spins.append((_session.Session._comm_readers, spin))
        return await real(stream, max_bytes, spin=spin)

    monkeypatch.setattr(_session, "receive_some", recording)
    steps = [
        {"send": {"type": "GetVariable", "key": "k"}},
        {"sleep": 0.3},
        {"send": {"type": "GetVariable", "key": "k"}},
        {
            "send": {
                "type": "SucceedTask",
                "state": "success",
                "end_date": "$now",
                "task_outlets": [],
                "outlet_events": [],
            }
        },
    ]
    await run_task(store, "hello", runtime=SCRIPTED, steps=steps)
    lone = [s for n, s in spins if n == 1]
    assert lone and all(isinstance(s, Spin) and s.cap == SupervisorConfig().comm_spin for s in lone)
    spins.clear()
    async with trio.open_nursery() as nursery:
        for _ in range(2):
            nursery.start_soon(lambda: run_task(store, "hello", runtime=SCRIPTED, steps=steps))
    assert any(n == 2 for n, _ in spins), "the two sessions' comm readers never overlapped"
    assert all(s == 0.0 for n, s in spins if n > 1)  # a plain number: no spin at all
    assert _session.Session._comm_readers == 0


def test_a_spin_budget_shrinks_for_a_slow_runtime_and_grows_back() -> None:
    """Requests later than the cap halve the budget to its floor; one within it restores it."""
    spin = Spin(200e-6)
    assert spin.limit == 200e-6
    for _ in range(20):
        spin.missed(5e-3)  # a runtime thinking for 5 ms between requests
    assert spin.limit == Spin.FLOOR
    spin.missed(80e-6)  # answering in 80 us again: a spin of 100 us would have caught it
    assert spin.limit == pytest.approx(100e-6)
    spin.missed(190e-6)
    assert spin.limit == 200e-6  # never past the cap
    assert Spin(0.0).limit == 0.0
    zero = Spin(0.0)
    zero.missed(1.0)
    assert zero.limit == 0.0  # comm_spin = 0 never spins


async def test_a_read_that_sleeps_past_its_spin_tells_the_budget() -> None:
    """A request arriving after the spin ran out is read after sleeping and counted as a miss."""
    a, b = await socket_stream_pair()
    spin = Spin(50e-6)

    async def late_writer() -> None:
        await trio.sleep(0.02)  # far past the 50 us cap
        await a.send_all(b"x")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(late_writer)
        await trio.testing.wait_all_tasks_blocked()  # the spin only runs with nothing runnable
        assert await receive_some(b, spin=spin) == b"x"
    assert spin.limit == pytest.approx(25e-6)  # halved: spinning did not pay
    await a.send_all(b"y")  # already there: read at once, the budget untouched
    assert await receive_some(b, spin=spin) == b"y"
    assert spin.limit == pytest.approx(25e-6)
    await a.aclose()
    await b.aclose()


async def test_a_runtime_that_always_answers_within_the_spin_still_lets_timers_fire() -> None:
    """A lock-step peer answering inside every spin does not keep other tasks' sleeps waiting."""
    import socket
    import subprocess
    import sys

    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    # Another process, like a runtime: answers every byte at once, until the socket closes.
    echo = "import os,sys\nfd=int(sys.argv[1])\nwhile os.read(fd,1): os.write(fd,b'r')"
    peer = subprocess.Popen([sys.executable, "-c", echo, str(theirs.fileno())],
                            pass_fds=[theirs.fileno()])  # fmt: skip
    theirs.close()
    stream = trio.SocketStream(trio.socket.from_stdlib_socket(ours))
    await send_all(stream, b"q")  # wait for the peer to be up before timing anything
    assert await receive_some(stream, 1) == b"r"
    fired: list[bool] = []

    async def sleeper() -> None:
        await trio.sleep(0.005)
        fired.append(True)

    spin = Spin(1e-3)  # far longer than the peer takes: every answer is caught by the spin
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sleeper)
        await trio.testing.wait_all_tasks_blocked()
        for _ in range(20000):
            await send_all(stream, b"q")
            assert await receive_some(stream, 1, spin=spin) == b"r"
            if fired:
                break
        nursery.cancel_scope.cancel()
    await stream.aclose()
    peer.wait(5)
    assert fired, "the sleeper never woke while the reader was served"
