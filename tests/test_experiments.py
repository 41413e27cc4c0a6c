"""tools/compare.py's summary, table and plots; ViewpointMGN's training losses."""
import json
import os

import pytest
import torch
from PIL import Image

from fastreid.modeling import build_model
from fastreid.utils.events import EventStorage
from fastreid_val.engine import build_config
from fastreid_val.experiments.compare import RunFailedError, collect, plot, run_config, summarise
from fastreid_val.errors import UserInputError
from fastreid_val.experiments.compare import compare, group_finished, write_tables

ROOT = os.path.join(os.path.dirname(__file__), "..")


def _fake_run(folder, m_ap, cmc, test_set="SynthVeRi"):
    os.makedirs(folder, exist_ok=True)
    metrics = {"Rank-1": cmc[0] * 100, "mAP": m_ap, "xview-mAP": m_ap / 2}
    json.dump({"metrics": {test_set: metrics}, "train_time_s": 10.0, "images_per_s": 5.0},
              open(os.path.join(folder, "results.json"), "w"))
    json.dump({test_set: cmc}, open(os.path.join(folder, "cmc.json"), "w"))


def test_summary_table_and_plots(tmp_path):
    for seed, m in enumerate((10.0, 20.0)):
        _fake_run(tmp_path / "a" / f"seed{seed}", m, [0.5, 0.7, 0.9])
    _fake_run(tmp_path / "b" / "seed0", 30.0, [0.6, 0.8, 1.0])
    runs = {"a": [collect(tmp_path / "a" / f"seed{s}") for s in (0, 1)], "b": [collect(tmp_path / "b" / "seed0")]}
    summary = summarise(runs)
    assert summary["a"]["SynthVeRi"]["mAP"] == pytest.approx((15.0, 7.0710678, 2))  # mean, sample std, seeds
    assert summary["b"]["SynthVeRi"]["mAP"] == (30.0, 0.0, 1)
    assert summary["a"]["SynthVeRi"]["train_time_s"] == (10.0, 0.0, 2)
    floors = {"SynthVeRi": {"random features": {"mAP": 1.25, "Rank-1": 0.5}}}
    table = write_tables(summary, str(tmp_path / "out"), floors)
    lines = table.splitlines()
    assert lines[0].startswith("| method | seeds | Rank-1 | Rank-5 | mAP |")
    assert len({line.count("|") for line in lines}) == 1  # every row has the header's columns
    assert lines[2].startswith("| a | 2 | 50.00 ± 0.00 | - | 15.00 ± 7.07 |")  # Rank-1 = cmc[0] of both seeds
    assert lines[-1].startswith("| floor: random features | - | 0.50 | - | 1.25 |")
    plot(runs, summary, str(tmp_path / "out"), floors)
    for name in ("cmc.png", "map.png"):
        assert Image.open(tmp_path / "out" / name).size[0] > 300
    assert (tmp_path / "out" / "results.csv").read_text().startswith("method,seeds,Rank-1_mean")


def test_results_of_an_earlier_version_are_named(tmp_path):
    json.dump({"mAP": 1.0}, open(tmp_path / "results.json", "w"))
    with pytest.raises(RunFailedError, match="earlier version"):
        collect(str(tmp_path))


def test_finished_runs_are_not_rerun(tmp_path):
    folder = tmp_path / "val_mnv2" / "seed0"
    _fake_run(folder, 12.0, [0.1])
    assert run_config("configs/SynthVeRi/val_mnv2.yml", str(folder), 0) == str(folder)  # would fail if it ran


def test_finished_seed_folders_are_one_method_and_never_counted_twice(tmp_path):
    """--runs out/val/seed0 out/val/seed1 out/softmax/seed0: two methods, val over two seeds (before,
    every folder was named seed0/seed1 and the methods overwrote each other)."""
    for method, seed, m in (("val", 0, 10.0), ("val", 1, 20.0), ("softmax", 0, 30.0)):
        _fake_run(tmp_path / method / f"seed{seed}", m, [0.5])
    runs = [str(tmp_path / "val" / "seed0"), str(tmp_path / "val" / "seed1") + "/", str(tmp_path / "softmax" / "seed0")]
    assert {k: len(v) for k, v in group_finished(runs).items()} == {"val": 2, "softmax": 1}
    table = compare([], 3, str(tmp_path / "out"), finished=runs, floors=False, diagnostics=False)
    rows = {line.split(" | ")[0][2:]: line for line in table.splitlines()[2:]}
    assert set(rows) == {"val", "softmax"}
    assert rows["val"].startswith("| val | 2 |") and "| 15.00 ± 7.07 |" in rows["val"]
    assert rows["softmax"].startswith("| softmax | 1 |") and "| 30.00 |" in rows["softmax"]
    _fake_run(tmp_path / "other" / "val" / "seed0", 40.0, [0.5])
    for twice in ([runs[0], runs[0]], [runs[0], str(tmp_path / "other" / "val" / "seed0")]):
        with pytest.raises(UserInputError, match="two seeds of one method"):
            group_finished(twice)
    _fake_run(tmp_path / "plain_folder", 5.0, [0.5])  # a folder not in the seed layout keeps its own name
    assert list(group_finished([str(tmp_path / "plain_folder")])) == ["plain_folder"]


def test_viewpoint_mgn_trains_with_val_on_every_branch():
    cfg = build_config(os.path.join(ROOT, "configs/VeRi/mgn_R50-ibn_val.yml"),
                       ["MODEL.HEADS.NUM_CLASSES", "3", "MODEL.BACKBONE.PRETRAIN", "False", "MODEL.DEVICE", "cpu"])
    model = build_model(cfg).train()
    # 96x96 gives 6 feature rows, which MGN cuts into 2 and 3 stripes
    batch = {"images": torch.rand(4, 3, 96, 96) * 255, "targets": torch.tensor([0, 0, 1, 2]),
             "viewpoints": torch.tensor([0, 1, -1, 1])}
    with EventStorage(0):
        losses = model(batch)
    assert {"loss_partition", "loss_reunion", "loss_triplet_b1"} <= set(losses)
    assert not any(k.startswith("loss_cls") for k in losses)  # the _val recipe drops the identity CE
    sum(losses.values()).backward()
    for head in (model.b1_head, model.b2_head, model.b21_head, model.b33_head):  # VAL reaches every branch
        assert head.weight.grad.abs().sum() > 0


def test_viewpoint_mgn_checkpoint_from_another_v_is_refused(tmp_path):
    from fastreid_val.engine.checkpoint import CheckpointMismatchError, check_checkpoint_compatible

    def mgn(v):
        cfg = build_config(os.path.join(ROOT, "configs/VeRi/mgn_R50-ibn_val.yml"),
                           ["MODEL.HEADS.NUM_CLASSES", "3", "MODEL.BACKBONE.PRETRAIN", "False", "MODEL.DEVICE", "cpu",
                            "MODEL.VAL.NUM_VIEWPOINTS", str(v)])
        return build_model(cfg)

    path = str(tmp_path / "model_final.pth")
    torch.save({"model": mgn(2).state_dict()}, path)
    check_checkpoint_compatible(mgn(2), path)  # its own model: fine
    with pytest.raises(CheckpointMismatchError, match="has 6 identity-viewpoint classes but this model has "
                                                      "12 = 3 identities x V=4"):
        check_checkpoint_compatible(mgn(4), path)


def _compare_main():
    import importlib.util

    spec = importlib.util.spec_from_file_location("compare_tool", os.path.join(ROOT, "tools/compare.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_compare_counts_a_config_once_and_refuses_name_clashes(tmp_path):
    _fake_run(tmp_path / "val_mnv2" / "seed0", 12.0, [0.1])
    config = "configs/SynthVeRi/val_mnv2.yml"
    _compare_main()(["--configs", config, config, "--seeds", "1", "--out", str(tmp_path), "--no-floors",
                     "--no-diagnostics"])
    table = (tmp_path / "results.md").read_text()
    assert "| val_mnv2 | 1 |" in table and table.count("val_mnv2") == 1
    with pytest.raises(SystemExit):
        _compare_main()(["--configs", "configs/VeRi/val_r50.yml", "configs/VehicleID/val_r50.yml", "--out", str(tmp_path)])


def test_compare_passes_overrides_to_every_run(tmp_path, monkeypatch):
    import fastreid_val.experiments.compare as compare_module

    calls = []

    def fake_run(config, out, seed, opts=(), reuse=True, **console):
        calls.append((os.path.basename(config), seed, list(opts)))
        _fake_run(out, 10.0 + seed, [0.5])
        return out

    monkeypatch.setattr(compare_module, "run_config", fake_run)
    configs = ["configs/SynthVeRi/softmax_mnv2.yml", "configs/SynthVeRi/val_mnv2.yml"]
    _compare_main()(["--configs", *configs, "--seeds", "2", "--out", str(tmp_path), "--no-floors", "--no-diagnostics",
                     "--opts", "MODEL.BACKBONE.PRETRAIN_PATH", "/data/r50.pth", "SOLVER.MAX_EPOCH", "3"])
    opts = ["MODEL.BACKBONE.PRETRAIN_PATH", "/data/r50.pth", "SOLVER.MAX_EPOCH", "3"]
    assert calls == [("softmax_mnv2.yml", 0, opts), ("val_mnv2.yml", 0, opts), ("softmax_mnv2.yml", 1, opts),
                     ("val_mnv2.yml", 1, opts)]  # seed-major, every run with the overrides
    with pytest.raises(SystemExit):
        _compare_main()(["--configs", configs[0], "--out", str(tmp_path), "--opts", "SOLVER.MAX_EPOCH"])


def test_a_preset_puts_its_synthveri_setting_before_the_users_overrides(tmp_path, monkeypatch):
    import fastreid_val.experiments.compare as compare_module

    calls = []

    def fake_run(config, out, seed, opts=(), reuse=True, **console):
        calls.append((os.path.basename(config), list(opts)))
        _fake_run(out, 10.0, [0.5])
        return out

    monkeypatch.setattr(compare_module, "run_config", fake_run)
    for preset, value in (("synthveri-study-shared-cues", "True"), ("synthveri-study-independent-ends", "False"),
                          ("synthveri-calibration", "False"), ("synthveri", "False")):
        calls.clear()
        _compare_main()(["--preset", preset, "--seeds", "1", "--out", str(tmp_path / preset), "--no-floors",
                         "--no-diagnostics", "--opts", "SOLVER.WARMUP_ITERS", "200"])
        assert [c for c, _ in calls] == [os.path.basename(p) for p in compare_module.PRESETS[preset]]
        assert all(o == ["DATASETS.SYNTHVERI.SHARED_CUES", value, "SOLVER.WARMUP_ITERS", "200"] for _, o in calls)
    # the two study presets run the same methods; the calibration runs no VAL config
    assert compare_module.PRESETS["synthveri-study-shared-cues"] == compare_module.PRESETS["synthveri-study-independent-ends"]
    assert not [c for c in compare_module.PRESETS["synthveri-calibration"] if "val" in os.path.basename(c)]
    assert set(compare_module.PRESET_OPTS) <= set(compare_module.PRESETS)


def test_diagnostics_leave_out_the_viewpoint_accuracy_of_one_sub_center(tmp_path):
    """Runs of V=1 logged before it was left out (metrics.json holds it, 1.0 by construction)."""
    from fastreid_val.experiments.diagnostics import run_analysis
    os.makedirs(tmp_path / "analysis")
    json.dump({"mean distance: other identities": 1.0}, open(tmp_path / "analysis" / "analysis.json", "w"))
    with open(tmp_path / "metrics.json", "w") as f:
        for it in (19, 39):
            f.write(json.dumps({"iteration": it, "viewpoint_accuracy": 1.0, "total_loss": 2.0}) + "\n")
    one = run_analysis("configs/SynthVeRi/val_v1_mnv2.yml", str(tmp_path))
    two = run_analysis("configs/SynthVeRi/val_mnv2.yml", str(tmp_path))
    assert "final viewpoint_accuracy" not in one and one["mean distance: other identities"] == 1.0
    assert two["final viewpoint_accuracy"] == 1.0


def test_demo_trains_the_studys_seed_0_and_the_users_opts_win(tmp_path, monkeypatch):
    import fastreid_val.experiments.compare as compare_module
    import fastreid_val.experiments.demo as demo

    calls = []

    def fake_run(config, out, seed, opts=(), reuse=True, **console):
        calls.append((config, seed, list(opts)))
        _fake_run(out, 10.0, [0.5])
        return out

    monkeypatch.setattr(demo, "run_config", fake_run)
    monkeypatch.setattr(demo, "cached_floors", lambda config, out, opts=(): {})
    # the recipe as the study fixed it: exactly the study's seed-0 config of each method, 900 iterations
    demo.run_demo(out=str(tmp_path / "a"))
    assert [c for c, _, _ in calls] == [c for _, c in demo.DEMO_CONFIGS]
    study_opts = compare_module.PRESET_OPTS["synthveri-study-shared-cues"]
    for config, seed, opts in calls:
        assert seed == 0 and config in compare_module.PRESETS["synthveri-study-shared-cues"]
        assert build_config(config, opts).SOLVER.MAX_EPOCH == 18  # x 50 iterations an epoch
        assert build_config(config, opts).dump() == build_config(config, list(study_opts)).dump()

    calls.clear()
    demo.run_demo(out=str(tmp_path / "b"), opts=["SOLVER.MAX_EPOCH", "12"])
    assert len(calls) == 2 and all(build_config(config, opts).SOLVER.MAX_EPOCH == 12 for config, _, opts in calls)
