"""What a Ray node sends back on its stream (``NodeSandbox.events``), without Ray: the node's trusted code must
carry whatever its pool returned to the driver, so that the driver judges what a local pool would have judged."""

from __future__ import annotations

import pickle
from dataclasses import replace

import pytest

from ra3bench.sandbox.base import CallResult, CallStatus, Job, JobResult
from ra3bench.sandbox.claims import MalformedClaim, decode_claim
from ra3bench.sandbox.ray_node import NodeEvents, NodeSandbox
from ra3bench.sandbox.ray_pool import _with_streamed

JOB = Job(program="", entry_point="f", calls=[[0], [1]], time_limits_s=[1.0, 1.0])


class Streaming:
    """A pool whose job streams ``streamed`` (as the pool calls a job's ``answer_fails``), then returns ``final``."""

    def __init__(self, streamed: list[CallResult], final: list[CallResult]) -> None:
        self.streamed, self.final = streamed, final

    def run(self, job: Job) -> JobResult:
        for i, call in enumerate(self.streamed):
            job.answer_fails(i, call)
        return JobResult(load=CallResult(CallStatus.OK), calls=list(self.final))


def sent(streamed: list[CallResult], final: list[CallResult]) -> tuple[NodeEvents, JobResult]:
    """What the driver reads from the node's stream for one watched job, and the result it hands on."""
    node = NodeSandbox.__new__(NodeSandbox)
    node._open_stream()
    node.sandbox = Streaming(streamed, final)
    node._run(7, replace(JOB, answer_fails=node._watch(7)))
    with node._ready:
        node._closed = True
    events = NodeEvents()
    for item in node.events():
        part = pickle.loads(item)
        events.answers += part.answers
        events.done += part.done
    ((key, result),) = events.done
    answers = {i: call for k, i, call in events.answers if k == key}
    return events, _with_streamed(result, answers)


def test_an_answer_streamed_and_final_alike_crosses_once_and_is_put_back():
    calls = [CallResult(CallStatus.OK, [1, 2], 0.1), CallResult(CallStatus.OK, "x", 0.2)]
    events, result = sent(calls, calls)
    assert events.done[0][1].calls == [None, None]  # not sent twice
    assert result.calls == calls


def test_a_final_answer_unlike_the_streamed_one_counts_even_when_it_compares_equal():
    """1 == True in Python, not to the judge: the final answer is the one a local pool judges."""
    streamed = [CallResult(CallStatus.OK, 1, 0.1), CallResult(CallStatus.OK, 0.0, 0.1)]
    final = [CallResult(CallStatus.OK, True, 0.1), CallResult(CallStatus.OK, -0.0, 0.1)]
    _, result = sent(streamed, final)
    assert type(result.calls[0].value) is bool and str(result.calls[1].value) == "-0.0"


@pytest.mark.parametrize("depth", [900, 990])
def test_a_value_too_deep_to_pickle_does_not_end_the_stream_and_is_refused_as_before(depth):
    """JSON parses values nested deeper than pickle writes them. Only a sandbox server that went around its own
    bound sends one; the node must not lose its stream over it (the driver would take the node for dead, and
    a program could empty the cluster), and the judge must refuse the value for the same reason as locally."""
    deep: list = []
    for _ in range(depth):
        deep = [deep]
    with pytest.raises(RecursionError):
        pickle.dumps(deep)
    call = CallResult(CallStatus.OK, deep, 0.1)
    events, result = sent([call], [call, CallResult(CallStatus.OK, 1, 0.1)])
    with pytest.raises(MalformedClaim) as here:
        decode_claim(result.calls[0].value)
    with pytest.raises(MalformedClaim) as locally:
        decode_claim(deep)
    assert str(here.value) == str(locally.value)
    assert result.calls[1].value == 1
    assert [(k, i) for k, i, _ in events.answers] == [(7, 0)]  # the streamed answer crossed too (the stop check)


def test_events_cross_in_their_compact_form_unchanged_to_the_type():
    """Calls cross as tuples (``NodeEvents.__getstate__``): every status, a None call, values that compare equal
    across types, an error text and a script must come out as they went in."""
    calls = [CallResult(status, value, 0.25, f"e{n}") for n, status in enumerate(CallStatus) for value in (1, True)]
    calls += [CallResult(CallStatus.OK, {"a": [1.0, -0.0, None, "x"]}, 0), None]
    result = JobResult(
        load=CallResult(CallStatus.OK, None, 0.5),
        calls=calls,
        script=CallResult(CallStatus.ERROR, error="boom"),
        output="out",
        wall_s=1.5,
        sandbox_error="",
        malformed="why",
    )
    events = NodeEvents(
        answers=[(3, i, c) for i, c in enumerate(calls) if c is not None],
        done=[(3, result)],
        errors=[(4, ValueError("bad job"))],
    )
    back = pickle.loads(pickle.dumps(events))
    assert pickle.dumps(back.done[0][1]) == pickle.dumps(result)  # to the type: True stays bool, -0.0 stays -0.0
    assert [(k, i, pickle.dumps(c)) for k, i, c in back.answers] == [
        (k, i, pickle.dumps(c)) for k, i, c in events.answers
    ]
    assert all(type(c.status) is CallStatus for _, _, c in back.answers)
    assert isinstance(back.errors[0][1], ValueError) and str(back.errors[0][1]) == "bad job"
