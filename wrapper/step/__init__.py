"""The payload step: the request, the supervised child process it runs in, and what the child tells the parent."""
