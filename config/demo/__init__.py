"""The demo campus, one module per app's data (`seed_demo` builds them in order), and the
simulated devices the `demo` command starts."""
