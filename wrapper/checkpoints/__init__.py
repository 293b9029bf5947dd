"""Resume across job retries: the task-wide checkpoint store, the background upload, the restore at start."""
