"""Snowflake-like ids: fixed width, sortable by creation time, strictly increasing within a process."""

from apps.chat.ids import EPOCH_MS, WIDTH, SnowflakeGenerator


def test_ids__fixed_width_digits_and_ordered_by_time():
    snowflake_id = SnowflakeGenerator()  # private state: the process-wide one must not jump ahead in time
    early = snowflake_id(timestamp_ms=EPOCH_MS + 1_000)
    late = snowflake_id(timestamp_ms=1_900_000_000_000)  # 2030
    assert len(early) == len(late) == WIDTH and early.isdigit() and late.isdigit()
    assert early < late
    assert int(late) < 2**63  # fits a signed 64-bit integer for clients that parse it


def test_ids__same_millisecond__strictly_increasing():
    snowflake_id = SnowflakeGenerator()
    ids = [snowflake_id(timestamp_ms=1_800_000_000_000) for _ in range(1000)]
    assert ids == sorted(ids) and len(set(ids)) == 1000


def test_ids__clock_steps_back__still_increasing():
    snowflake_id = SnowflakeGenerator()
    ahead = snowflake_id(timestamp_ms=1_850_000_000_000)
    behind = snowflake_id(timestamp_ms=1_849_999_999_000)
    assert behind > ahead
