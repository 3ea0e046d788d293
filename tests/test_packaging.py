"""The wheel carries the built-in plugins under a name no other distribution claims."""

from __future__ import annotations

import subprocess
import sys
import zipfile


def test_wheel_ships_plugins_as_nurtured_plugins(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), "."],
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("nurtured-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for domain in ("vcard", "journal", "imap", "maildir", "mbox", "ics", "caldav"):
        assert f"nurtured_plugins/{domain}/manifest.yaml" in names
        assert f"nurtured_plugins/{domain}/__init__.py" in names
    assert (
        "nurtured_plugins/imap/session.py" in names and "nurtured_plugins/caldav/webdav.py" in names
    )
    assert "nurtured/starter.yaml" in names
    assert not [n for n in names if n.startswith("plugins/")]
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "nurtured = nurtured.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
