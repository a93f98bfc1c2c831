"""Configuration commands: validated against the config view, appended to the config topic.

`commands` holds the imperative messages (CreateApiKey, RevokeApiKey; alert rules,
receivers, silences and dashboards next), `handlers` the use cases that turn them into
events. See docs/decisions/0016-config-commands-and-view.md.
"""
