"""The sandbox image: offline CPU build (``build.py``) and production Dockerfiles."""
