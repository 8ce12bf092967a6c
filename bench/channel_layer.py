"""RedisPubSubChannelLayer vs RedisChannelLayer for our traffic: one group of 20 sockets per tenant.

    .venv/bin/python bench/channel_layer.py [--receivers 20] [--messages 500]

Each backend: 20 receiver channels join one group; 500 fragments (~2 KB, like a message bubble) are
group_sent one by one; latency is measured from group_send to each receiver's receive. Prints one
JSON line and saves it to bench/results/channel_layer.json.
"""

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

from benchlib import save_result

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BACKENDS = ["channels_redis.pubsub.RedisPubSubChannelLayer", "channels_redis.core.RedisChannelLayer"]


async def run_backend(backend, receivers, messages, redis_url):
    from django.utils.module_loading import import_string

    layer = import_string(backend)(hosts=[redis_url], prefix=f"bench{os.getpid()}")
    group = "tenant-bench.inbox"
    channels = [await layer.new_channel() for _ in range(receivers)]
    for ch in channels:
        await layer.group_add(group, ch)
    payload = "x" * 2000
    latencies = []

    async def drain(ch, n):
        for _ in range(n):
            msg = await layer.receive(ch)
            latencies.append((time.perf_counter() - msg["t"]) * 1000)

    tasks = [asyncio.create_task(drain(ch, messages)) for ch in channels]
    await asyncio.sleep(0.3)  # receivers subscribed
    start = time.perf_counter()
    for _ in range(messages):
        await layer.group_send(group, {"type": "live.fragment", "html": payload, "t": time.perf_counter()})
        await asyncio.sleep(0)  # let receivers run, like a live stream rather than one burst
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=120)
    elapsed = time.perf_counter() - start
    for ch in channels:
        await layer.group_discard(group, ch)
    if hasattr(layer, "flush"):
        try:
            await layer.flush()
        except NotImplementedError:
            pass
    latencies.sort()
    return {"p50_ms": round(statistics.median(latencies), 2), "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 2),
            "deliveries_per_s": round(len(latencies) / elapsed), "delivered": len(latencies),
            "expected": receivers * messages}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--receivers", type=int, default=20)
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--redis", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/8"))
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    import django

    django.setup()
    result = {"benchmark": "channel_layer", "receivers": args.receivers, "messages": args.messages, "backends": {}}
    for backend in BACKENDS:
        result["backends"][backend.rsplit(".", 1)[1]] = asyncio.run(run_backend(backend, args.receivers, args.messages,
                                                                                  args.redis))
    save_result(result, "channel_layer.json")


if __name__ == "__main__":
    main()
