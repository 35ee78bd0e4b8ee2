"""Who may decide what: the outbound policy, credentials bound to their destination, the
admin key."""
