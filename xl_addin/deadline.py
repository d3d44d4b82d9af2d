"""One deadline for the whole HTTP exchange, the status line and headers included.

urllib3's read timeout is per read: a server that trickles its status line and headers a
byte at a time, each byte inside the timeout, held a fetch with ``LIXINGER_BUDGET=3``
for minutes. The body is streamed and checked against the deadline in
:mod:`xl_addin.client`; the headers come before the client sees anything. So while a
connection waits for them, a watchdog stands by to shut its socket down at the deadline,
and the waiting read fails at once (plain http and https alike: it is the socket itself;
through a proxy too, a SOCKS tunnel or an HTTP proxy's CONNECT tunnel).
One watchdog thread for the process, kept while requests come and gone after a minute
without any: a thread started per request costs little on an idle machine, but on a busy
one the start waits for a free core (milliseconds, once per batch of a cold fetch).
"""

from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time
from contextlib import contextmanager

from requests.adapters import HTTPAdapter

_local = threading.local()  # the deadline of the request this thread is sending


@contextmanager
def deadline(when: float):
    """Requests sent by this thread inside the block must have their headers by *when*
    (a :func:`time.monotonic` time)."""
    _local.when = when
    try:
        yield
    finally:
        _local.when = None


def _cut(sock) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _Watchdog:
    """Shuts each watched socket down at its deadline unless the watch is cancelled first."""

    IDLE = 60.0  # seconds without a watch after which the thread ends (a new watch starts another)

    def __init__(self):
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int]] = []  # (deadline, key), the soonest first
        self._live: dict[int, object] = {}  # key -> socket, while watched
        self._keys = itertools.count()
        self._running = False

    def watch(self, when: float, sock) -> int:
        with self._cond:
            key = next(self._keys)
            self._live[key] = sock
            heapq.heappush(self._heap, (when, key))
            if not self._running:
                self._running = True
                threading.Thread(target=self._run, name="xl_addin-deadline", daemon=True).start()
            elif self._heap[0][1] == key:
                self._cond.notify()  # sooner than what the thread waits for
            return key

    def cancel(self, key: int) -> None:
        with self._cond:
            self._live.pop(key, None)

    def _run(self) -> None:
        with self._cond:
            while True:
                while self._heap and self._heap[0][1] not in self._live:
                    heapq.heappop(self._heap)  # cancelled
                if not self._heap:
                    if not self._cond.wait(self.IDLE) and not self._heap:
                        self._running = False
                        return
                    continue
                when, key = self._heap[0]
                delay = when - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                heapq.heappop(self._heap)
                _cut(self._live.pop(key))


_watchdog = _Watchdog()


def _guarded(getresponse):
    def wait_for_headers(self, *args, **kwargs):
        when = getattr(_local, "when", None)
        sock = getattr(self, "sock", None)
        if when is None or sock is None:
            return getresponse(self, *args, **kwargs)
        key = _watchdog.watch(when, sock)
        try:
            return getresponse(self, *args, **kwargs)
        finally:
            _watchdog.cancel(key)

    return wait_for_headers


_guarded_pools: dict[type, type] = {}


def _guarded_pool(pool: type) -> type:
    """*pool* (a urllib3 connection pool class, e.g. a SOCKS proxy's) with connections that
    honour :func:`deadline`; made once per class."""
    made = _guarded_pools.get(pool)
    if made is None:
        connection = type("Guarded" + pool.ConnectionCls.__name__, (pool.ConnectionCls,),
                          {"getresponse": _guarded(pool.ConnectionCls.getresponse)})
        made = _guarded_pools[pool] = type("Guarded" + pool.__name__, (pool,), {"ConnectionCls": connection})
    return made


class DeadlineAdapter(HTTPAdapter):
    """requests' adapter whose connections honour :func:`deadline` while awaiting headers,
    direct or through a proxy (an HTTP proxy's tunnel and a SOCKS proxy's connections alike)."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        _guard(self.poolmanager)

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        return _guard(super().proxy_manager_for(proxy, **proxy_kwargs))


def _guard(manager):
    """*manager* (urllib3's pool manager, plain or a proxy's) making pools that honour :func:`deadline`."""
    pools = manager.pool_classes_by_scheme
    if not all(cls in _guarded_pools.values() for cls in pools.values()):
        manager.pool_classes_by_scheme = {scheme: _guarded_pool(cls) for scheme, cls in pools.items()}
    return manager


def watch_socket(when: float, sock) -> int:
    """Shut *sock* down at *when* (a :func:`time.monotonic` time) unless :func:`unwatch` comes first:
    the same watchdog for any blocking wait on a socket (a desk database that stopped answering)."""
    return _watchdog.watch(when, sock)


def unwatch(key: int) -> None:
    _watchdog.cancel(key)
