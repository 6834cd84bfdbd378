"""The built wheel carries the styles and the simulator's video, and the installed app finds them."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_the_wheel_ships_styles_and_the_installed_package_finds_them(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist),
                    str(REPO)], check=True, capture_output=True)
    (wheel,) = dist.glob("hailuo_tui-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    expected = {f"tui/styles/{p.name}" for p in (REPO / "styles").glob("*.tcss")}
    assert expected and expected <= set(names)
    assert "tui/simulator/sample.mp4" in names
    assert "tui/web/templates/app_index.html" in names  # the browser-mode page

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--force-reinstall",
                    str(wheel)], check=True, capture_output=True)
    probe = ("from tui.core.config import styles_dir; import tui.simulator.server as s; "
             "print(styles_dir()); print(len(s.sample_video()))")
    out = subprocess.run([str(python), "-c", probe], cwd=tmp_path, check=True, capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "PYTHONNOUSERSITE": "1"}).stdout.split()
    styles = Path(out[0])
    assert styles.is_relative_to(venv) and {p.name for p in styles.glob("*.tcss")} == {
        p.name for p in (REPO / "styles").glob("*.tcss")}
    assert int(out[1]) > 1000
