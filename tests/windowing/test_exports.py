import rheos.windowing as windowing

EXPECTED = {
    "MAX_WATERMARK",
    "MIN_WATERMARK",
    "Aggregation",
    "BoundAggregation",
    "CalendarWindows",
    "Clock",
    "Disorder",
    "IntervalJoinOperator",
    "JoinResult",
    "LateInfo",
    "ManualClock",
    "ProcessResult",
    "SessionWindows",
    "SlidingWindows",
    "SystemClock",
    "TumblingWindows",
    "WatermarkTracker",
    "WindowJoinOperator",
    "WindowKernel",
    "WindowOperator",
    "WindowSpec",
    "aggregate_with",
    "calendar",
    "collect",
    "combine_watermarks",
    "count",
    "count_distinct",
    "first",
    "last",
    "max",
    "mean",
    "min",
    "parse_timestamp",
    "session",
    "sliding",
    "sum",
    "timestamp_getter",
    "tumbling",
}


def test_exported_names_do_not_drift() -> None:
    assert set(windowing.__all__) == EXPECTED
    for name in windowing.__all__:
        assert hasattr(windowing, name), name


def test_constants() -> None:
    assert windowing.MIN_WATERMARK == -(2**63)
    assert windowing.MAX_WATERMARK == 2**63 - 1
