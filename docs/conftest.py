"""Collect only the documentation pages' examples, never the build configuration or scripts."""

collect_ignore = ["conf.py"]
collect_ignore_glob = ["scripts/*", "_build/*", "generated/*"]
