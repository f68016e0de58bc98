"""Loads the katas' pytest plugin: the --impl switch, the task marker, the shared fixtures."""

pytest_plugins = ("dojo.plugin",)
