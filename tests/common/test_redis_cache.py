"""apps.common.cache.RedisCache: Django's Redis cache that reuses its Redis client object (a real Redis)."""

import os
import threading
import uuid

from django.conf import settings

from apps.common.cache import RedisCache


def redis_url() -> str:
    url = os.environ.get("CACHE_URL", "")
    return url if url.startswith("redis://") else "redis://127.0.0.1:6379/10"


def make_cache() -> RedisCache:
    return RedisCache(redis_url(), {"KEY_PREFIX": f"test-{uuid.uuid4().hex}"})


def test_redis_cache__behaves_like_djangos():
    cache = make_cache()
    assert cache.get("k") is None
    cache.set("k", {"a": (1, 2.5)}, 30)
    assert cache.get("k") == {"a": (1, 2.5)}
    cache.set_many({"x": 1, "y": 2}, 30)
    assert cache.get_many(["x", "y", "z"]) == {"x": 1, "y": 2}
    cache.delete_many(["k", "x", "y"])
    assert cache.get("k") is None and cache.get("x") is None


def test_redis_cache__one_client_object_per_pool():
    cache = make_cache()
    client = cache._cache.get_client("k")
    assert cache._cache.get_client("other", write=True) is client


def test_redis_cache__shared_client_safe_across_threads():
    cache = make_cache()
    errors = []

    def work(n):
        try:
            for i in range(50):
                cache.set(f"t{n}-{i}", i, 30)
                assert cache.get(f"t{n}-{i}") == i
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_settings__redis_url_selects_this_backend():
    if settings.CACHES["default"]["LOCATION"].startswith("redis://"):
        assert settings.CACHES["default"]["BACKEND"] == "apps.common.cache.RedisCache"
