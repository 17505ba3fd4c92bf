"""Following a ConfigMap against the API stand-in (tests/kube_standin.py): list then watch,
bookmarks, a dropped connection and 410 Gone both recovered from, the next change delivered."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from routing_config.store.configmap_watch import ConfigMapWatch, Seen
from routing_config.store.kube_api import KubeConnection
from routing_config.store.location import ConfigMapRef
from tests.kube_standin import KubeStandIn

REF = ConfigMapRef("streamflow", "streamflow-routing")
STEP_S = 5.0  # each awaited change; a healthy run takes milliseconds


@pytest.fixture
def standin() -> Iterator[KubeStandIn]:
    with KubeStandIn(REF.namespace, REF.name, "first: 1\n") as server:
        server.bookmark_every_s = 0.05
        yield server


@pytest.fixture
async def follow(standin: KubeStandIn) -> AsyncIterator[tuple[ConfigMapWatch, asyncio.Queue[Seen]]]:
    statuses: list[str] = []
    watch = ConfigMapWatch(
        REF,
        lambda: KubeConnection(standin.url, None, None),
        backoff_s=0.05,
        backoff_max_s=0.2,
        on_status=statuses.append,
    )
    seen: asyncio.Queue[Seen] = asyncio.Queue()

    async def run() -> None:
        async for item in watch.follow():
            await seen.put(item)

    task = asyncio.create_task(run())
    yield watch, seen
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def next_text(seen: asyncio.Queue[Seen]) -> Seen:
    return await asyncio.wait_for(seen.get(), STEP_S)


async def streaming(standin: KubeStandIn) -> None:
    """Until the watch's stream is open (its first bookmark sent): a break or a compaction
    before then would meet no watch, and a loaded machine can take that long to connect."""
    deadline = asyncio.get_running_loop().time() + STEP_S
    while standin.counts["bookmark"] < 1:
        assert asyncio.get_running_loop().time() < deadline, "the watch never opened"
        await asyncio.sleep(0.01)


async def test_lists_then_delivers_each_change(
    standin: KubeStandIn, follow: tuple[ConfigMapWatch, asyncio.Queue[Seen]]
) -> None:
    watch, seen = follow
    first = await next_text(seen)
    assert first.text == "first: 1\n" and first.version == standin.resource_version
    for n in range(2, 5):
        version = await asyncio.to_thread(standin.put_text, f"n: {n}\n")
        item = await next_text(seen)
        assert (item.text, item.version) == (f"n: {n}\n", version)
    assert standin.counts["list"] == 1 and standin.counts["watch"] == 1


async def test_bookmarks_move_the_version_on_without_a_change(
    standin: KubeStandIn, follow: tuple[ConfigMapWatch, asyncio.Queue[Seen]]
) -> None:
    watch, seen = follow
    await next_text(seen)
    await streaming(standin)
    await asyncio.to_thread(standin.compact)  # bumps the version with no event
    deadline = asyncio.get_running_loop().time() + STEP_S
    while watch.version != standin.resource_version:
        assert asyncio.get_running_loop().time() < deadline, "no bookmark arrived"
        await asyncio.sleep(0.02)
    assert seen.empty()  # a bookmark is no change of the document
    # Watching from the bookmark's version is not too old: no 410, no second list.
    await asyncio.to_thread(standin.break_watches)
    await asyncio.to_thread(standin.put_text, "after: compaction\n")
    assert (await next_text(seen)).text == "after: compaction\n"
    assert standin.counts["gone"] == 0 and standin.counts["list"] == 1


async def test_a_dropped_connection_is_watched_again_from_the_version_seen(
    standin: KubeStandIn, follow: tuple[ConfigMapWatch, asyncio.Queue[Seen]]
) -> None:
    watch, seen = follow
    await next_text(seen)
    await streaming(standin)
    standin.bookmark_every_s = 60  # no bookmark: the change below is only in the history
    await asyncio.to_thread(standin.break_watches)
    await asyncio.to_thread(standin.put_text, "while: away\n")
    item = await next_text(seen)
    assert item.text == "while: away\n"
    assert standin.counts["list"] == 1  # picked up from the history, not by listing again
    assert standin.counts["watch"] >= 2


@pytest.mark.parametrize("as_http", [False, True], ids=["error-event", "http-410"])
async def test_410_gone_lists_again_and_the_next_change_arrives(
    standin: KubeStandIn, follow: tuple[ConfigMapWatch, asyncio.Queue[Seen]], as_http: bool
) -> None:
    watch, seen = follow
    await next_text(seen)
    await streaming(standin)
    standin.bookmark_every_s = 60  # the watch's version stays old
    standin.gone_as_http = as_http
    await asyncio.sleep(0.1)  # the first bookmark interval has passed
    await asyncio.to_thread(standin.put_text, "missed: 1\n")
    assert (await next_text(seen)).text == "missed: 1\n"
    await asyncio.to_thread(standin.break_watches)
    await asyncio.to_thread(standin.put_text, "lost: 2\n")  # in no history the watch can read
    await asyncio.to_thread(standin.compact)
    item = await next_text(seen)  # from the re-list
    assert item.text == "lost: 2\n"
    assert standin.counts["gone"] >= 1 and standin.counts["list"] == 2
    await asyncio.to_thread(standin.put_text, "next: 3\n")
    assert (await next_text(seen)).text == "next: 3\n"


async def test_a_missing_key_or_a_deleted_configmap_is_reported_not_dropped(
    standin: KubeStandIn, follow: tuple[ConfigMapWatch, asyncio.Queue[Seen]]
) -> None:
    watch, seen = follow
    await next_text(seen)
    await asyncio.to_thread(standin.delete)
    item = await next_text(seen)
    assert item.text is None and item.problem == "the ConfigMap was deleted"
    await asyncio.to_thread(standin.put_text, "back: 1\n")
    assert (await next_text(seen)).text == "back: 1\n"


async def test_an_unreachable_api_is_retried_with_back_off() -> None:
    server = KubeStandIn(REF.namespace, REF.name, "late: 1\n")
    url = server.url
    server.stop()  # nothing listens there any more: every connection is refused
    statuses: list[str] = []
    watch = ConfigMapWatch(
        REF,
        lambda: KubeConnection(url, None, None),
        backoff_s=0.02,
        backoff_max_s=0.05,
        on_status=statuses.append,
    )
    items = watch.follow()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(anext(items), 0.5)
    assert sum(s.startswith("backing off") for s in statuses) >= 3
    await items.aclose()
