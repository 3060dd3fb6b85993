"""`make bench`: latency and throughput figures of the real services beside a bare baseline.

Run with `python -m tests.bench` (MariaDB from TEST_MYSQL_URL, Redis from BENCH_REDIS_URL).
Not a test module: nothing here is named `test_*`, so pytest never collects it.
"""
