"""Add this service's system, pipes and variables to a node's config folder, and nothing else.

    python -m tests.sesam_config.install --into DIR --profile prod --image REF
    (make sesam-install INTO=DIR PROFILE=prod)

`sesam upload` replaces the node's whole configuration with the folder it runs in, so the
safe way onto a node that holds other pipes is the node's own config folder (the one its
team uploads or commits from). This copies in the files named after the system
(`systems/orders-source.conf.json`, `pipes/orders-source-*`, `expected/orders-source-*`)
and merges the variables into DIR's `<profile>-env.json`: ours are set, with the image
reference given, and every other variable is kept. Nothing is deleted, and no other file
is written. Run it again after an upgrade: it says what changed.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tests.sesam_config import CONFIG, SYSTEM_ID, dump

IMAGE_VARIABLE = f"{SYSTEM_ID}-image"
TEST_NODE = "test"  # the one value of node-env under which the collect pipe reads embedded orders


class InstallRefused(Exception):
    """Installing would leave the folder wrong; the message says why, and nothing changed."""


def our_files() -> list[Path]:
    """The config files of this service, relative to sesam-config/: named after the system."""
    return sorted(path.relative_to(CONFIG)
                  for folder in ("systems", "pipes", "expected")
                  for path in (CONFIG / folder).glob(f"{SYSTEM_ID}*.json"))


def merged_variables(theirs: dict, profile: str, image: str) -> dict:
    """DIR's variables with ours set: the image given, node-env theirs if they have one."""
    ours = json.loads((CONFIG / f"{profile}-env.json").read_text())
    ours[IMAGE_VARIABLE] = image
    node_env = theirs.get("node-env", ours["node-env"])
    if (node_env == TEST_NODE) != (ours["node-env"] == TEST_NODE):
        raise InstallRefused(
            f"the folder's {profile}-env.json sets node-env to {node_env!r}, but the {profile} "
            f"profile needs it {'to be' if ours['node-env'] == TEST_NODE else 'not to be'} "
            f"{TEST_NODE!r} (the collect pipe reads the embedded test orders exactly when it is)")
    return {**theirs, **ours, "node-env": node_env}


def node_variables(profile: str, image: str) -> dict:
    """This service's variables for a node; node-env only where it must be `test`."""
    variables = merged_variables({}, profile, image)
    if variables["node-env"] != TEST_NODE:
        del variables["node-env"]
    return variables


def install(into: Path, profile: str, image: str) -> list[str]:
    """Write the files and the variables; return one line per file that changed."""
    env_path = into / f"{profile}-env.json"
    theirs = json.loads(env_path.read_text(encoding="utf-8-sig")) if env_path.exists() else {}
    if not isinstance(theirs, dict):
        raise InstallRefused(f"{env_path} is not a JSON object of variables")
    writes = {into / name: (CONFIG / name).read_text() for name in our_files()}
    writes[env_path] = dump(merged_variables(theirs, profile, image))
    changed = []
    for path, text in writes.items():
        before = path.read_text(encoding="utf-8-sig") if path.exists() else None
        if before == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        changed.append(f"{'added' if before is None else 'updated'} {path.relative_to(into)}")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.sesam_config.install",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--into", type=Path, help="the node's config folder")
    parser.add_argument("--print-variables", action="store_true",
                        help="only print this service's variables as JSON, to set them on a node")
    parser.add_argument("--profile", required=True, choices=("prod", "test"),
                        help="which node: prod-env.json or test-env.json's variables")
    parser.add_argument("--image", required=True, help="the image reference the node pulls")
    args = parser.parse_args(argv)
    if args.print_variables:
        print(json.dumps(node_variables(args.profile, args.image), indent=2))
        return 0
    if args.into is None:
        parser.error("--into is required")
    try:
        changed = install(args.into, args.profile, args.image)
    except (InstallRefused, ValueError) as error:
        print(f"nothing installed: {error}", file=sys.stderr)
        return 1
    for line in changed:
        print(line)
    print(f"{args.into}: {len(changed)} file(s) changed, {IMAGE_VARIABLE} = {args.image}; other "
          "files and variables untouched. Next: the secrets, then upload or commit "
          "(sesam-config/README.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
