"""The pytest plugin that points the properties at user Functions, and the report writer."""
