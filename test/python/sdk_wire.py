"""
The official Python SDK (`qstash` on PyPI) against a running Boomerang: the calls it sends differently from the
JS SDK (ids in JSON bodies, "cancel all" with no body) and the shapes it parses strictly.

Run one case: `python test/python/sdk_wire.py <case>`; `python test/python/sdk_wire.py --list` names them.
Environment: QSTASH_URL (the server), QSTASH_TOKEN and QSTASH_TOKEN_2 (two tenants of the dev server),
DEST_URL (a test destination, see test/support/destination.ts). Exit status 0 means the case passed.
"""

import json
import os
import sys
import time
import uuid

from qstash import QStash
from qstash.errors import QStashError

# Set by connect() from the environment before a case runs.
DEST = ""
client = None
client2 = None  # a second tenant, for the cases that act on everything a tenant has


def connect():
    global DEST, client, client2
    url = os.environ["QSTASH_URL"]
    DEST = os.environ["DEST_URL"].rstrip("/")
    client = QStash(os.environ["QSTASH_TOKEN"], base_url=url, retry=False)
    client2 = QStash(os.environ["QSTASH_TOKEN_2"], base_url=url, retry=False)


def key(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def pending(c, mid):
    """True while the message can still be read (it is not delivered, failed or cancelled)."""
    try:
        c.message.get(mid)
        return True
    except QStashError:
        return False


def publish_delayed(c, n, **kw):
    return [c.message.publish(url=f"{DEST}/py/ok", body="x", delay="1h", **kw).message_id for _ in range(n)]


def eventually(what, probe, timeout=15.0):
    deadline = time.time() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def fail_into_dlq(c, n, label):
    """Publishes n messages that fail at once and returns their DLQ ids, oldest first."""
    ids = [
        c.message.publish(url=f"{DEST}/{label}/status/500", body="x", retries=0, label=label).message_id
        for _ in range(n)
    ]

    def entries():
        page = c.dlq.list(filter={"label": label})
        return page.messages if len(page.messages) == n else None

    found = eventually(f"{n} DLQ entries", entries)
    by_message = {m.message_id: m.dlq_id for m in found}
    return [by_message[i] for i in ids]


def case_cancel_many():
    a, b, c = publish_delayed(client, 3)
    assert client.message.cancel_many([a, b]) == 2
    assert not pending(client, a) and not pending(client, b)
    assert pending(client, c), "a message that was not named was cancelled"
    client.message.cancel(c)


def case_cancel_all():
    ids = publish_delayed(client2, 3)
    mine = publish_delayed(client, 1)
    assert client2.message.cancel_all() == 3
    assert not any(pending(client2, i) for i in ids)
    assert pending(client, mine[0]), "cancel_all reached another tenant"
    client.message.cancel(mine[0])


def case_dlq_delete_many():
    label = key("pydel")
    a, b, c = fail_into_dlq(client, 3, label)
    assert client.dlq.delete_many([a, b]) == 2
    left = [m.dlq_id for m in client.dlq.list(filter={"label": label}).messages]
    assert left == [c], f"left {left}, expected only {c}"
    client.dlq.delete(c)


def case_dlq_retry_many():
    # qstash 3.4.0 has no DLQ retry method; the bulk retry goes through the client's own transport with the
    # body form its other bulk calls use.
    label = key("pyretry")
    a, b, c = fail_into_dlq(client, 3, label)
    res = client.http.request(
        path="/v2/dlq/retry",
        method="POST",
        headers={"Content-Type": "application/json", "Upstash-Delay": "1h"},
        body=json.dumps({"dlqIds": [a, c]}),
    )
    new_ids = [r["messageId"] for r in res["responses"]]
    assert len(new_ids) == 2, res
    assert all(pending(client, i) for i in new_ids)
    left = [m.dlq_id for m in client.dlq.list(filter={"label": label}).messages]
    assert left == [b], f"left {left}, expected only {b}"
    client.message.cancel_many(new_ids)
    client.dlq.delete(b)


def case_url_group_delete_missing():
    name = key("py-group")
    client.url_group.delete(name)  # never created: succeeds, as in the SDK's own tests
    client.url_group.upsert_endpoints(
        url_group=name, endpoints=[{"url": f"{DEST}/g/200"}, {"url": f"{DEST}/g/201", "name": "second"}]
    )
    group = client.url_group.get(name)
    assert sorted(e.url for e in group.endpoints) == [f"{DEST}/g/200", f"{DEST}/g/201"]
    client.url_group.remove_endpoints(url_group=name, endpoints=[{"name": "second"}])
    assert [e.url for e in client.url_group.get(name).endpoints] == [f"{DEST}/g/200"]
    client.url_group.delete(name)
    client.url_group.delete(name)  # twice: still fine
    assert name not in [g.name for g in client.url_group.list()]


def case_flow_control_schedule():
    fk = key("py-fc")
    sid = client.schedule.create_json(
        cron="1 1 1 1 1", destination=f"{DEST}/py/ok", body={"k": "v"}, flow_control={"key": fk, "parallelism": 2}
    )
    try:
        fc = client.schedule.get(sid).flow_control
        assert fc is not None and fc.key == fk
        assert fc.parallelism == 2 and fc.rate is None and fc.period == 1, fc
    finally:
        client.schedule.delete(sid)
    client.schedule.delete(sid)  # already gone: still fine


def case_flow_control_message():
    fk = key("py-fc")
    [only_parallelism] = publish_delayed(client, 1, flow_control={"key": fk, "parallelism": 5})
    [rate_period] = publish_delayed(client, 1, flow_control={"key": fk, "rate": 23, "period": "1h30m3s"})
    [with_int] = publish_delayed(client, 1, flow_control={"key": fk, "parallelism": 3, "rate": 4, "period": 2})
    fc = client.message.get(only_parallelism).flow_control
    assert (fc.key, fc.parallelism, fc.rate, fc.period) == (fk, 5, None, 1), fc
    fc = client.message.get(rate_period).flow_control
    assert (fc.parallelism, fc.rate, fc.period) == (None, 23, 5403), fc
    fc = client.message.get(with_int).flow_control
    assert (fc.parallelism, fc.rate, fc.period) == (3, 4, 2), fc
    client.message.cancel_many([only_parallelism, rate_period, with_int])


CASES = {name[len("case_"):]: fn for name, fn in globals().items() if name.startswith("case_")}

if __name__ == "__main__":
    if sys.argv[1:] == ["--list"]:
        print("\n".join(CASES))
        sys.exit(0)
    if len(sys.argv) != 2 or sys.argv[1] not in CASES:
        print(f"usage: sdk_wire.py <case> (one of {', '.join(CASES)}) or --list", file=sys.stderr)
        sys.exit(2)
    connect()
    CASES[sys.argv[1]]()
    print(f"{sys.argv[1]}: passed")
