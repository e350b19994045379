"""The data disk fills up while a checkpoint is written: training stops with a message that says
so, the half-written checkpoint is gone, the sealed one before it is whole, and once there is room
a resume finishes from it. The disk is a real 60 MB tmpfs, mounted in a user and mount namespace
of its own (`unshare -rm`), so the test needs no root and touches no real disk's free space; a
tiny model's checkpoint with its optimizer state is ~37 MB, so the first fits and the second not."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from engine.lm.tiny import build_tiny_model
from tests.support import ROOT

pytestmark = pytest.mark.timeout(300)

LISTING = textwrap.dedent("""
    import json, sys
    from engine.training.checkpoints import CheckpointDir, is_complete
    folders = CheckpointDir(sys.argv[1])
    print(json.dumps({"sealed": [p.name for p in folders.completed()],
                      "staging": sorted(p.name for p in folders.staging.iterdir()) if folders.staging.is_dir() else [],
                      "model": is_complete(folders.model)}))
""")


def test_a_full_disk_mid_checkpoint_fails_clearly_keeps_the_sealed_one_and_resumes(tmp_path):
    base = build_tiny_model(tmp_path / "tiny")
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"text": f"def f{i}(x):\n    return x + {i}\n"}) + "\n" for i in range(40)))
    disk = tmp_path / "disk"
    disk.mkdir()
    train = (f"{sys.executable} -m engine.training --base {base} --data {data} --out {disk}/round --max-steps 3 "
             "--save-steps 1 --method full --device cpu --block-size 64 --batch-size 2")
    listing = f"{sys.executable} -c '{LISTING}' {disk}/round"
    script = f"""
        mount -t tmpfs -o size=60m tmpfs {disk} || exit 90
        {train} > {tmp_path}/first.out 2> {tmp_path}/first.err; echo $? > {tmp_path}/first.rc
        {listing} > {tmp_path}/first.json
        mount -o remount,size=400m {disk}
        {train} > {tmp_path}/second.out 2> {tmp_path}/second.err; echo $? > {tmp_path}/second.rc
        {listing} > {tmp_path}/second.json
    """
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stderr[-2000:]

    first_error = (tmp_path / "first.err").read_text()
    assert (tmp_path / "first.rc").read_text().strip() == "2", first_error[-3000:]  # an error, not a crash
    assert f"the disk holding {disk}/round is full" in first_error
    assert "The last whole checkpoint is checkpoint-1; free some space and resume" in first_error
    assert json.loads((tmp_path / "first.json").read_text()) == {"sealed": ["checkpoint-1"], "staging": [],
                                                                 "model": False}

    assert (tmp_path / "second.rc").read_text().strip() == "0", (tmp_path / "second.err").read_text()[-3000:]
    result = json.loads((tmp_path / "second.out").read_text())
    assert result["resumed_from"].endswith("checkpoint-1") and result["steps"] == 3
    assert json.loads((tmp_path / "second.json").read_text())["model"] is True
