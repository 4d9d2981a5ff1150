from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.web.hierarchy import Hierarchy


@pytest.fixture(scope="module")
def hierarchy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hierarchy]:
    with Hierarchy(tmp_path_factory.mktemp("web-hierarchy")) as h:
        yield h


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of one real HTTP GET; error statuses are returned, not raised."""
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def get_json(url: str) -> tuple[int, Any]:
    status, _, body = get(url)
    return status, json.loads(body)


def until(check: Callable[[], Any], what: str, deadline: float = 30.0) -> Any:
    """Ask ``check`` again until it returns something true; fail naming ``what`` after the deadline.

    A condition waited for, not a sleep: it returns as soon as the condition holds.
    """
    end = time.monotonic() + deadline
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"{what}: not within {deadline} s (last: {value!r})")
        time.sleep(0.1)


def metric(url: str, name: str, **labels: str) -> float:
    _, _, body = get(url + "/metrics")
    total = 0.0
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total
