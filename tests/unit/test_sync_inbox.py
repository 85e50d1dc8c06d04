"""Acknowledgements of commands: in arrival order, each only once its command is done."""

from __future__ import annotations

import queue
from collections.abc import Callable

import paho.mqtt.client as mqtt

from lineside.agent.sync.commands_in import CommandParser
from lineside.agent.sync.inbox import BUSY, Answer, Inbox, InOrderAcks, Returned
from lineside.agent.sync.payloads import Topics
from tests.conftest import StepClock

TOPICS = Topics("lineside/v1", "plant-a", "press-3")


def test_acks_go_out_in_the_order_the_messages_arrived() -> None:
    sent: list[int] = []
    acks = InOrderAcks(lambda mid, qos: sent.append(mid))
    first, second, third = (acks.received(mid, 1) for mid in (7, 3, 9))
    third.finish()
    second.finish()
    assert sent == []  # the first is still being applied: nothing may overtake it
    first.finish()
    assert sent == [7, 3, 9]
    assert acks.waiting == 0


def test_qos_0_is_never_acked_and_a_closed_connection_acks_nothing() -> None:
    sent: list[int] = []
    acks = InOrderAcks(lambda mid, qos: sent.append(mid))
    acks.received(0, 0).finish()
    late = acks.received(4, 1)
    acks.close()
    late.finish()
    assert sent == []


def message(topic: str, payload: bytes, *, retain: bool = False, mid: int = 1) -> mqtt.MQTTMessage:
    msg = mqtt.MQTTMessage(mid=mid, topic=topic.encode())
    msg.payload, msg.qos, msg.retain = payload, 1, retain
    return msg


class _Ledger:
    def execute(self, command: object) -> object:
        raise AssertionError("not called")

    def stock_snapshot(self) -> list[dict[str, object]]:
        return []


def inbox(
    submit: Callable[[Callable[[], None]], bool],
) -> tuple[Inbox, queue.SimpleQueue[Returned]]:
    returned: queue.SimpleQueue[Returned] = queue.SimpleQueue()
    box = Inbox(TOPICS, _Ledger(), CommandParser(StepClock()), submit, returned)
    return box, returned


def test_a_busy_gateway_answers_and_acks_once_the_reply_is_taken() -> None:
    box, returned = inbox(lambda task: False)
    sent: list[int] = []
    box.acks = InOrderAcks(lambda mid, qos: sent.append(mid))
    box.on_message(message(TOPICS.cmd("receipt"), b'{"request_id": "b1"}', mid=5))
    answer = returned.get_nowait()
    assert isinstance(answer, Answer) and answer.reply is not None
    assert BUSY.encode() in answer.reply.payload
    box.answered(answer, lambda reply: 42)
    assert sent == []
    box.reply_acked(42)
    assert sent == [5]


def test_a_retained_command_is_ignored_and_acked() -> None:
    tasks: list[object] = []
    box, returned = inbox(lambda task: tasks.append(task) is None)
    sent: list[int] = []
    box.acks = InOrderAcks(lambda mid, qos: sent.append(mid))
    box.on_message(message(TOPICS.cmd("receipt"), b'{"request_id": "x"}', retain=True, mid=8))
    assert tasks == [] and sent == [8] and returned.empty()
    assert box.received == 0
