import os


def share_cores(environ, cores):
    """The torch threads of one of the suite's worker processes, or None to leave torch's default.

    `make test` runs the suite in several processes at once (pytest-xdist, ``TEST_WORKERS`` in the
    Makefile; ``environ`` holds ``PYTEST_XDIST_WORKER_COUNT`` in each). Each worker gets an equal share of
    the ``cores``, at least one: two workers of torch's default 2 threads on 2 cores ran the suite slower
    than one process. A count the user set in ``OMP_NUM_THREADS`` is theirs and is kept.
    """
    workers = int(environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers <= 1 or environ.get("OMP_NUM_THREADS"):
        return None
    return max(1, cores // workers)


# Before torch is imported: OMP_NUM_THREADS sets this worker's torch threads and is inherited by the
# processes its tests start (trainings, tools), so they keep to the worker's share too.
_THREADS = share_cores(os.environ, len(os.sched_getaffinity(0)))
if _THREADS is not None:
    os.environ["OMP_NUM_THREADS"] = str(_THREADS)

import pytest  # noqa: E402
import torch  # noqa: E402

import fastreid_val  # noqa: E402,F401  (shims and registration)
from fastreid_val.data.synthveri import SynthSettings, ensure_synthveri  # noqa: E402
from fastreid_val.engine.denormals import flush_denormals  # noqa: E402

if _THREADS is not None:
    torch.set_num_threads(_THREADS)  # in case torch was imported before this file (a plugin)

# This process flushes denormal floats to zero from its start, as a training process does from its
# config's reading (RUN.FLUSH_DENORMAL, engine/denormals.py): torch's threads copy the mode when they
# start, so the trainings run in this process find every thread flushing, as tools/train_net.py's do.
flush_denormals(True)

# An excerpt of the real VeRi-776 keypoint/orientation annotation (see tests/data/README.md).
FIXTURE = os.path.join(os.path.dirname(__file__), "data", "veri776_keypoint_test_excerpt.txt")
TINY = SynthSettings(num_train_ids=24, num_test_ids=12, images_per_id=8, num_cameras=4, cameras_per_id=2,
                     width=32, height=32, num_models=6, num_colours=6, seed=3, shared_cues=False)
TINY_OPTS = ["DATASETS.SYNTHVERI.NUM_TRAIN_IDS", "24", "DATASETS.SYNTHVERI.NUM_TEST_IDS", "12",
             "DATASETS.SYNTHVERI.IMAGES_PER_ID", "8", "DATASETS.SYNTHVERI.NUM_CAMERAS", "4",
             "DATASETS.SYNTHVERI.SIZE", "[32, 32]", "DATASETS.SYNTHVERI.SEED", "3",
             "DATASETS.SYNTHVERI.NUM_MODELS", "6", "DATASETS.SYNTHVERI.NUM_COLOURS", "6",
             "DATASETS.SYNTHVERI.SHARED_CUES", "False"]


@pytest.fixture(scope="session")
def fixture_lines():
    with open(FIXTURE) as f:
        return [line for line in f if line.strip()]


@pytest.fixture(scope="session")
def datasets_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("datasets"))
    old = os.environ.get("FASTREID_DATASETS")
    os.environ["FASTREID_DATASETS"] = root
    yield root
    if old is None:
        os.environ.pop("FASTREID_DATASETS", None)
    else:
        os.environ["FASTREID_DATASETS"] = old


# The main job's config on tiny SynthVeRi at 32x32, for a model trained a few iterations (export, search).
DEPLOY_CFG = "configs/SynthVeRi/val_mnv2.yml"
DEPLOY_OPTS = TINY_OPTS + ["INPUT.SIZE_TRAIN", "[32, 32]", "INPUT.SIZE_TEST", "[32, 32]", "SOLVER.IMS_PER_BATCH", "32",
                           "DATALOADER.NUM_WORKERS", "0", "SOLVER.WARMUP_ITERS", "2", "TEST.RERANK.ENABLED", "False"]


@pytest.fixture(scope="session")
def tiny_run(datasets_root, tmp_path_factory):
    """The main job's model (ImageNet MobileNetV2, VAL) trained one epoch (6 iterations) by FastReID's
    trainer on tiny SynthVeRi.

    Returns (config file, config overrides, checkpoint path, dataset folder).
    """
    from fastreid.engine import default_argument_parser

    from fastreid_val.engine import main

    out = str(tmp_path_factory.mktemp("tiny_run"))
    args = default_argument_parser().parse_args(["--config-file", DEPLOY_CFG, *DEPLOY_OPTS, "OUTPUT_DIR", out,
                                                 "SOLVER.MAX_EPOCH", "1", "TEST.EVAL_PERIOD", "1", "RUN.SEED", "0",
                                                 "SOLVER.SCHED", "MultiStepLR", "SOLVER.STEPS", "[10]"])  # cosine needs 2+ epochs
    main(args)
    return DEPLOY_CFG, DEPLOY_OPTS, os.path.join(out, "model_final.pth"), ensure_synthveri(datasets_root, TINY)


@pytest.fixture(scope="session")
def tiny_onnx(tiny_run, tmp_path_factory):
    """``tiny_run``'s model exported and checked: (onnx path, check dict, ModelProto)."""
    from fastreid_val.deploy.export import export_model

    config, opts, weights, data = tiny_run
    out = str(tmp_path_factory.mktemp("tiny_onnx") / "model.onnx")
    return export_model(config, weights, out, images=os.path.join(data, "image_query"), num_images=8, opts=opts)


def run_tool(name, argv, capsys):
    """Run ``tools/<name>.py``'s ``main(argv)`` in this process: (exit status, stdout, stderr)."""
    import importlib.util

    path = os.path.join(os.path.dirname(__file__), "..", "tools", f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"tool_{name}", path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    try:
        code = tool.main(list(argv)) or 0  # a main that returns its status, or one that exits with it
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def tool_logging():
    """For tests that run tools in this process: the tools set up logging as a user's process does
    (FastReID's ``setup_logger``, the console of ``compare``), with handlers on the test's captured streams:
    they are removed after the test, and FastReID's cache of its setup cleared, so that no later test logs
    to a closed stream."""
    import logging

    from fastreid.utils import logger as fastreid_logger

    loggers = [logging.getLogger(name) for name in ("fastreid", "fastreid_val")]
    before = {log.name: list(log.handlers) for log in loggers}
    yield
    for log in loggers:
        for h in list(log.handlers):
            if h not in before[log.name]:
                log.removeHandler(h)
    fastreid_logger.setup_logger.cache_clear()


def train_in_process(argv, capsys):
    """``tools/train_net.py argv`` in this process: (exit status, stderr)."""
    from fastreid_val.engine.cli import cli

    try:
        cli(list(argv))
        code = 0
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err
