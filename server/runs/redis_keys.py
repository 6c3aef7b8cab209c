"""Where runs live in Redis, and the scripts that change them atomically.

    askta:run:{id}            hash: entry_id, device, status, worker, seq, created
    askta:run:{id}:events     stream: one entry per event, id `0-{seq}` (seq from 1),
                              fields `kind` and `data` (JSON)
    askta:run:{id}:alive      set by the worker running it, expires ALIVE_TTL_S after
                              its last heartbeat: gone while `running` means a dead worker
    askta:runs:running        ids of the runs that are running
    askta:workers:{device}    sorted set: each connected worker, scored with the
                              (Redis) time its last heartbeat expires, WORKER_TTL_S on
    askta:in-flight:{client}  sorted set: the client's runs in flight, each token scored
                              with the (Redis) time it lapses (server/runs/in_flight.py)

Every change goes through a script that first reads the status, so a run ends once:
a worker's late output after its run was ended as lost is dropped, and a message
Celery delivers again (late acks) finds the run no longer `queued` and does nothing.
"""

from __future__ import annotations

import json
from typing import Any

from server.runs.models import RunEvent

PREFIX = "askta:"
RUNNING = PREFIX + "runs:running"
# A worker refreshes its heartbeats every HEARTBEAT_S; a run whose worker missed them
# for ALIVE_TTL_S is ended as `error` by the next reader or worker that looks.
HEARTBEAT_S = 2.0
ALIVE_TTL_S = 10
WORKER_TTL_S = 10
# How long a run and its events stay readable after they are created or end.
KEEP_S = 24 * 3600
# Celery queue per device.
QUEUES = {"cpu": "cpu", "cuda": "gpu"}


def run_key(run_id: str) -> str:
    return f"{PREFIX}run:{run_id}"


def events_key(run_id: str) -> str:
    return f"{PREFIX}run:{run_id}:events"


def alive_key(run_id: str) -> str:
    return f"{PREFIX}run:{run_id}:alive"


def workers_key(device: str) -> str:
    return f"{PREFIX}workers:{device}"


# KEYS: workers of a device. ARGV: worker name, ttl. Redis's clock for every machine.
WORKER_BEAT = """
local now = tonumber(redis.call('TIME')[1])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 60)
return 1
"""

# KEYS: workers of a device. -> how many have a fresh heartbeat.
WORKERS_ALIVE = """
return redis.call('ZCOUNT', KEYS[1], tonumber(redis.call('TIME')[1]), '+inf')
"""

# KEYS: run, alive, running set. ARGV: worker, alive ttl, run id.
START = """
if redis.call('HGET', KEYS[1], 'status') ~= 'queued' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'running', 'worker', ARGV[1])
redis.call('SET', KEYS[2], ARGV[1], 'EX', tonumber(ARGV[2]))
redis.call('SADD', KEYS[3], ARGV[3])
return 1
"""

# KEYS: run, events. ARGV: kind, data.
APPEND = """
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('XADD', KEYS[2], '0-' .. seq, 'kind', ARGV[1], 'data', ARGV[2])
return seq
"""

# KEYS: run, events, alive, running set. ARGV: status, done data, stderr data or '',
# '1' to end the run only if it is running and its worker's heartbeat is gone, run id, keep.
FINISH = """
local s = redis.call('HGET', KEYS[1], 'status')
if (not s) or s == 'ok' or s == 'error' or s == 'timeout' or s == 'killed' then return 0 end
if ARGV[4] == '1' and (s ~= 'running' or redis.call('EXISTS', KEYS[3]) == 1) then return 0 end
if ARGV[3] ~= '' then
  local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
  redis.call('XADD', KEYS[2], '0-' .. seq, 'kind', 'stderr', 'data', ARGV[3])
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('XADD', KEYS[2], '0-' .. seq, 'kind', 'done', 'data', ARGV[2])
redis.call('HSET', KEYS[1], 'status', ARGV[1])
redis.call('DEL', KEYS[3])
redis.call('SREM', KEYS[4], ARGV[5])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[6]))
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[6]))
return 1
"""


def lost_message(worker: str | None) -> str:
    """stderr of a run whose worker stopped mid-run."""
    who = f" ({worker})" if worker else ""
    return (f"The worker running this demo{who} stopped (it was killed or lost its "
            "connection) and the run was ended. Run it again: another worker will take it.")


def finish_args(run_id: str, done: dict[str, Any], stderr: str | None,
                only_if_dead: bool) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of FINISH."""
    keys = [run_key(run_id), events_key(run_id), alive_key(run_id), RUNNING]
    args = [done.get("status", "error"), json.dumps(done),
            json.dumps({"text": stderr}) if stderr else "", "1" if only_if_dead else "0",
            run_id, KEEP_S]
    return keys, args


def parse_entries(entries: list[tuple[str, dict[str, str]]]) -> list[RunEvent]:
    """Stream entries (decoded) as events."""
    return [RunEvent(int(entry_id.split("-", 1)[1]), fields["kind"], json.loads(fields["data"]))
            for entry_id, fields in entries]
