"""Django's Redis cache backend, minus a per-call cost that showed in the bench profile.

Django's RedisCacheClient builds a new `redis.Redis` client object for every cache call; its constructor
fills a table of ~170 response callbacks, which cost more CPU than the Redis round trip itself (about a
quarter of a cached group read ack's time, see docs/PERFORMANCE.md). A client object is thread-safe and
holds nothing but its connection pool, so one per pool is kept and reused. Behaviour is otherwise Django's.
"""

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient as DjangoRedisCacheClient


class RedisCacheClient(DjangoRedisCacheClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


class RedisCache(DjangoRedisCache):
    """CACHES backend `apps.common.cache.RedisCache` (settings.py picks it for redis:// URLs)."""

    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = RedisCacheClient
