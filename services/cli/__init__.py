"""The `jetpost` command line."""
