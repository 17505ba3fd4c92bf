"""The facts every process of the product must spell the same way, in one place.

Risk tiers and their edges, probability bins and latency buckets, metric names and labels,
header names, the decision log's file name and fields. Any package may import this one (the
model server included); it imports nothing of the project and nothing outside the standard
library, so importing it costs a process nothing and can never make a cycle.
"""
