"""Sandboxes that run learner code: the interface (``base``), the backends and the image.

``sandbox`` is plain Python and never imports Django. Use ``sandbox.backends.get_backend``.
"""
