"""Speed benchmark of the geolocation models: `python -m geoai.bench [--quick] [--tiny]`.

Measures, in one run, what fast BEiT and ResNet-50 inference needs to show:
model-only throughput of the fast path against a plain fp32 `transformers` forward,
batch-1 latency, whether the answers stay the same (embedding cosine, coordinate drift),
the end-to-end embedding pipeline, and the game's round latency, cold start and memory.
It prints a table and, as its last line, one JSON object with the headline numbers.

The package imports nothing itself: `--help` stays instant, and the game-server benchmarks
(serve, serve-memory) run without torch, as the game does (geoai.bench.runner has the
speed benchmark).
"""
