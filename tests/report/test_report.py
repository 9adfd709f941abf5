"""`mlipflow report CAMPAIGN`: one self-contained HTML page from the stored documents, for the
active-learning, glass and LixFePO4 campaigns (the tiny campaigns the other tests ran), rendered
in headless Chromium (the Debian package the bootstrap installs) as a person would see it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _report(env: dict, campaign: str, out: Path) -> str:
    r = subprocess.run([sys.executable, "-m", "mlipflow.cli.main", "report", campaign, "--out", str(out)],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert not re.search(r"""(src|href)=['"]https?://""", text)  # nothing from the network
    assert "<script" not in text
    return text


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("headless Chromium is missing: scripts/bootstrap.sh installs it (apt-get install chromium)")
        pytest.skip("no chromium here (apt-get install chromium)")
    return exe


def _render(html: Path, png: Path) -> str:
    """Screenshot of the page; returns Chromium's log (console messages are in it)."""
    exe = _chromium()
    r = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        "--enable-logging=stderr", "--v=0", f"--screenshot={png}", "--window-size=1200,1800",
                        html.resolve().as_uri()], capture_output=True, text=True, timeout=180)
    assert png.is_file() and png.stat().st_size > 10_000, r.stderr[-2000:]
    return r.stdout + r.stderr


def _not_blank(png: Path) -> None:
    import matplotlib.image as mpimg

    img = mpimg.imread(png)[..., :3]
    ink = (img.mean(axis=2) < 0.9).mean()  # fraction of pixels darker than near-white
    assert ink > 0.03 and img.std() > 0.05, (ink, img.std())


def _no_console_errors(log: str) -> None:
    bad = [ln for ln in log.splitlines() if "CONSOLE" in ln and ("Uncaught" in ln or "Error" in ln)]
    assert not bad, bad


def test_report_of_the_lixfepo4_campaign(tiny_lfp, tmp_path):
    assert tiny_lfp["first"].returncode == 0, tiny_lfp["first"].stdout[-3000:]
    out = tmp_path / "lfp.html"
    text = _report(tiny_lfp["env"], "lfp-tiny", out)
    for heading in ("LixFePO4: labels and fine-tuning", "Validation (SI II.A)", "polaron kinetics", "Table I analogue",
                    "Provenance", "Settings (secrets removed)"):
        assert heading in text
    assert text.count("data:image/png;base64,") >= 5  # parity, lcurve, validation, polaron plots, layer profile
    assert "before_convergence" in text and "0.984" in text
    png = tmp_path / "lfp.png"
    log = _render(out, png)
    _not_blank(png)
    _no_console_errors(log)
    if os.environ.get("MLIPFLOW_REPORT_PNG"):  # how docs/img/report_lfp.png is made
        shutil.copy(png, os.environ["MLIPFLOW_REPORT_PNG"])


def test_report_of_the_active_learning_campaign(tiny_al_killed, tmp_path):
    assert tiny_al_killed["rerun"].returncode == 0
    out = tmp_path / "al.html"
    text = _report(tiny_al_killed["env"], "al-tiny-emt", out)
    for part in ("Active learning", "first and final potential on the same test sets", "per iteration",
                 "uncertainty of the candidates", "test error and labels per iteration", "Provenance",
                 "on the fixed independent test set (al-tiny-emt-fixed-test v1", "F RMSE fixed set"):
        assert part in text
    png = tmp_path / "al.png"
    log = _render(out, png)
    _not_blank(png)
    _no_console_errors(log)


def test_report_of_the_glass_campaign(tiny_glass, tmp_path, campaign_tools):
    campaign_env, _ = campaign_tools
    text = _report(campaign_env(tiny_glass["home"]), "glass-tiny", tmp_path / "glass.html")
    for part in ("Glasses", "P–O–P per P", "diffusion and Arrhenius fits", "Analyses"):
        assert part in text
    assert text.count("data:image/png;base64,") >= 3


def test_report_of_an_unknown_campaign_is_a_clear_error(tmp_path, campaign_tools):
    campaign_env, _ = campaign_tools
    r = subprocess.run([sys.executable, "-m", "mlipflow.cli.main", "report", "nosuch"], capture_output=True, text=True,
                       env=campaign_env(tmp_path / "home"), timeout=300)
    assert r.returncode == 2 and "no campaign document named 'nosuch'" in r.stderr and "fix:" in r.stderr
