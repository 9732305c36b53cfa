"""The Sesam pipe emulator itself, against a scripted source."""
import json

import pytest

from tests.sesam_emulator import Pipe, PipeConfig, PipeState, Reply, RunFailed


class Source:
    """A scripted JSON source that honours since/limit over a list of entities."""

    def __init__(self, entities):
        self.entities = entities
        self.calls = []
        self.fail_with = None

    def __call__(self, path, params):
        self.calls.append(dict(params))
        if self.fail_with:
            return self.fail_with
        since = int(params.get("since", 0))
        page = [e for e in self.entities if e["_updated"] > since]
        if "limit" in params:
            page = page[:int(params["limit"])]
        return Reply(200, "application/json", json.dumps(page).encode())


def entity(key, updated, **fields):
    return {"_id": str(key), "_updated": updated, **fields}


def test_full_then_incremental_from_the_stored_offset():
    source = Source([entity(1, 1, v="a"), entity(2, 2, v="b")])
    pipe = Pipe(source)
    assert pipe.run().full and pipe.state.offset == 2
    source.entities.append(entity(1, 3, v="a2"))
    result = pipe.run()
    assert not result.full and source.calls[-1] == {"since": 2}
    assert [e["_id"] for e in result.entities] == ["1"] and pipe.state.dataset["1"]["v"] == "a2"


def test_paging_uses_limit_then_since_until_an_empty_page():
    source = Source([entity(i, i) for i in range(1, 6)])
    result = Pipe(source, PipeConfig(page_size=2)).run()
    assert source.calls == [{"limit": 2}, {"since": 2, "limit": 2}, {"since": 4, "limit": 2},
                            {"since": 5, "limit": 2}]
    assert len(result.entities) == 5 and result.requests == 4


def test_tombstones_and_deletion_tracking_on_a_full_run():
    source = Source([entity(1, 1), entity(2, 2), entity(3, 3)])
    pipe = Pipe(source)
    pipe.run()
    source.entities = [entity(1, 1), entity(3, 4, _deleted=True)]  # 2 vanished behind our back
    result = pipe.run(full=True)
    assert result.deleted_by_tracking == ["2"]
    assert set(pipe.state.live()) == {"1"}


def test_if_source_empty_fail_refuses_an_empty_full_run():
    pipe = Pipe(Source([]), PipeConfig(if_source_empty="fail"))
    with pytest.raises(RunFailed, match="if_source_empty"):
        pipe.run()
    assert Pipe(Source([])).run().entities == []


@pytest.mark.parametrize("reply", [
    Reply(500, "application/json", b'{"error": "x"}'),
    Reply(200, "application/json", b'[{"_id": "9", "_updated": 9}'),  # truncated
    Reply(200, "application/json", b'{"_id": "9"}'),
    Reply(200, "application/json", b'[{"_id": 9, "_updated": 9}]'),
    Reply(200, "application/json", b'[{"_id": "9"}]'),
])
def test_a_failed_run_changes_neither_dataset_nor_offset(reply):
    source = Source([entity(1, 1)])
    pipe = Pipe(source, PipeConfig(page_size=1))
    pipe.run()
    before = json.dumps([pipe.state.offset, pipe.state.dataset])
    source.fail_with = reply
    with pytest.raises(RunFailed):
        pipe.run()
    with pytest.raises(RunFailed):
        pipe.run(full=True)
    assert json.dumps([pipe.state.offset, pipe.state.dataset]) == before


def test_a_failure_on_a_later_page_discards_the_earlier_pages():
    source = Source([entity(i, i) for i in range(1, 5)])
    calls = []

    def flaky(path, params):
        calls.append(params)
        if len(calls) == 2:
            return Reply(503, "application/json", b"{}")
        return source(path, params)

    pipe = Pipe(flaky, PipeConfig(page_size=2))
    with pytest.raises(RunFailed):
        pipe.run()
    assert pipe.state.offset is None and pipe.state.dataset == {}


def test_state_survives_in_a_file(tmp_path):
    pipe = Pipe(Source([entity(1, 1, v="x")]))
    pipe.run()
    pipe.state.save(tmp_path / "state.json")
    again = PipeState.load(tmp_path / "state.json")
    assert again.offset == 1 and again.dataset == pipe.state.dataset
    assert PipeState.load(tmp_path / "missing.json").offset is None
