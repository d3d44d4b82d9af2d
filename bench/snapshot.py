"""`lx-addin snapshot` of 600 codes against the sandbox: requests sent, against ceil(N/100), and time.

    .venv/bin/python bench/snapshot.py
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
import time

from xl_addin.sandbox import Sandbox, universe

N = 600


def main() -> None:
    codes = list(universe()[:N])
    with Sandbox() as sb, tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "LIXINGER_TOKEN": sb.token, "LIXINGER_BASE_URL": sb.url,
               "XL_ADDIN_CACHE_DIR": tmp, "XL_ADDIN_CONFIG": os.path.join(tmp, "settings.toml"),
               "XDG_STATE_HOME": tmp}
        for run in ("first", "second (same day)"):
            before, t0 = len(sb.seen), time.perf_counter()
            r = subprocess.run([sys.executable, "-m", "xl_addin", "snapshot", "--codes", *codes], env=env,
                               capture_output=True, text=True)
            took = time.perf_counter() - t0
            assert r.returncode == 0, r.stderr
            sent = len(sb.seen) - before
            print(f"snapshot {run}: {N} codes, {sent} requests (baseline ceil({N}/100) = {math.ceil(N / 100)}, "
                  f"ratio {sent / math.ceil(N / 100):.2f}), {took:.2f} s; {r.stdout.strip()}")


if __name__ == "__main__":
    main()
