"""The Sesam pipe emulator itself, against a scripted source."""
import json

import pytest

from tests.sesam_emulator import Pipe, PipeConfig, PipeState, Reply, RunFailed, with_params


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


URL = "http://source/api/orders"


def test_state_survives_in_a_file(tmp_path):
    pipe = Pipe(Source([entity(1, 1, v="x")]))
    pipe.run()
    pipe.state.save(tmp_path / "state.json", URL)
    again = PipeState.load(tmp_path / "state.json", URL)
    assert again.offset == 1 and again.dataset == pipe.state.dataset
    assert PipeState.load(tmp_path / "missing.json", URL).offset is None


def test_the_state_file_keeps_one_pipe_per_source_url(tmp_path):
    path, other = tmp_path / "state.json", URL + "?ms_updated_property=modified"
    PipeState(offset=7, dataset={"1": entity(1, 7)}).save(path, URL)
    assert PipeState.load(path, other).offset is None  # a second source starts from scratch
    PipeState(offset=3).save(path, other)
    assert PipeState.load(path, URL).offset == 7 and PipeState.load(path, other).offset == 3


class IdentifiedSource(Source):
    """A scripted source that sends the X-Dataset-* headers of its current identity."""

    def __init__(self, entities, generation="gen-a"):
        super().__init__(entities)
        self.headers = {"x-dataset-generation": generation}

    def __call__(self, path, params):
        reply = super().__call__(path, params)
        return Reply(reply.status, reply.content_type, reply.body, dict(self.headers))


def test_a_changed_generation_fails_the_run_unless_reprocessing_is_automatic():
    source = IdentifiedSource([entity(1, 10), entity(2, 20)])
    pipe = Pipe(source)
    pipe.run()
    assert pipe.state.generation == "gen-a"
    source.entities, source.headers = [entity(3, 30)], {"x-dataset-generation": "gen-b"}
    with pytest.raises(RunFailed, match="X-Dataset-Generation changed from gen-a to gen-b"):
        pipe.run()
    assert set(pipe.state.live()) == {"1", "2"} and pipe.state.offset == 20
    pipe.config.reprocessing = "automatic"
    result = pipe.run()
    assert result.full and source.calls[-1] == {} and "gen-b" in result.reset
    assert set(pipe.state.live()) == {"3"} and result.deleted_by_tracking == ["1", "2"]
    assert pipe.state.generation == "gen-b"


def test_a_409_fails_the_run_and_keeps_the_dataset():
    source = IdentifiedSource([entity(1, 10)])
    pipe = Pipe(source, PipeConfig(reprocessing="automatic"))
    pipe.run()
    source.fail_with = Reply(409, "application/json", b'{"status": 409, "error": "since_ahead_of_store"}')
    with pytest.raises(RunFailed, match="409"):
        pipe.run()
    assert pipe.state.offset == 10 and set(pipe.state.live()) == {"1"}


def test_a_restore_below_the_offset_puts_the_pipe_out_of_sync_and_one_above_does_not():
    source = IdentifiedSource([entity(1, 10), entity(2, 20)])
    pipe = Pipe(source)
    pipe.run()
    source.headers.update({"x-dataset-restore-uuid": "r1", "x-dataset-restore-offset": "20"})
    assert not pipe.run().full and pipe.state.restore_uuid == "r1"  # it saw nothing lost
    source.headers.update({"x-dataset-restore-uuid": "r2", "x-dataset-restore-offset": "10"})
    with pytest.raises(RunFailed, match="X-Dataset-Restore-Uuid r2"):
        pipe.run()
    pipe.config.reprocessing = "automatic"
    assert pipe.run().full and pipe.state.restore_uuid == "r2"


def test_the_generation_and_restore_id_survive_in_the_state_file(tmp_path):
    path = tmp_path / "state.json"
    PipeState(offset=5, generation="g", restore_uuid="r").save(path, URL)
    loaded = PipeState.load(path, URL)
    assert (loaded.offset, loaded.generation, loaded.restore_uuid) == (5, "g", "r")


def test_a_page_longer_than_the_limit_fails_the_run():
    source = Source([entity(i, i) for i in range(1, 6)])
    ignoring = lambda path, params: source(path, {k: v for k, v in params.items() if k != "limit"})
    pipe = Pipe(ignoring, PipeConfig(page_size=2))
    with pytest.raises(RunFailed, match="a page of 5 entities came back for limit=2"):
        pipe.run()
    assert pipe.state.offset is None


CUT = b'[{"_id": "1", "_updated": 1}, {"_id": "2", "_updated": 2}, {"_id": "3", "_upd'


@pytest.mark.parametrize("failure", [
    lambda: Reply(200, "application/json", CUT),                      # a body cut off
    lambda: (_ for _ in ()).throw(RunFailed("connection reset", partial=CUT)),  # a dropped connection
])
def test_a_chronological_pipe_keeps_what_arrived_whole_before_a_failure(failure):
    source = Source([entity(1, 1), entity(2, 2), entity(3, 3), entity(4, 4)])
    pipe = Pipe(lambda path, params: failure(), PipeConfig(is_chronological=True))
    with pytest.raises(RunFailed) as raised:
        pipe.run()
    assert raised.value.kept == "kept 2 entities; offset now 2"
    assert pipe.state.offset == 2 and set(pipe.state.live()) == {"1", "2"}
    pipe.transport = source
    result = pipe.run()  # continues where the failed run left off
    assert source.calls == [{"since": 2}] and [e["_id"] for e in result.entities] == ["3", "4"]


def test_a_chronological_pipe_keeps_the_pages_before_a_failed_one_but_tracks_no_deletions():
    source = Source([entity(i, i) for i in range(1, 7)])
    pipe = Pipe(source, PipeConfig(page_size=2, is_chronological=True))
    pipe.run()
    pipe.state.dataset["9"] = entity(9, 0)  # an entity the source no longer has
    calls = []

    def flaky(path, params):
        calls.append(params)
        return Reply(503, "application/json", b"{}") if len(calls) == 2 else source(path, params)

    pipe.transport = flaky
    with pytest.raises(RunFailed):
        pipe.run(full=True)
    assert pipe.state.offset == 2 and "9" in pipe.state.live()  # no tracking after a failed run
    pipe.transport = source
    assert pipe.run(full=True).deleted_by_tracking == ["9"]  # the complete full run tracks


def test_a_non_chronological_pipe_keeps_nothing_of_a_failed_run():
    pipe = Pipe(lambda path, params: Reply(200, "application/json", CUT))
    with pytest.raises(RunFailed) as raised:
        pipe.run()
    assert raised.value.kept == "" and pipe.state.offset is None and pipe.state.dataset == {}


def test_the_urls_query_string_is_kept_and_the_parameters_added():
    assert with_params("http://h/items?ms_updated_property=modified", {"since": 9, "limit": 2}) \
        == "http://h/items?ms_updated_property=modified&since=9&limit=2"
    assert with_params("http://h/", {}) == "http://h/"
