"""`objret serve` as a user meets it: the command starts the server on 127.0.0.1, and a real browser (Debian's
chromium, driven by selenium) types a query, sees the hits load with their boxes, uploads an image, draws a box on
it and searches by that region. The page's screenshot goes to nbs/images/serve_page.jpg for the README."""
import io, json, os, shutil, socket, subprocess, sys, time, urllib.request
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = {**os.environ, "OBJRET_PROGRESS": "0"}
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    "Two collections of the same 40 scenes (Cluster-CLIP and R-MAC), served by `objret serve` on 127.0.0.1."
    from objret.synth import object_world
    d = tmp_path_factory.mktemp("serve")
    w = object_world(4, 4, 40, seed=4, progress=False, root=d/"w")
    photos = d/"photos"; photos.mkdir()
    for f in sorted((w/"images").glob("test_*.png")): shutil.copy(f, photos/f.name)
    for method, extra in (("cluster-clip", ["--resolution", "128", "--options", '{"k": 6}']), ("rmac", [])):
        r = subprocess.run([str(BIN/"objret"), "build-index", str(photos), str(d/method), "--method", method, *extra],
                           capture_output=True, text=True, env=ENV)
        assert r.returncode == 0, r.stderr[-2000:]
    port = _free_port()
    p = subprocess.Popen([str(BIN/"objret"), "serve", str(d/"cluster-clip"), str(d/"rmac"), "--port", str(port)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    url = f"http://127.0.0.1:{port}"
    t0 = time.time()
    while time.time() - t0 < 120:
        try:
            urllib.request.urlopen(url + "/api/collections", timeout=2)
            break
        except OSError:
            if p.poll() is not None: raise RuntimeError(p.stderr.read()[-2000:])
            time.sleep(0.3)
    yield url, photos
    p.terminate(); p.wait(20)


def test_serve_binds_to_this_machine_and_answers_json(served):
    url, photos = served
    cols = json.loads(urllib.request.urlopen(url + "/api/collections", timeout=10).read())
    assert [c["name"] for c in cols] == ["cluster-clip", "rmac"] and cols[0]["items"] == 40
    req = urllib.request.Request(url + "/api/search", data=json.dumps({"queries": ["a photo of a red circle", "a photo of a blue star"], "k": 5}).encode(),
                                 headers={"Content-Type": "application/json"})
    got = json.loads(urllib.request.urlopen(req, timeout=30).read())
    assert len(got["cluster-clip"]) == 2 and len(got["cluster-clip"][0]) == 5 and "error" in got["rmac"]


@pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver (.ci/run installs them)")
def test_page_in_a_real_browser(served, tmp_path):
    "Type a query, see the hits with their boxes; upload an image, draw a box, search by it; a screenshot for the README."
    from selenium import webdriver
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.chrome.service import Service as DriverService
    from selenium.webdriver.support.ui import WebDriverWait
    url, photos = served
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--window-size=1400,1000", f"--user-data-dir={tmp_path/'profile'}"):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=DriverService(DRIVER), options=opts)
    try:
        drv.get(url + "/")
        wait = WebDriverWait(drv, 60)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#cols input")) == 2)
        drv.find_element(By.ID, "q").send_keys("a photo of a red circle")
        drv.find_element(By.ID, "go").click()
        loaded = lambda d: d.execute_script("return [...document.querySelectorAll('.col:first-child .hit img')].filter(i => i.complete && i.naturalWidth > 0).length")
        wait.until(lambda d: loaded(d) == 8 and len(d.find_elements(By.CSS_SELECTOR, ".col:first-child .box")) == 8)
        assert "does not take text queries" in drv.find_elements(By.CSS_SELECTOR, ".col")[1].text   # R-MAC: image queries only
        box = drv.find_elements(By.CSS_SELECTOR, ".col:first-child .box")[0]
        assert box.size["width"] > 2 and box.size["height"] > 2                   # the matched cluster's box is drawn
        drv.find_element(By.ID, "file").send_keys(str(sorted(photos.glob("*.png"))[3]))
        wait.until(lambda d: d.execute_script("const i = document.getElementById('qimg'); return i.complete && i.naturalWidth > 0"))
        can = drv.find_element(By.ID, "qcan")
        ActionChains(drv).move_to_element_with_offset(can, -40, -40).click_and_hold().move_by_offset(60, 60).release().perform()
        drv.find_element(By.ID, "goimg").click()
        wait.until(lambda d: all(len(c.find_elements(By.CSS_SELECTOR, ".hit img")) == 8 for c in d.find_elements(By.CSS_SELECTOR, ".col")))
        drv.find_elements(By.CSS_SELECTOR, ".col:last-child .hit")[0].click()                  # a hit's view, then its region
        wait.until(lambda d: d.execute_script("const i = document.getElementById('view'); return i.complete && i.naturalWidth > 0"))
        assert drv.find_element(By.ID, "status").text == ""                        # no error shown
        (ROOT/"nbs"/"images").mkdir(exist_ok=True)                               # both collections' hits for a drawn region, a hit's view
        shot = Image.open(io.BytesIO(drv.get_screenshot_as_png())).convert("RGB")
        shot.save(ROOT/"nbs"/"images"/"serve_page.jpg", quality=80)                # a JPEG: the scenes' noise makes a PNG large
    except Exception:                                                              # what the page showed, for the log
        print("page status:", drv.find_element(By.ID, "status").text, "\npage text:", drv.find_element(By.TAG_NAME, "body").text[:2000])
        drv.save_screenshot(str(tmp_path/"failed.png"))
        raise
    finally:
        drv.quit()
