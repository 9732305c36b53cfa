"""The README's "Using it" examples, run as written against a fresh service with the sample
orders: each works, and "only the changes after the first" really is a subset (issue 26)."""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess

from tests.support.servers import ROOT, start_gunicorn


def using_it_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Using it\n\n```sh\n(.*?)```", readme, re.DOTALL)[1]
    return [command for command in block.replace("\\\n", "").splitlines()
            if command.strip() and not command.startswith("#")]


def test_the_using_it_examples_work_on_fresh_data(tmp_path):
    server = start_gunicorn(f"sqlite:///{tmp_path}/orders.sqlite3", tmp_path, LOAD_SAMPLE_ORDERS="true")
    try:
        script = ["set -euo pipefail"]
        for command in using_it_commands():
            command = command.replace("http://127.0.0.1:5000", server.url)
            command = re.sub(r"^make (.*)ARGS=(\S+)",  # the emulator's state in the scratch folder
                             rf"make -s -C {ROOT} \1ARGS='\2 --state {tmp_path}/state.json'", command)
            script += [f"printf '\\n### %s\\n' {shlex.quote(command[:40])}", command]
        environment = {**os.environ, "PORT": str(server.port)}
        result = subprocess.run(["bash", "-c", "\n".join(script)], cwd=tmp_path, env=environment,
                                capture_output=True, text=True, timeout=120, check=False)
    finally:
        server.stop()
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    outputs = [part.split("\n", 1)[1] for part in result.stdout.split("\n### ")[1:]]
    full, after_first, page = json.loads(outputs[0]), json.loads(outputs[2]), json.loads(outputs[3])
    assert len(full) == 3 and [e["_id"] for e in after_first] == [e["_id"] for e in full[1:]]
    assert page == full[1:2]
    assert "full run:" in outputs[-1]  # make pull, against the same service
