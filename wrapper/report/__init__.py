"""What the job hands back: the job report, the outputs under their final names, progress lines, stdout logging."""
