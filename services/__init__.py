"""jetpost's services: one sub-package per job, each a small FastStream app."""
