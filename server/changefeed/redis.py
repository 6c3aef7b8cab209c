"""The change feed over Redis pub/sub (ASKTA_REDIS_URL)."""

from __future__ import annotations

import redis

from server.changefeed.base import POLL_S, ChangeFeed, KbChange

CHANNEL = "askta:kb-changes"
TIMEOUT_S = 2.0  # a Redis that does not answer must not hold a staff action for long


class RedisChangeFeed(ChangeFeed):
    """Publish each change on one channel; a thread subscribes and applies the others'."""

    backend = "redis"

    def __init__(self, url: str, channel: str = CHANNEL):
        super().__init__()
        self._client = redis.Redis.from_url(url, socket_timeout=TIMEOUT_S,
                                            socket_connect_timeout=TIMEOUT_S)
        # Channels are server-wide, not per database: the URL's database number names the
        # channel, so deployments sharing one Redis on different databases stay apart.
        database = self._client.connection_pool.connection_kwargs.get("db", 0)
        self.channel = f"{channel}:{database}"

    def _send(self, change: KbChange) -> None:
        self._client.publish(self.channel, change.to_json())

    def _listen(self) -> None:
        pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(self.channel)
            self._subscribed()
            while not self.stopping:
                message = pubsub.get_message(timeout=POLL_S)
                if message is not None and message.get("type") == "message":
                    self._received(message["data"])
                else:
                    self._idle()
        finally:
            pubsub.close()

    def _disconnect(self) -> None:
        self._client.close()
