"""The judge's checks, one a module: each takes a batch of counts of candidate and stable (one
row a rollout) and gives its Assessment. The methods are in rollout/judge.py's docstring."""
