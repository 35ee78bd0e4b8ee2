"""First-party portkey-mw plugins, each registered through the ``portkey_mw`` entry point."""
