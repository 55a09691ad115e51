"""The web UI end to end in Debian's Chromium (headless, driven by Playwright) with a fake microphone.

A stand-in person (unmarked bf_emma speech) is played into the browser's microphone; the test records
a sample, uploads more, reads the quality report, reads the consent statement aloud (synthesised for
the test), builds the voice, speaks with it, downloads the audio and checks it in Detect.
Screenshots land in test-artifacts/webui/.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voxclone.audio import resample
from voxclone.bench.sentences import SENTENCES
from voxclone.server.app import ServerConfig, create_app
from voxclone.server.local import LocalServer

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "webui"


@pytest.fixture(scope="module")
def person(tts, tmp_path_factory):
    d = tmp_path_factory.mktemp("webui-person")
    takes = []
    for i in range(3):
        text = " ".join(t for t, _ in SENTENCES[30 + 2 * i : 32 + 2 * i])
        takes.append(tts._render(text, voice="bf_emma").samples)
    for i, x in enumerate(takes[1:]):
        sf.write(d / f"take{i}.wav", x, 24_000)
    mic = d / "mic.wav"  # what the fake microphone plays, looped
    sf.write(
        mic,
        resample(np.concatenate([takes[0], np.zeros(12_000, np.float32)]), 24_000, 48_000),
        48_000,
        subtype="PCM_16",
    )
    return d, mic


@pytest.mark.slow
def test_clone_and_speak_in_the_browser(tts, person, tmp_path):
    if CHROMIUM is None:
        pytest.fail(
            "Debian's chromium is not installed; the README's test command installs it (apt-get install chromium)"
        )
    from playwright.sync_api import expect, sync_playwright

    d, mic = person
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    app = create_app(ServerConfig(root=tmp_path / "server"), tts=tts)
    key = app.state.server.ensure_admin()
    args = [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={mic}",
    ]
    with LocalServer(app) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        context = browser.new_context(accept_downloads=True)
        context.grant_permissions(["microphone"], origin=url)
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(url)
        shot = lambda name: page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)  # noqa: E731

        # every control has a label a screen reader can announce
        unlabelled = page.evaluate(
            """() => [...document.querySelectorAll('input, select, textarea')]
                 .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map(e => e.id)"""
        )
        assert unlabelled == []
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.className") == "skip"

        # sign in with the keyboard
        page.get_by_label("API key").fill(key)
        page.get_by_label("API key").press("Enter")
        expect(page.locator("#who")).to_contain_text("signed in as admin")

        # 1. name, 2. record from the (fake) microphone and upload two files, check quality
        page.get_by_label("Voice name").fill("emma-web")
        page.get_by_role("button", name="Create", exact=True).click()
        expect(page.locator("#samples-status")).to_contain_text("created emma-web")
        page.get_by_role("button", name="Record a sample").click()
        page.wait_for_timeout(7_000)
        page.get_by_role("button", name="Stop recording").click()
        expect(page.locator("#samples-status")).to_contain_text("1 recording(s)")
        page.get_by_label("Upload recordings").set_input_files([str(p) for p in sorted(d.glob("take*.wav"))])
        expect(page.locator("#samples-status")).to_contain_text("3 recording(s)")
        page.get_by_role("button", name="Check quality").click()
        expect(page.locator("#report")).to_contain_text("s of clean speech", timeout=120_000)
        shot("1-samples-and-report")

        # 3. consent: the statement, read by the same person (synthesised here from the shown text)
        page.get_by_label("Speaker's full name").fill("Emma Example")
        page.get_by_label("Purpose").fill("voice banking")
        page.get_by_role("button", name="Get the consent statement").click()
        expect(page.locator("#statement")).to_contain_text("one-time code")
        statement = page.locator("#statement").inner_text()
        consent = tmp_path / "consent.wav"
        sf.write(consent, tts._render(statement, voice="bf_emma").samples, 24_000)
        page.get_by_label("Upload the statement recording").set_input_files(str(consent))
        expect(page.locator("#consent-status")).to_contain_text("stored")
        shot("2-consent")

        # 4. build with live progress
        page.get_by_role("button", name="Build the voice").click()
        expect(page.locator("#build-status")).to_contain_text("is ready", timeout=240_000)
        shot("3-built")
        expect(page.locator("#voices")).to_contain_text("emma-web: ready")

        # speak with it, download, detect the download
        page.get_by_label("Text", exact=True).fill("This is my own voice, made in a browser.")
        expect(page.get_by_label("Voice", exact=True)).to_have_value("emma-web")
        page.get_by_role("button", name="Speak", exact=True).click()
        expect(page.locator("#speak-status")).to_contain_text("done", timeout=60_000)
        assert page.locator("#player").get_attribute("src").startswith("blob:")
        with page.expect_download() as info:
            page.get_by_role("link", name="Download").click()
        speech = tmp_path / "speech.wav"
        info.value.save_as(speech)
        x, rate = sf.read(speech)
        assert len(x) / rate > 1.5
        page.get_by_label("Audio file to check").set_input_files(str(speech))
        page.get_by_role("button", name="Check", exact=True).click()
        expect(page.locator("#detect-result")).to_contain_text("voxclone speech")
        shot("4-spoken-and-detected")
        browser.close()
