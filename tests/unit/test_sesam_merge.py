"""`make sesam-install`: the system, pipes and variables go into a node's own config folder,
and nothing else there changes (sesam upload replaces a node's whole config: issue 26)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.sesam_config.install import InstallRefused, install, our_files
from tests.support.servers import ROOT

IMAGE = "registry.example.com/team/orders-sesam-source:v1.2.3"


def node_folder(tmp_path, node_env="prod"):
    """A node's config folder as a team keeps it: other pipes, systems, variables."""
    folder = tmp_path / "node-config"
    (folder / "pipes").mkdir(parents=True)
    (folder / "systems").mkdir()
    (folder / "pipes" / "crm-person-collect.conf.json").write_text('{"_id": "crm-person-collect"}\n')
    (folder / "systems" / "crm.conf.json").write_text('{"_id": "crm"}\n')
    (folder / "node-metadata.conf.json").write_text('{"_id": "node", "type": "metadata", "x": 1}\n')
    (folder / "prod-env.json").write_text(json.dumps({"node-env": node_env, "crm-url": "https://crm"}))
    return folder


def snapshot(folder):
    return {path.relative_to(folder): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def test_it_adds_ours_and_keeps_everything_else(tmp_path):
    folder = node_folder(tmp_path)
    before = snapshot(folder)
    changed = install(folder, "prod", IMAGE)
    after = snapshot(folder)
    for name, content in before.items():
        if name.name != "prod-env.json":
            assert after[name] == content  # the team's files, byte for byte
    assert set(after) - set(before) == set(our_files())
    assert all(name.name.startswith("orders-source") for name in our_files())
    variables = json.loads((folder / "prod-env.json").read_text())
    assert variables["crm-url"] == "https://crm" and variables["node-env"] == "prod"
    assert variables["orders-source-image"] == IMAGE
    assert variables["orders-source-share-pump-mode"] == "scheduled"
    assert len(changed) == len(our_files()) + 1
    assert install(folder, "prod", IMAGE) == []  # again: nothing to change


def test_an_upgrade_says_what_changed(tmp_path):
    folder = node_folder(tmp_path)
    install(folder, "prod", IMAGE)
    system = folder / "systems" / "orders-source.conf.json"
    system.write_text(system.read_text().replace('"THREADS": "8"', '"THREADS": "4"'))
    changed = install(folder, "prod", IMAGE.replace("v1.2.3", "v1.2.4"))
    assert changed == ["updated systems/orders-source.conf.json", "updated prod-env.json"]


@pytest.mark.parametrize("profile, node_env", [("prod", "test"), ("test", "prod")])
def test_a_folder_whose_node_env_would_select_the_wrong_orders_is_refused(tmp_path, profile, node_env):
    folder = node_folder(tmp_path, node_env)
    (folder / "test-env.json").write_text(json.dumps({"node-env": node_env}))
    before = snapshot(folder)
    with pytest.raises(InstallRefused, match="node-env"):
        install(folder, profile, IMAGE)
    assert snapshot(folder) == before  # nothing half-written


def test_the_command_refuses_in_one_line_and_installs_into_an_empty_folder(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "tests.sesam_config.install", *args], cwd=ROOT,
                              capture_output=True, text=True, check=False)
    refused = run("--into", str(node_folder(tmp_path, "test")), "--profile", "prod", "--image", IMAGE)
    assert refused.returncode == 1 and refused.stderr.startswith("nothing installed: ")
    assert len(refused.stderr.strip().splitlines()) == 1
    empty = tmp_path / "fresh-node"
    done = run("--into", str(empty), "--profile", "test", "--image", IMAGE)
    assert done.returncode == 0, done.stderr
    assert json.loads((empty / "test-env.json").read_text())["node-env"] == "test"
    assert (empty / "expected" / "orders-source-order-endpoint.test.json").exists()
