"""Servers and data that several test areas share (and the benchmarks reuse).

    seaweed  a real SeaweedFS S3 server on loopback, started and stopped by PID
    httpd    loopback HTTP(S) servers with scripted faults
    samples  reproducible bytes, real event files (written by payload's own writer), directory listings
    csv_files  event pairs in the original dataset's CSV format

Imported as `tests.support.*`: pytest puts the repository root on sys.path (pytest.ini,
`pythonpath`); scripts run from the repository root do the same for themselves.
"""
