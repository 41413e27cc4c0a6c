"""The annotation page in a real browser (headless Chromium, Selenium): labels given by keyboard, a reload
and a restart resume, undo, bad images skipped with a note, and the CSV is exactly what was pressed.
Skipped, saying what to install, where no browser is installed."""
import os

from PIL import Image

from fastreid_val.annotate import pick_images
from fastreid_val.labeller import read_labelled_csv

from .browser import Page, browser_or_skip, chromium, start_annotation, stop


def _folder(tmp_path):
    """6 images, one file that is no image, and one that only PIL can read (a PPM named .png)."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    for k in range(6):
        Image.new("RGB", (40, 24), (30 * k, 200 - 30 * k, 90)).save(folder / f"car{k}.jpg")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 this is no image")
    Image.new("RGB", (40, 24), (10, 10, 10)).save(folder / "odd.png", format="PPM")
    return folder


def test_keyboard_labels_reload_resume_undo_and_the_csv_is_what_was_pressed(tmp_path):
    browser_or_skip()
    folder, out = _folder(tmp_path), str(tmp_path / "hand.csv")
    args = ("--images", str(folder), "--output", out, "--num", "8")
    order = [os.path.basename(p) for p in pick_images(images=str(folder), num=8)]  # the tool's seeded pick
    pressed = []  # (file name, viewpoint) in the order the page took them

    def answer(page, key):
        name = page.shown()
        assert page.image_loaded(), f"{name} is not shown"  # never a blank page
        page.press(key)
        pressed.append((name, {"1": 0, "2": 1, "x": -1}[key]))

    proc, url, _ = start_annotation(*args)
    try:
        with chromium() as driver:
            page = Page(driver, url)
            assert page.text("keys").split("\n") == ["1 front", "2 rear", "x cannot tell", "u undo"]
            for key in ("1", "2", "x"):
                answer(page, key)
            shown = page.shown()
            driver.refresh()  # a reload resumes at the next image
            page.open()
            assert page.shown() == shown and page.text("count").startswith(f"{3 + _skipped(page)} / 8 done (3 answered")
            page.press("u")  # undo: the third image again, its answer gone from the file
            assert page.shown() == pressed.pop()[0] and len(read_labelled_csv(out, keep_cannot_tell=True)) == 2
            answer(page, "2")
            assert page.text("status").endswith(f"{pressed[-1][0]} → rear")
        stop(proc)
        proc, url, lines = start_annotation(*args)  # a restart goes on where it stopped
        # done: the 3 answers and broken.jpg if it comes before the next image (the server finds it with
        # PIL; what only the browser cannot show is found again when the page shows it)
        good = [n for n in order if n not in ("broken.jpg", "odd.png")]
        before_next = order[:order.index(good[3])]
        assert lines[0].startswith(f"8 images of {folder} to label, {3 + ('broken.jpg' in before_next)} done so far")
        with chromium() as driver:
            page = Page(driver, url)
            keys = iter("12121")
            while page.shown() is not None:
                answer(page, next(keys))
            notes = page.text("notes")
            assert page.visible("finished") and "All 8 images are done" in page.text("finished")
            assert f"skipped {folder / 'broken.jpg'}: it cannot be decoded" in notes
            driver.save_screenshot(str(tmp_path / "finished.png"))
    finally:
        stop(proc)
    # 8 picked, 2 skipped: broken.jpg (PIL) and odd.png (PIL reads it, the browser not); the rest in the pick's order
    assert [n for n, _ in pressed] == [n for n in order if n not in ("broken.jpg", "odd.png")]
    assert f"skipped {folder / 'odd.png'}: the browser cannot show it" in notes
    with open(out) as f:
        assert f.read() == "path,viewpoint\n" + "".join(f"{folder / n},{v}\n" for n, v in pressed)
    assert read_labelled_csv(out) == [(str(folder / n), v) for n, v in pressed if v != -1]  # what the labeller reads


def _skipped(page):
    return page.text("notes").count("skipped ")
