"""bench/conftest.py's per-case log: a new saved run keeps the previous run's log instead of overwriting it."""
import json

from bench.conftest import CaseLog, archive_case_log


def test_a_new_run_moves_the_previous_log_to_earlier_named_by_its_start(tmp_path):
    log_path = tmp_path / "cases.jsonl"
    previous = [{"type": "session", "name": "x", "started": "2026-12-07T16:44:40+00:00"}, {"type": "case", "nodeid": "a"}]
    log_path.write_text("".join(json.dumps(r) + "\n" for r in previous))
    CaseLog(log_path).write({"type": "session", "started": "2026-12-07T19:30:00+00:00"})
    kept = tmp_path / "earlier" / "2026-12-07T16-44-40Z.jsonl"
    assert [json.loads(line) for line in kept.read_text().splitlines()] == previous
    assert json.loads(log_path.read_text())["started"] == "2026-12-07T19:30:00+00:00"


def test_a_file_that_holds_no_run_is_not_archived(tmp_path):
    path = tmp_path / "cases.jsonl"
    path.write_text('{"type": "case"}\n')
    assert archive_case_log(path) is None and path.exists()
    path.write_text("not json\n")
    assert archive_case_log(path) is None and not (tmp_path / "earlier").exists()
