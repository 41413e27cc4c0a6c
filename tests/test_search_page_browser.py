"""The search page in a real browser (headless Chromium, Selenium), served by tools/search_server.py in its
own process as a user runs it: pick an indexed image with a filter set and see its ranked thumbnails, a bad
filter shows the server's reason, an uploaded image finds itself. Skipped, saying what to install, where no
browser is installed."""
from .browser import browser_or_skip, chromium, start_page, stop
from .search_gallery import build_index
from .test_search_ingest import tiny_model  # noqa: F401  (the fixture)


def _wait(driver, condition, timeout=20):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda _: condition())


def test_pick_filter_error_and_upload_in_the_browser(tiny_model, tmp_path):  # noqa: F811
    browser_or_skip()
    from selenium.webdriver.common.by import By

    gallery, index, names = build_index(tmp_path, tiny_model)
    proc, url, lines = start_page("search_server", "--index", index, "--weights", tiny_model)
    assert lines[0].startswith(f"index {index}: 29 images, 3 cameras, Flat; model {tiny_model}")
    try:
        with chromium() as driver:
            find = driver.find_element

            def shown(selector):
                return driver.find_elements(By.CSS_SELECTOR, selector)

            def loaded(selector):
                return all(driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0;", i)
                           for i in shown(selector + " img"))

            driver.get(url)
            _wait(driver, lambda: len(shown("#gallery .thumb")) == 24 and loaded("#gallery .thumb"))
            assert "29 images, cameras c001, c002, c003, 2026-01-01T00:00:00Z to 2026-01-01T00:29:00Z" in \
                find(By.ID, "summary").text

            find(By.ID, "exclude").click()  # leave out the query's camera, then pick row 4 (camera c002)
            find(By.CSS_SELECTOR, "#gallery .thumb[data-row='4']").click()
            _wait(driver, lambda: len(shown("#results .result")) == 10 and loaded("#results .result"))
            cameras = [r.get_attribute("data-camera") for r in shown("#results .result")]
            assert "c002" not in cameras and set(cameras) == {"c001", "c003"}
            assert find(By.ID, "status").text.startswith("10 results (filter: camera != c002")
            assert find(By.CSS_SELECTOR, "#query .thumb").get_attribute("data-row") == "4"

            find(By.ID, "since").send_keys("yesterday")  # a bad filter: the server's reason, shown
            find(By.ID, "search-row").click()
            _wait(driver, lambda: find(By.ID, "error").is_displayed())
            assert "since: timestamp 'yesterday' does not parse" in find(By.ID, "error").text
            find(By.ID, "since").clear()

            find(By.ID, "exclude").click()
            find(By.ID, "upload").send_keys(f"{gallery}/{names[10]}")  # the image of row 10, uploaded
            find(By.ID, "search-upload").click()
            _wait(driver, lambda: not find(By.ID, "error").is_displayed() and find(By.ID, "query").text.startswith(
                f"query: {names[10]}") and loaded("#results .result"))
            first = shown("#results .result")[0]
            assert first.get_attribute("data-row") == "10" and first.text.endswith("0.000")
            driver.save_screenshot(str(tmp_path / "search_page.png"))
    finally:
        stop(proc)
