"""The Tuning view in a real browser (Debian's chromium through chromedriver) against a real
api-server with the provider installed, logged in through Airflow's login page as a real user.

The emulator holds a finished, a running and a failed tuned model, plus one a real DAG run made
(``airflow dags test``), so the list links it to its task instance and that task instance gets the
"Tuning curve" tab. The screenshots in docs/images/ are written by this test.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from cryptography.fernet import Fernet

from tests.e2e.airflow_stack import AirflowStack
from tests.reliability import dagtest
from tests.ui.seed import API_KEY, STEP_SECONDS, ManualClock, Seeded, connection_json, seed_gemini
from tuning_api_emulator import Emulator

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "docs" / "images"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
DAG_ID = "ui_tuning_example"
DAG_FILE = f'''
import pendulum
from airflow.sdk import DAG
from airflow_provider_tuning.operators.tuning import CreateTunedModelOperator

with DAG("{DAG_ID}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
    CreateTunedModelOperator(
        task_id="tune",
        base_model="models/gemini-1.5-flash-001-tuning",
        training_data=[{{"text_input": f"question {{i}}", "output": f"answer {{i}}"}} for i in range(30)],
        display_name="Tuned by a DAG",
        epoch_count=2,
        batch_size=2,
        wait_for_completion=False,
    )
'''
WAIT = 30


@dataclass
class Deployment:
    stack: AirflowStack
    emulator: Emulator
    clock: ManualClock
    seeded: Seeded
    run_id: str
    dag_model: str
    passwords: dict[str, str]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, airflow_db: Path) -> Iterator[Deployment]:
    """The emulator seeded, a DAG run made by ``airflow dags test`` in a copy of the tests' migrated
    DB, and an api-server on that DB (started while the DAG runs)."""
    base = tmp_path_factory.mktemp("ui-browser")
    dags = base / "dags"
    dags.mkdir()
    (dags / "ui_tuning_example.py").write_text(DAG_FILE)
    fernet_key = Fernet.generate_key().decode()
    clock = ManualClock()
    with Emulator(step_seconds=STEP_SECONDS, api_keys=[API_KEY], clock=clock) as emu:
        seeded = seed_gemini(emu, clock)
        stack = AirflowStack(
            base / "home",
            dags,
            {
                "AIRFLOW__CORE__FERNET_KEY": fernet_key,
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
                "AIRFLOW_CONN_GENERATIVE_LANGUAGE_DEFAULT": connection_json(emu.url),
            },
        )

        def start_api_server() -> None:  # once the DAG run's home (and its DB copy) exists
            if "api-server" not in stack.procs and (base / "home" / "airflow.db").exists():
                stack.logs.mkdir(exist_ok=True)
                stack.start("api-server")

        try:
            run = dagtest.run_dag_test(
                DAG_ID,
                template=airflow_db,
                home=base / "home",
                dags_folder=dags,
                fernet_key=fernet_key,
                connection=json.loads(connection_json(emu.url)),
                timeout=180,
                watch=start_api_server,
            )
            assert run.returncode == 0, run.output[-3000:]
            start_api_server()
            dag_model = run.xcom("tune", "tuned_model")
            clock.advance(5 * STEP_SECONDS)  # the DAG's job runs: 5 of its 30 steps are done
            stack.wait_for(lambda: stack._get("/api/v2/monitor/health") is not None, 120, "api-server up")
            passwords = json.loads(
                (base / "home" / "simple_auth_manager_passwords.json.generated").read_text()
            )
            yield Deployment(stack, emu, clock, seeded, run.run_id(), dag_model, passwords)
        finally:
            stack.stop("api-server", signal.SIGKILL)  # nothing to flush; a graceful stop takes 10 s
            stack.stop_all()


@pytest.fixture(scope="module")
def browser(deployment: Deployment) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        raise AssertionError("Debian's chromium and chromium-driver are needed: make system-deps")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--window-size=1366,900",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        log_in(driver, deployment.stack.api, "admin", deployment.passwords["admin"])
        yield driver
    finally:
        driver.quit()


def log_in(driver: Any, api: str, username: str, password: str) -> None:
    """Log in through Airflow's own login page, as a person would."""
    from selenium.webdriver.common.by import By

    driver.get(f"{api}/")
    wait(driver, lambda d: css(d, "input[name=username]"), "the login page")
    css(driver, "input[name=username]")[0].send_keys(username)
    css(driver, "input[name=password]")[0].send_keys(password)
    css(driver, "button[type=submit]")[0].click()
    wait(driver, lambda d: "/auth/login" not in d.current_url, "logged in")
    wait(driver, lambda d: d.find_elements(By.XPATH, "//*[normalize-space(text())='Browse']"), "the UI")


def settled(fn: Any) -> Any:
    """Run ``fn`` (a read or a click), again if the page re-rendered the element meanwhile (the
    list refreshes itself while a job runs)."""
    from selenium.common.exceptions import StaleElementReferenceException

    for attempt in range(10):
        try:
            return fn()
        except StaleElementReferenceException:
            if attempt == 9:
                raise
            time.sleep(0.3)
    return None


def wait(driver: Any, condition: Any, what: str, timeout: float = WAIT) -> Any:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # The pages re-render their tables and charts: an element read mid-render is simply read again.
    waiter = WebDriverWait(
        driver, timeout, poll_frequency=0.2, ignored_exceptions=[StaleElementReferenceException]
    )
    return waiter.until(condition, message=what)


def css(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(driver.find_elements(By.CSS_SELECTOR, selector))


def enter_plugin_frame(driver: Any) -> None:
    from selenium.webdriver.support import expected_conditions as ec

    driver.switch_to.default_content()
    wait(driver, lambda d: css(d, "iframe"), "the plugin's iframe")
    wait(driver, ec.frame_to_be_available_and_switch_to_it(css(driver, "iframe")[0]), "switch to iframe")


def screenshot(driver: Any, name: str) -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    driver.switch_to.default_content()
    driver.save_screenshot(str(IMAGES / name))


def points_drawn(path: Any) -> int:
    """How many points an SVG series path really goes through (its M and L commands)."""
    d = path.get_attribute("d")
    return d.count("M") + d.count("L")


def test_unauthenticated_requests_are_refused(deployment: Deployment) -> None:
    api = deployment.stack.api
    for path in (
        "/tuning/",
        "/tuning/api/jobs?conn_id=generative_language_default",
        "/tuning/static/tuning.js",
    ):
        assert requests.get(api + path, timeout=10).status_code == 401, path


def test_a_user_without_connection_access_gets_403(deployment: Deployment) -> None:
    api = deployment.stack.api
    login = requests.post(
        f"{api}/auth/token",
        json={"username": "viewer", "password": deployment.passwords["viewer"]},
        timeout=10,
    )
    assert login.status_code in (200, 201), login.text
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    answer = requests.get(
        f"{api}/tuning/api/jobs",
        params={"conn_id": "generative_language_default"},
        headers=headers,
        timeout=10,
    )
    assert answer.status_code == 403


def test_the_tuning_page_lists_every_job_and_the_task_that_made_one(
    deployment: Deployment, browser: Any
) -> None:

    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    api = deployment.stack.api
    browser.get(f"{api}/plugin/tuning")
    enter_plugin_frame(browser)
    wait(browser, lambda d: len(css(d, "tr[data-job]")) == 4, "4 jobs listed")
    seeded = deployment.seeded
    statuses = settled(
        lambda: {
            row.get_attribute("data-job"): row.get_attribute("data-status")
            for row in css(browser, "tr[data-job]")
        }
    )
    assert statuses == {
        seeded.finished: "succeeded",
        seeded.running: "running",
        seeded.failed: "failed",
        deployment.dag_model: "running",
    }
    href = settled(
        lambda: css(browser, f'tr[data-job="{deployment.dag_model}"] a[data-test=task-link]')[
            0
        ].get_attribute("href")
    )
    assert href.endswith(f"/dags/{DAG_ID}/runs/{quote(deployment.run_id, safe='')}/tasks/tune")
    settled(lambda: css(browser, "button[data-status=failed]")[0].click())
    wait(browser, lambda d: len(css(d, "tr[data-job]")) == 1, "the failed filter")
    settled(lambda: css(browser, "button[data-status=all]")[0].click())
    wait(browser, lambda d: len(css(d, "tr[data-job]")) == 4, "all jobs again")
    css(browser, "#search")[0].send_keys(DAG_ID)  # the text filter matches the creating DAG too
    wait(
        browser,
        lambda d: [r.get_attribute("data-job") for r in css(d, "tr[data-job]")] == [deployment.dag_model],
        "search",
    )
    css(browser, "#search")[0].send_keys(Keys.CONTROL, "a")
    css(browser, "#search")[0].send_keys(Keys.BACK_SPACE)
    wait(browser, lambda d: len(css(d, "tr[data-job]")) == 4, "the search cleared")

    def sorted_by_loss(order: str) -> Any:
        def check(d: Any) -> bool:
            header = css(d, "th.sorted")
            return (
                bool(header) and header[0].text == "Final loss" and order in header[0].get_attribute("class")
            )

        return check

    loss_header = "//th[normalize-space(text())='Final loss']"
    settled(lambda: browser.find_element(By.XPATH, loss_header).click())
    wait(browser, sorted_by_loss("desc"), "sorted by final loss, highest first")
    settled(lambda: browser.find_element(By.XPATH, loss_header).click())
    wait(browser, sorted_by_loss("asc"), "sorted by final loss, lowest first")
    losses = settled(
        lambda: [
            float(r.find_elements(By.CSS_SELECTOR, "td.num")[0].text) for r in css(browser, "tr[data-job]")
        ]
    )
    assert losses == sorted(losses)
    screenshot(browser, "tuning-list.png")


def test_the_job_page_draws_one_point_per_snapshot_and_compares_jobs(
    deployment: Deployment, browser: Any
) -> None:
    seeded = deployment.seeded
    enter_plugin_frame(browser)
    settled(lambda: css(browser, f'tr[data-job="{seeded.finished}"] td a')[0].click())
    wait(browser, lambda d: css(d, "path.series"), "the loss curve")
    (series,) = css(browser, "path.series")
    assert int(series.get_attribute("data-points")) == seeded.snapshots[seeded.finished]
    assert points_drawn(series) == seeded.snapshots[seeded.finished]
    assert css(browser, "line.epoch"), "epoch boundaries are marked"
    assert seeded.finished in browser.find_element("css selector", ".copy code").text
    screenshot(browser, "tuning-job.png")

    enter_plugin_frame(browser)
    browser.back()
    enter_plugin_frame(browser)
    wait(browser, lambda d: len(css(d, "tr[data-job]")) == 4, "the list again")
    for name in (seeded.finished, seeded.failed):
        settled(lambda name=name: css(browser, f'tr[data-job="{name}"] input[type=checkbox]')[0].click())
    wait(browser, lambda d: css(d, "#compare")[0].is_enabled(), "two jobs selected")
    settled(lambda: css(browser, "#compare")[0].click())
    wait(browser, lambda d: len(css(d, "path.series")) == 2, "two curves overlaid")
    drawn = {p.get_attribute("data-label"): points_drawn(p) for p in css(browser, "path.series")}
    assert drawn == {
        "Finished model": seeded.snapshots[seeded.finished],
        "Failed model": seeded.snapshots[seeded.failed],
    }
    error = css(browser, "[data-test=job-error]")
    assert len(error) == 1
    assert "training diverged" in error[0].text


def test_the_task_instance_tab_shows_the_curve_live(deployment: Deployment, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    api = deployment.stack.api
    browser.switch_to.default_content()
    browser.get(f"{api}/dags/{DAG_ID}/runs/{deployment.run_id}/tasks/tune")
    tab = wait(
        browser,
        lambda d: d.find_elements(By.XPATH, "//*[normalize-space(text())='Tuning curve']"),
        "the Tuning curve tab on the tuning task",
    )
    tab[0].click()
    enter_plugin_frame(browser)
    wait(browser, lambda d: css(d, "path.series"), "the task's curve")
    assert settled(lambda: css(browser, "path.series")[0].get_attribute("data-points")) == "5"
    deployment.clock.advance(4 * STEP_SECONDS)  # four more steps: the tab refreshes by itself
    wait(
        browser,
        lambda d: css(d, "path.series") and css(d, "path.series")[0].get_attribute("data-points") == "9",
        "the curve to grow without a reload",
        timeout=45,
    )
    screenshot(browser, "tuning-task-tab.png")


def test_the_extra_link_opens_the_job_page(deployment: Deployment, browser: Any) -> None:
    api = deployment.stack.api
    token = requests.post(
        f"{api}/auth/token",
        json={"username": "admin", "password": deployment.passwords["admin"]},
        timeout=10,
    ).json()["access_token"]
    links = requests.get(
        f"{api}/api/v2/dags/{DAG_ID}/dagRuns/{quote(deployment.run_id, safe='')}/taskInstances/tune/links",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert links.status_code == 200, links.text
    href = links.json()["extra_links"]["Tuned model"]
    assert (
        href == f"/tuning/job?conn_id=generative_language_default&name={quote(deployment.dag_model, safe='')}"
    )
    browser.switch_to.default_content()
    browser.get(api + href)
    wait(browser, lambda d: css(d, "path.series"), "the job page the link opens")
    assert settled(lambda: css(browser, "path.series")[0].get_attribute("data-label")) == "Tuned by a DAG"


def test_the_view_follows_the_airflow_ui_dark_mode(deployment: Deployment, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    browser.switch_to.default_content()
    browser.get(f"{deployment.stack.api}/plugin/tuning")
    wait(browser, lambda d: d.find_elements(By.XPATH, "//*[normalize-space(text())='Browse']"), "the UI")
    browser.find_element(By.XPATH, "//*[normalize-space(text())='Browse']").click()
    wait(
        browser,
        lambda d: d.find_elements(By.XPATH, "//*[normalize-space(text())='Tuning']"),
        "Tuning in the nav",
    )
    enter_plugin_frame(browser)
    wait(browser, lambda d: css(d, "tr[data-job]"), "the list")
    browser.switch_to.default_content()
    browser.execute_script("document.documentElement.classList.add('dark')")
    enter_plugin_frame(browser)
    wait(
        browser,
        lambda d: d.execute_script("return document.documentElement.classList.contains('dark')"),
        "dark",
    )
    background = browser.execute_script("return getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(18, 20, 24)"
    browser.switch_to.default_content()
    browser.execute_script("document.documentElement.classList.remove('dark')")
    enter_plugin_frame(browser)
    wait(
        browser,
        lambda d: not d.execute_script("return document.documentElement.classList.contains('dark')"),
        "light",
    )


def test_screenshots_are_written(deployment: Deployment) -> None:
    for name in ("tuning-list.png", "tuning-job.png", "tuning-task-tab.png"):
        assert (IMAGES / name).stat().st_size > 10_000, name
    shutil.rmtree(deployment.stack.home / "logs", ignore_errors=True)
