"""Series to counts: what an error, a request and a bin are, the same for every source."""

from __future__ import annotations

import httpx
import pytest

from rollout.counts import LATENCY_BOUNDS, Snapshot, VersionCounts
from rollout.counts_json import snapshot_from_json, snapshot_to_json
from rollout.sources.base import NotYet, Sample, SourceError
from rollout.sources.prometheus import QUERIES, SCRAPED, SETTLED, PrometheusSource
from rollout.sources.reduce import snapshot_from_samples
from rollout.sources.scrape import ScrapeSource, parse_exposition

GATEWAY_METRICS = """\
# TYPE gateway_requests_total counter
gateway_requests_total{version="v1",reason="weighted",status="200"} 90.0
gateway_requests_total{version="v1",reason="weighted",status="503"} 2.0
gateway_requests_total{version="v1",reason="fallback",status="200"} 7.0
gateway_requests_total{version="v2",reason="weighted",status="200"} 10.0
gateway_requests_total{version="v2",reason="weighted",status="422"} 1.0
gateway_requests_total{version="v2",reason="weighted",status="502"} 1.0
# TYPE gateway_fallbacks_total counter
gateway_fallbacks_total{from_version="v2",to_version="v1",cause="status_500"} 7.0
# TYPE gateway_upstream_errors_total counter
gateway_upstream_errors_total{version="v2",replica="http://b:8000",cause="status_500"} 8.0
# TYPE gateway_request_duration_seconds histogram
gateway_request_duration_seconds_bucket{version="v2",le="0.001"} 0.0
gateway_request_duration_seconds_bucket{version="v2",le="0.005"} 10.0
gateway_request_duration_seconds_bucket{version="v2",le="+Inf"} 12.0
gateway_request_duration_seconds_sum{version="v2"} 0.1
gateway_request_duration_seconds_count{version="v2"} 12.0
"""

REPLICA_METRICS = """\
# TYPE model_churn_probability histogram
model_churn_probability_bucket{version="v2",shadow="false",le="0.1"} 3.0
model_churn_probability_bucket{version="v2",shadow="false",le="0.2"} 5.0
model_churn_probability_bucket{version="v2",shadow="false",le="1.0"} 11.0
model_churn_probability_bucket{version="v2",shadow="false",le="+Inf"} 11.0
model_churn_probability_bucket{version="v2",shadow="true",le="0.1"} 50.0
model_churn_probability_bucket{version="v2",shadow="true",le="+Inf"} 50.0
model_churn_probability_count{version="v2",shadow="false"} 11.0
model_churn_probability_sum{version="v2",shadow="false"} 3.0
"""


def check_counts(snapshot: Snapshot) -> None:
    v1, v2 = snapshot.of("v1"), snapshot.of("v2")
    # Stable's own requests: the fallback answers were v2's requests.
    assert (v1.requests, v1.errors) == (92, 2)
    # v2: 12 answered (a 422 is not an error, a 502 is) + 7 it failed that stable saved.
    assert (v2.requests, v2.errors, v2.saved_by_fallback, v2.failed_tries) == (19, 8, 7, 8)
    assert v2.latency[0] == 0 and v2.latency[2] == 10 and v2.latency[-1] == 12
    # Bins, not cumulative; shadow copies left out.
    assert v2.probability == (3, 2, 0, 0, 0, 0, 0, 0, 0, 6)


def test_exposition_to_counts() -> None:
    check_counts(snapshot_from_samples(parse_exposition(GATEWAY_METRICS + REPLICA_METRICS)))


def test_scrape_reads_gateways_and_the_replicas_they_list() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        if url == "http://gw/routing":
            replicas = [{"address": "http://b-local:1"}, {"address": "http://down:2"}]
            return httpx.Response(200, json={"replicas": replicas})
        if url == "http://gw/metrics":
            return httpx.Response(200, text=GATEWAY_METRICS)
        if url == "http://b-local:1/metrics":
            return httpx.Response(200, text=REPLICA_METRICS)
        return httpx.Response(503)

    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        check_counts(ScrapeSource(["http://gw/"], client).read())
        with pytest.raises(SourceError, match="http://other/routing"):
            ScrapeSource(["http://other"], client).read()


class FakePrometheus:
    """Prometheus's instant-query API over the samples it last scraped from each target: when
    (``scraped``, its clock) and, for a gateway, at which routing revision."""

    def __init__(
        self,
        samples: list[Sample],
        scraped: dict[str, float],
        revisions: dict[str, str] | None = None,
    ) -> None:
        self.samples = samples
        self.scraped = scraped
        self.revisions = revisions or {}
        self.asked: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        promql = request.url.params["query"]
        self.asked.append(promql)
        now = max(self.scraped.values(), default=0.0) + 0.5
        if promql == SCRAPED:
            series = [({"job": "t", "instance": i}, at) for i, at in self.scraped.items()]
        elif promql == SETTLED:
            series = [
                ({"instance": i, "revision": r}, self.scraped[i]) for i, r in self.revisions.items()
            ]
        else:
            name = next(n for n, q in QUERIES.items() if q == promql)
            series = [(dict(s.labels), s.value) for s in self.samples if s.name == name]
        result = [{"metric": labels, "value": [now, str(value)]} for labels, value in series]
        return httpx.Response(200, json={"status": "success", "data": {"result": result}})


def test_prometheus_source_sums_by_the_same_labels() -> None:
    fake = FakePrometheus(parse_exposition(GATEWAY_METRICS + REPLICA_METRICS), {"": 100.0})
    with httpx.Client(transport=httpx.MockTransport(fake)) as client:
        snapshot = PrometheusSource("http://prom:9090", client).read()
    check_counts(snapshot)
    # When each target was scraped is asked first: the counts are then of those scrapes or
    # newer, never older.
    assert fake.asked == [SCRAPED, *QUERIES.values()]
    assert snapshot.scraped == {"": 100.0}


def test_prometheus_says_from_when_its_samples_follow_a_revision() -> None:
    samples = parse_exposition(GATEWAY_METRICS, "gw-a:8080") + parse_exposition(
        GATEWAY_METRICS, "gw-b:8080"
    )
    scraped = {"gw-a:8080": 100.0, "gw-b:8080": 101.5, "replica:8000": 99.0}
    fake = FakePrometheus(samples, scraped, {"gw-a:8080": "new", "gw-b:8080": "old"})
    with httpx.Client(transport=httpx.MockTransport(fake)) as client:
        source = PrometheusSource("http://prom:9090", client)
        with pytest.raises(NotYet, match="not yet scraped with revision new settled: gw-b:8080 at"):
            source.took_effect("new")
        fake.revisions["gw-b:8080"] = "new"
        # Both gateways counted only its routing from their scrapes that said so, the later at
        # 101.5.
        assert source.took_effect("new") == 101.5
        # The replica and gw-a were last scraped before then: a window cannot begin from them.
        assert source.read().taken_before(101.5) == ["gw-a:8080", "replica:8000"]
        fake.scraped.update({"gw-a:8080": 102.0, "replica:8000": 101.6})
        assert source.read().taken_before(101.5) == []
        fake.revisions.clear()
        with pytest.raises(NotYet, match="no gateway_config_settled_info"):
            source.took_effect("new")


def test_a_reading_is_new_when_some_target_was_scraped_since() -> None:
    def at(**scraped: float) -> Snapshot:
        return Snapshot({}, scraped=scraped)

    assert not at(a=1.0, b=2.0).newer_than(at(a=1.0, b=2.0))
    assert at(a=1.0, b=3.0).newer_than(at(a=1.0, b=2.0))
    assert at(a=1.0, c=0.5).newer_than(at(a=1.0))  # a target never seen before
    assert Snapshot({}).newer_than(Snapshot({}))  # live readings are always taken now
    assert Snapshot({}).taken_before(1e12) == []
    assert at(a=1.0) == Snapshot({})  # when it was taken is not part of the counts


def test_scrape_source_waits_for_every_gateway_to_report_the_revision_settled() -> None:
    # Both gateways have loaded "new"; gw-b still has a request in flight that "old" routed.
    settled = {"http://gw-a": "new", "http://gw-b": "old"}

    def answer(request: httpx.Request) -> httpx.Response:
        gateway = f"http://{request.url.host}"
        text = (
            "# TYPE gateway_config_info gauge\n"
            'gateway_config_info{revision="new",mode="canary",stable="v1"} 1.0\n'
            "# TYPE gateway_config_settled_info gauge\n"
            f'gateway_config_settled_info{{revision="{settled[gateway]}"}} 1.0\n'
        )
        return httpx.Response(200, text=text)

    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        source = ScrapeSource(["http://gw-a", "http://gw-b"], client)
        with pytest.raises(NotYet, match="not yet settled at revision new: http://gw-b at old"):
            source.took_effect("new")
        settled["http://gw-b"] = "new"
        source.took_effect("new")


def test_prometheus_errors_are_source_errors() -> None:
    transport = httpx.MockTransport(
        lambda r: httpx.Response(400, json={"status": "error", "error": "parse error"})
    )
    with httpx.Client(transport=transport) as client, pytest.raises(SourceError):
        PrometheusSource("http://prom", client).read()


def test_a_counter_that_went_down_is_a_restart() -> None:
    before = snapshot_from_samples([Sample("gateway_requests_total", {"version": "v1"}, 50)])
    after = snapshot_from_samples([Sample("gateway_requests_total", {"version": "v1"}, 8)])
    more = snapshot_from_samples([Sample("gateway_requests_total", {"version": "v1"}, 80)])
    assert after.minus(before).of("v1").requests == 8
    assert more.minus(before).of("v1").requests == 30
    assert snapshot_from_json(snapshot_to_json(more)) == more


def test_the_model_servers_probability_bins_are_the_ones_the_judge_reads() -> None:
    from model_server.metrics import PROBABILITY_BUCKETS
    from rollout.counts import PROBABILITY_BOUNDS

    # The model server keeps its own copy (it does not import the gateway): the two must agree.
    assert tuple(PROBABILITY_BUCKETS) == tuple(PROBABILITY_BOUNDS)


def requests_of(**per_instance: float) -> Snapshot:
    return snapshot_from_samples(
        [
            Sample("gateway_requests_total", {"version": "v1", "instance": i}, n)
            for i, n in per_instance.items()
        ]
    )


def test_one_gateway_restarting_is_told_apart_from_the_others() -> None:
    before = requests_of(a=1000, b=1000)
    # b restarted and has served 50 since; a served 100 more. The sums (2000 -> 1150) alone
    # would read as one restart of everything (1150), or, had a served 1000 more, as 50.
    assert requests_of(a=1100, b=50).minus(before).of("v1").requests == 150
    assert requests_of(a=2000, b=50).minus(before).of("v1").requests == 1050
    # A gateway that is gone adds nothing, one that is new counts whole.
    assert requests_of(a=1100, c=7).minus(before).of("v1").requests == 107
    assert requests_of(a=1100, b=50).restarted_since(before) == ["b/v1"]


def test_a_restart_takes_the_whole_histogram_of_the_new_life() -> None:
    def counts(n: float, fast: float) -> Snapshot:
        latency = tuple(fast if b <= 0.005 else n for b in LATENCY_BOUNDS) + (n,)
        return Snapshot({"v1": VersionCounts(requests=n, latency=latency)})

    # Restarted: 400 answers, 390 fast. Its fast bucket grew past the old one (10 -> 390), the
    # others went down: judged bucket by bucket that would be 380 fast of 400, not 390.
    delta = counts(400, 390).minus(counts(1000, 10)).of("v1")
    assert delta.requests == 400 and delta.latency[2] == 390 and delta.latency[-1] == 400
    assert all(x >= 0 for x in delta.latency)


def test_a_rebased_window_keeps_counting_after_the_counter_passes_the_old_baseline() -> None:
    baseline = requests_of(a=1000, b=1000)
    restarted = requests_of(a=1100, b=50)
    rebased = baseline.rebased(restarted)
    assert rebased.rebased(restarted) == rebased  # nothing restarted since the rebase
    later = requests_of(a=1200, b=1500)  # b has now served more than it had before
    assert later.minus(rebased).of("v1").requests == 200 + 1500
    assert later.minus(baseline).of("v1").requests == 200 + 500  # what a stale baseline says
    assert snapshot_from_json(snapshot_to_json(rebased)) == rebased


def test_scrape_and_prometheus_name_instances_alike() -> None:
    from rollout.sources.scrape import instance_of

    assert instance_of("http://127.0.0.1:8080") == "127.0.0.1:8080"
    assert instance_of("http://gw") == "gw:80"
    assert all("by (instance," in promql for promql in QUERIES.values())


SHADOW_METRICS = """\
# TYPE gateway_shadow_rows counter
gateway_shadow_rows_total{primary="v1",shadow="v2",primary_tier="low",shadow_tier="low"} 40.0
gateway_shadow_rows_total{primary="v1",shadow="v2",primary_tier="low",shadow_tier="high"} 5.0
gateway_shadow_rows_total{primary="v1",shadow="v2",primary_tier="high",shadow_tier="high"} 3.0
# TYPE gateway_shadow_probability_rows counter
gateway_shadow_probability_rows_total{primary="v1",shadow="v2",side="primary",bin="0.0-0.1"} 45.0
gateway_shadow_probability_rows_total{primary="v1",shadow="v2",side="primary",bin="0.9-1.0"} 3.0
gateway_shadow_probability_rows_total{primary="v1",shadow="v2",side="shadow",bin="0.0-0.1"} 40.0
gateway_shadow_probability_rows_total{primary="v1",shadow="v2",side="shadow",bin="0.9-1.0"} 8.0
"""


def test_both_sources_read_the_shadow_comparison_for_the_shadow_version() -> None:
    samples = parse_exposition(SHADOW_METRICS, "gw:80")
    answer = FakePrometheus(samples, {"gw:80": 1.0})
    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        asked = PrometheusSource("http://prom:9090", client).read()
    scraped = snapshot_from_samples(samples)
    assert asked == scraped
    v2 = scraped.of("v2")
    assert v2.shadow_tiers == (40, 0, 5, 0, 0, 0, 0, 0, 3)  # client tier x shadow tier
    assert v2.shadow_client_bins == (45, 0, 0, 0, 0, 0, 0, 0, 0, 3)
    assert v2.shadow_bins == (40, 0, 0, 0, 0, 0, 0, 0, 0, 8)
    assert scraped.of("v1").shadow_tiers == (0,) * 9


# The gateway's count of what a V2 server's version (v3: MLServer) served clients, and of what
# v2 served: v2's replicas are ours and export their own histogram (REPLICA_METRICS), so the
# gateway's count of it (a protocol: v2 version on our replicas) must not add to it.
SERVED_METRICS = """\
# TYPE gateway_served_probability_rows counter
gateway_served_probability_rows_total{version="v3",bin="0.0-0.1"} 4.0
gateway_served_probability_rows_total{version="v3",bin="0.5-0.6"} 6.0
gateway_served_probability_rows_total{version="v3",bin="0.9-1.0"} 2.0
gateway_served_probability_rows_total{version="v3",bin="bogus"} 99.0
gateway_served_probability_rows_total{version="v2",bin="0.0-0.1"} 11.0
"""


def served_samples(v3_rows: float) -> list[Sample]:
    """Gateway gw:80's series (v3's first bin holding ``v3_rows``), v2's replica r:8000's."""
    gateway = SERVED_METRICS.replace('bin="0.0-0.1"} 4.0', f'bin="0.0-0.1"}} {v3_rows}')
    return parse_exposition(gateway, "gw:80") + parse_exposition(REPLICA_METRICS, "r:8000")


def test_both_sources_read_the_gateways_served_bins() -> None:
    samples = served_samples(4)
    answer = FakePrometheus(samples, {"gw:80": 1.0, "r:8000": 1.0})
    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        asked = PrometheusSource("http://prom:9090", client).read()
    scraped = snapshot_from_samples(samples)
    assert asked == scraped
    assert scraped.of("v3").served_probability == (4, 0, 0, 0, 0, 6, 0, 0, 0, 2)  # bogus: out
    assert scraped.of("v3").probability == (0,) * 10


def test_drift_reads_the_gateways_bins_only_for_a_version_without_its_own_histogram() -> None:
    now = snapshot_from_samples(served_samples(4))
    # v3 (a V2 server): its replicas export nothing, the gateway's count is its histogram.
    assert now.of("v3").judged_probability == (4, 0, 0, 0, 0, 6, 0, 0, 0, 2)
    # v2: both count it; the replicas' histogram is read, never the sum of the two.
    assert now.of("v2").judged_probability == (3, 2, 0, 0, 0, 0, 0, 0, 0, 6)
    # Over a window, as the judge reads it.
    later = snapshot_from_samples(served_samples(9))
    window = later.minus(now)
    assert window.of("v3").judged_probability == (5, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    assert window.of("v2").judged_probability == (0,) * 10  # nothing new on either
    assert snapshot_from_json(snapshot_to_json(later)) == later  # the decision log keeps it


def test_a_replica_missing_from_a_reading_is_no_restart_of_the_gateway() -> None:
    """Both bins are kept in every reading: a replica whose scrape failed once turns no
    gateway series off and on, so the gateway's counters never seem to go down."""
    gateway = parse_exposition(GATEWAY_METRICS + SERVED_METRICS, "gw:80")
    replica = parse_exposition(REPLICA_METRICS, "r:8000")
    before = snapshot_from_samples(gateway + replica)
    without = snapshot_from_samples(gateway)  # the replica's scrape failed
    assert without.restarted_since(before) == []
    assert snapshot_from_samples(gateway + replica).restarted_since(without) == []
    assert without.minus(before).of("v2").requests == 0
    # The window has no v2 histogram rows: the gateway's count stands in, with nothing new.
    assert without.minus(before).of("v2").judged_probability == (0,) * 10
