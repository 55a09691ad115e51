"""The HTTP server and web UI: `voxclone serve`, a thin layer over the Python API."""
