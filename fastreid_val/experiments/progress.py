"""The console of the main job and of ``tools/compare.py``: a training as one progress bar.

Each training is a child process (``python -m fastreid_val.engine.cli``) whose FastReID logs go,
unchanged, to its ``log.txt``. Its console is not copied here: the trainer appends its progress to
``RUN.PROGRESS_FILE`` (:class:`~fastreid_val.engine.writers.ProgressWriter`), which this module reads
while the child runs and shows as a tqdm bar updated in place on a terminal, or as a plain line every
fifth of the training when the output is a file or a CI log. What the child writes to stderr (its
warnings, its one-line error) is passed on as it comes. ``verbose`` lets the child's console through
instead, as FastReID prints it.
"""
import datetime
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections import deque

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

logger = logging.getLogger(__name__)

__all__ = ["setup_console", "run_training", "TrainingProgress", "format_progress"]

POLL_S = 0.5


_console = None  # (logger, handler) installed by setup_console


def setup_console(verbose=False, stream=None):
    """The tools' console: this package's messages as bare lines on ``stream`` (stdout); with ``verbose``,
    every library's (FastReID's too) at INFO. Calling it again replaces the handler it installed."""
    global _console
    if _console is not None:
        _console[0].removeHandler(_console[1])
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    target = logging.getLogger() if verbose else logging.getLogger("fastreid_val")
    target.addHandler(handler)
    target.setLevel(logging.INFO)
    _console = (target, handler)
    return handler


def _clock(seconds):
    return str(datetime.timedelta(seconds=int(round(seconds)))) if seconds is not None else "?"


def format_progress(record):
    """``iteration 180/900  total_loss 4.81  loss_cls 4.80  0.27 s/it  ETA 0:03:36`` from one progress record."""
    losses = "  ".join(f"{k} {v:.3g}" for k, v in record.get("losses", {}).items())
    speed = f"{record['seconds_per_iter']:.2f} s/it" if record.get("seconds_per_iter") else "-- s/it"
    return (f"iteration {record['iteration']}/{record['max_iter']}  {losses}  {speed}  "
            f"ETA {_clock(record.get('eta_seconds'))}")


class TrainingProgress:
    """Shows the progress records of one training: a bar on a terminal, plain lines otherwise."""

    def __init__(self, name, interactive=None, stream=None, fraction=0.2):
        self.name = name
        self.stream = stream or sys.stdout
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.fraction = fraction
        self.bar = None
        self.next_line = 0

    def update(self, record):
        if self.interactive:
            # the bar, then the record's own text (tqdm's postfix would add ", " before it)
            text = format_progress(record).replace("{", "{{").replace("}", "}}")
            bar_format = "{desc} {percentage:3.0f}%|{bar}| " + text
            if self.bar is None:
                self.bar = tqdm(total=record["max_iter"], desc=self.name, file=self.stream, dynamic_ncols=True,
                                bar_format=bar_format)
            self.bar.bar_format = bar_format
            self.bar.n = record["iteration"]
            self.bar.refresh()  # one record every RUN.LOG_PERIOD iterations: each is drawn
        elif record["iteration"] >= self.next_line or record["iteration"] == record["max_iter"]:
            logger.info("  %s: %s", self.name, format_progress(record))
            step = max(1, int(record["max_iter"] * self.fraction))
            self.next_line = (record["iteration"] // step + 1) * step
        if record["iteration"] == record["max_iter"]:
            self.close()
            logger.info("  %s: trained; evaluating", self.name)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class _ProgressFile:
    """The records appended to a progress file since it was opened (a partly written line waits)."""

    def __init__(self, path):
        self.path = path
        self.offset = 0
        self.pending = ""

    def read(self):
        if not os.path.exists(self.path):
            return []
        with open(self.path) as f:
            f.seek(self.offset)
            text = f.read()
            self.offset = f.tell()
        lines = (self.pending + text).split("\n")
        self.pending = lines.pop()
        return [json.loads(line) for line in lines if line.strip()]


def _relay(pipe, tail):
    for line in iter(pipe.readline, ""):
        line = line.rstrip("\n")
        tail.append(line)
        logger.info("  %s", line)
    pipe.close()


def run_training(cmd, progress_file, name, verbose=False, env=None):
    """Run ``cmd`` (a training that writes ``progress_file``) and show it; returns (exit status, the last
    lines of its stderr). With ``verbose`` the child's own console is shown instead of the bar."""
    if os.path.exists(progress_file):
        os.remove(progress_file)  # an earlier run's records
    start = time.perf_counter()
    if verbose:
        return subprocess.run(cmd, env=env).returncode, []
    tail = deque(maxlen=20)
    progress = TrainingProgress(name)
    records = _ProgressFile(progress_file)
    with logging_redirect_tqdm(loggers=[logging.getLogger("fastreid_val")]):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        relay = threading.Thread(target=_relay, args=(proc.stderr, tail), daemon=True)
        relay.start()
        try:
            while True:
                done = proc.poll() is not None
                for record in records.read():
                    progress.update(record)
                if done:
                    break
                time.sleep(POLL_S)
        finally:
            progress.close()
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            relay.join(timeout=5)
    if proc.returncode == 0:
        logger.info("  %s: done in %s", name, _clock(time.perf_counter() - start))
    return proc.returncode, list(tail)
