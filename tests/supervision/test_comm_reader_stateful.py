"""A hypothesis state machine drives the session's comm reader with random frame sequences.

Whatever mix of valid requests, invalid bodies, broken envelopes, zero-length frames and
garbage arrives, the reader must terminate, raise nothing, and answer every request whose
envelope it could read — in order, with well-formed response frames.
"""

from __future__ import annotations

import trio
import trio.testing
from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule

from supervisor_sim.api import ExecutionAPIClient, RetryPolicy, StubStore, StubTransport, stub_http
from supervisor_sim.protocol import (
    TO_TASK,
    FrameDecoder,
    decode_response,
    encode_request,
    packb,
    validate_body,
)
from supervisor_sim.supervision import Journal, SupervisorConfig, TaskSession, TaskSpec

VALID = [
    {"type": "GetVariable", "key": "peer_var"},
    {"type": "GetVariable", "key": "missing"},
    {"type": "GetConnection", "conn_id": "nope"},
    {"type": "MaskSecret", "value": "hunter2-secret"},
    {"type": "GetXCom", "key": "k", "dag_id": "d", "run_id": "r", "task_id": "t"},
]
INVALID = [
    {"type": "NoSuchThing"},
    {"type": "GetVariable"},
    {"type": "SucceedTask", "end_date": "2026-01-01T00:00:00"},
    {"key": "no type"},
]


def _frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + payload


async def _drive(stream: bytes, chunk: int) -> list:
    store = StubStore(":memory:")
    store.set_variable("peer_var", "v")
    ti = store.prepare_task_instance("d", "t", run_id="r")
    async with stub_http(StubTransport(store)) as http:
        api = ExecutionAPIClient(http, retry=RetryPolicy(attempts=1, timeout=5))
        spec = TaskSpec(
            ti={
                "id": ti.id,
                "dag_id": "d",
                "task_id": "t",
                "run_id": "r",
                "try_number": 1,
                "dag_version_id": ti.dag_version_id,
            },
            runtime=["true"],
        )
        session = TaskSession(
            spec, api, config=SupervisorConfig(max_frame_size=1 << 12), journal=Journal()
        )
        session._open_channels = 1
        ours, theirs = trio.testing.memory_stream_pair()
        replies = bytearray()

        async def write() -> None:
            for i in range(0, len(stream), chunk):
                await theirs.send_all(stream[i : i + chunk])
            await theirs.send_stream.aclose()

        async def read() -> None:
            while data := await theirs.receive_some():
                replies.extend(data)

        with trio.fail_after(20):
            async with trio.open_nursery() as n:
                n.start_soon(write)
                n.start_soon(read)
                await session._comm_reader(ours)
                await ours.send_stream.aclose()
    decoder = FrameDecoder()
    decoder.feed(bytes(replies))
    return [decode_response(f.payload) for f in decoder]


class CommReaderMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.stream = b""
        self.expected: list[int] = []  # ids that must be answered, in order
        self.poisoned = False  # after garbage, framing is unpredictable: stop expecting
        self.next_id = 0

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id

    @rule(body=st.sampled_from(VALID))
    def valid_request(self, body):
        rid = self._id()
        self.stream += encode_request(rid, body)
        if not self.poisoned:
            self.expected.append(rid)

    @rule(body=st.sampled_from(INVALID))
    def invalid_body(self, body):
        rid = self._id()
        self.stream += encode_request(rid, body)
        if not self.poisoned:
            self.expected.append(rid)  # answered with an error, not dropped

    @rule()
    def body_not_a_map(self):
        rid = self._id()
        self.stream += _frame(packb([rid, [1, 2]]))
        if not self.poisoned:
            self.expected.append(rid)

    @rule()
    def not_an_array(self):
        self.stream += _frame(packb({"type": "GetVariable"}))

    @rule()
    def zero_length(self):
        self.stream += b"\x00\x00\x00\x00"

    @rule(data=st.binary(min_size=1, max_size=64))
    def garbage(self, data):
        self.stream += data
        self.poisoned = True

    @precondition(lambda self: len(self.stream) < 20_000)
    @rule(n=st.integers(min_value=5000, max_value=2**32 - 1))
    def oversized_header(self, n):
        self.stream += n.to_bytes(4, "big")
        self.poisoned = True

    def teardown(self):
        for chunk in (1, 7, 4096):
            replies = trio.run(_drive, self.stream, chunk)
            for reply in replies:
                assert reply.elements == 3
                if reply.body is not None:
                    assert validate_body(reply.body, TO_TASK) == [], reply.body
                if reply.error is not None:
                    assert reply.error["type"] == "ErrorResponse"
            ids = [r.id for r in replies]
            assert ids[: len(self.expected)] == self.expected


CommReaderMachine.TestCase.settings = settings(
    max_examples=25, stateful_step_count=12, deadline=None
)
TestCommReader = CommReaderMachine.TestCase
