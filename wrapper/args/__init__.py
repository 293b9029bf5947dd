"""Arguments: the trf grammar, the argument table, the JobSpec, --help, reserved output names."""
