"""The sandbox in a process of its own, for the benches: the real service does not share our GIL."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time


class ServerProcess:
    """The sandbox in its own process (``lx-addin sandbox``), as the real service is: its
    work of answering does not take turns with ours for this process's GIL."""

    def __init__(self, latency: float = 0.0):
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.token = "sbx-" + secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}/api"
        self.latency = latency

    def __enter__(self):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "xl_addin", "sandbox", "--port", str(self.port), "--token", self.token,
             "--latency", str(self.latency * 1000)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
        for _ in range(200):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.1):
                return self
            time.sleep(0.05)
        raise RuntimeError("the sandbox process did not start")

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(10)
