"""A Milvus Lite server of this machine's own, on a free port of 127.0.0.1, for the tests and the search
benchmark (``milvus-lite``, the test extra; its own default host is 0.0.0.0, so the address is given)."""
import contextlib
import os
import socket
import subprocess
import sys
import time

__all__ = ["milvus_lite_server"]


@contextlib.contextmanager
def milvus_lite_server(data_dir, timeout=60.0):
    """Start ``milvus-lite server`` on 127.0.0.1 with its data in ``data_dir``; yields ``HOST:PORT`` once it
    answers, and stops it at the end. Raises RuntimeError with the server's last output if it does not start."""
    from pymilvus import MilvusClient

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = os.path.join(os.path.dirname(sys.executable), "milvus-lite")
    proc = subprocess.Popen([server, "server", "--data-dir", str(data_dir), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                MilvusClient(uri=f"http://127.0.0.1:{port}", timeout=2).close()
                break
            except Exception:  # noqa: BLE001  (not up yet: whatever the client raises)
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    raise RuntimeError(f"milvus-lite server did not start: {proc.stderr.read().decode()[-2000:]}")
                time.sleep(0.3)
        yield f"127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.stderr.close()
