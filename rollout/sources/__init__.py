"""Where the numbers come from: every source gives the same cumulative Snapshot."""

from rollout.sources.base import Sample, Snapshot, Source, VersionCounts, snapshot_from_samples

__all__ = ["Sample", "Snapshot", "Source", "VersionCounts", "snapshot_from_samples"]
