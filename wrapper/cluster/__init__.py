"""Where this process sits in a multi-worker job, and how the job's work is split over the workers."""
