"""Tiny dataset trees in the published layouts of VeRi-776, VehicleID and VERI-Wild, and ImageNet weight
files of FastReID's ResNet layout, for the tests of the user's path (nothing licence-gated is read).

Each identity has its own colour, so a model can learn the tree within a few iterations; cameras
alternate, and half the images of each identity are seen from the front, half from the rear.
"""
import os
import random

import torch
from PIL import Image

__all__ = ["veri_tree", "vehicleid_tree", "veriwild_tree", "user_trees", "own_tree", "imagenet_file",
           "fill_imagenet_cache"]

SIZE = 24  # pixels; configs resize to the test's input size


def _image(path, pid, k):
    rng = random.Random(pid * 1000 + k)
    base = ((pid * 67) % 256, (pid * 131) % 256, (pid * 29) % 256)
    colour = tuple(min(255, max(0, c + rng.randint(-20, 20))) for c in base)
    img = Image.new("RGB", (SIZE, SIZE), colour)
    # a darker band at the top for front views, at the bottom for rear views
    band = (0, 0, SIZE, SIZE // 3) if k % 2 == 0 else (0, 2 * SIZE // 3, SIZE, SIZE)
    img.paste(tuple(c // 3 for c in colour), band)
    img.save(path)


def _keypoint_line(folder, name, orientation):
    # 20 keypoints (x y), -1 -1 when invisible: front parts 5-10 seen from the front, rear 17-20 from the rear
    coords = []
    for k in range(1, 21):
        visible = (orientation in (0, 3, 6) and 5 <= k <= 10) or (orientation in (1, 4, 7) and 17 <= k <= 20)
        coords += ["10", "12"] if visible else ["-1", "-1"]
    return f"VeRi/{folder}/{name} {' '.join(coords)} {orientation}\n"


def veri_tree(root, train_ids=8, test_ids=4, per_id=4):
    """``<root>/veri``: image_train, image_query, image_test and keypoint_{train,test}.txt."""
    veri = os.path.join(root, "veri")
    for d in ("image_train", "image_query", "image_test"):
        os.makedirs(os.path.join(veri, d), exist_ok=True)
    lines = {"train": [], "test": []}
    for pid in range(1, train_ids + test_ids + 1):
        split = "train" if pid <= train_ids else "test"
        for k in range(per_id):
            name = f"{pid:04d}_c{k % 2 + 1:03d}_{k:08d}_0.jpg"
            folder = "image_train" if split == "train" else ("image_query" if k == 0 else "image_test")
            _image(os.path.join(veri, folder, name), pid, k)
            lines[split].append(_keypoint_line(folder, name, (0, 1, 6, 7)[k % 4]))
    for split, ls in lines.items():
        with open(os.path.join(veri, f"keypoint_{split}.txt"), "w") as f:
            f.writelines(ls)
    return veri


def vehicleid_tree(root, train_ids=8, test_ids=4, per_id=4):
    """``<root>/vehicleid``: image/, train_test_split/{train_list,test_list_N}.txt and viewpoints.txt."""
    base = os.path.join(root, "vehicleid")
    os.makedirs(os.path.join(base, "image"), exist_ok=True)
    os.makedirs(os.path.join(base, "train_test_split"), exist_ok=True)
    train, test, views = [], [], []
    for vid in range(train_ids + test_ids):
        for k in range(per_id):
            imgid = f"{vid * 100 + k:07d}"
            _image(os.path.join(base, "image", imgid + ".jpg"), vid, k)
            (train if vid < train_ids else test).append(f"{imgid} {vid}\n")
            views.append(f"{imgid} {k % 2} 0.9\n")
    with open(os.path.join(base, "train_test_split", "train_list.txt"), "w") as f:
        f.writelines(train)
    for n in (800, 1600, 2400, 13164):
        with open(os.path.join(base, "train_test_split", f"test_list_{n}.txt"), "w") as f:
            f.writelines(test)
    with open(os.path.join(base, "viewpoints.txt"), "w") as f:
        f.writelines(views)
    return base


def veriwild_tree(root, train_ids=8, test_ids=4, per_id=4):
    """``<root>/VERI-Wild``: images/<vid>/<imgid>.jpg and train_test_split/ with FastReID's file names."""
    base = os.path.join(root, "VERI-Wild")
    split = os.path.join(base, "train_test_split")
    os.makedirs(split, exist_ok=True)
    info, train, query, gallery = ["id/image;Camera ID;Time;Model;Type;Color\n"], [], [], []
    for vid in range(train_ids + test_ids):
        os.makedirs(os.path.join(base, "images", f"{vid:05d}"), exist_ok=True)
        for k in range(per_id):
            imgid = f"{vid * 100 + k:06d}"
            _image(os.path.join(base, "images", f"{vid:05d}", imgid + ".jpg"), vid, k)
            info.append(f"{vid:05d}/{imgid};{k % 2 + 1};2018-03-11 11:40:09;Audi;SUV;White\n")
            line = f"{vid:05d}/{imgid}\n"
            (train if vid < train_ids else (query if k == 0 else gallery)).append(line)
    files = {"vehicle_info.txt": info, "train_list.txt": train}
    for n in (3000, 5000, 10000):
        files[f"test_{n}_query.txt"], files[f"test_{n}.txt"] = query, gallery
    for name, ls in files.items():
        with open(os.path.join(split, name), "w") as f:
            f.writelines(ls)
    return base


def own_tree(folder, train_ids=8, test_ids=4, per_id=4):
    """``<folder>/{train,query,gallery}/<vehicle>_<camera>_<viewpoint>_<n>.jpg``: the layout of the dataset of
    one's own in docs/GETTING_STARTED.md ("Your own dataset"); the last image of each test vehicle unknown (-1)."""
    for split in ("train", "query", "gallery"):
        os.makedirs(os.path.join(folder, split), exist_ok=True)
    for vid in range(train_ids + test_ids):
        for k in range(per_id):
            split = "train" if vid < train_ids else ("query" if k == 0 else "gallery")
            viewpoint = -1 if split == "gallery" and k == per_id - 1 else k % 2
            _image(os.path.join(folder, split, f"{vid}_{k % 2 + 1}_{viewpoint}_{k}.jpg"), vid, k)
    return folder


def user_trees(root):
    """All three trees under ``root`` (a ``$FASTREID_DATASETS``)."""
    veri_tree(root)
    vehicleid_tree(root)
    veriwild_tree(root)
    return root


def imagenet_file(path, depth="50x", with_ibn=False, seed=0):
    """A file in the layout of FastReID's ImageNet ResNet weights (random weights, measured BatchNorm
    statistics): the backbone's tensors and the 1000-class classifier ``fc``, as torchvision and
    IBN-Net publish them."""
    from fastreid.modeling.backbones.resnet import ResNet, Bottleneck, BasicBlock

    torch.manual_seed(seed)
    layers = {"18x": [2, 2, 2, 2], "34x": [3, 4, 6, 3], "50x": [3, 4, 6, 3]}[depth]
    block = BasicBlock if depth in ("18x", "34x") else Bottleneck
    model = ResNet(1, "BN", with_ibn, False, False, block, layers, [0, 0, 0, 0])
    # running statistics measured on random images, as a trained file has them: with the initial ones
    # (mean 0, variance 1) a few fine-tuning steps leave eval-mode activations growing through the layers
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = None  # cumulative average
    with torch.no_grad():
        model.train()
        for _ in range(2):
            model(torch.randn(8, 3, 64, 64))
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    state["fc.weight"] = torch.randn(1000, 512 * block.expansion)
    state["fc.bias"] = torch.zeros(1000)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.save(state, path)
    return path


def fill_imagenet_cache(torch_home):
    """FastReID's cache (``$TORCH_HOME/checkpoints``) with ResNet-50 and R50-ibn files under FastReID's names."""
    cache = os.path.join(torch_home, "checkpoints")
    imagenet_file(os.path.join(cache, "resnet50-19c8e357.pth"))
    imagenet_file(os.path.join(cache, "resnet50_ibn_a-d9d0bb7b.pth"), with_ibn=True)
    return cache
