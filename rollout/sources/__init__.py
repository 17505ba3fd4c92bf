"""Where the numbers come from: every source gives the same cumulative Snapshot."""
