"""`conceptlab bench`: the create step against the official one, renders, oracle calls and imagine rows, timed.

The stacks and pipelines it times come from plugins (`conceptlab.benchmark_stacks`, `conceptlab.benchmark_pipelines`).
"""
