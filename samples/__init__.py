"""Sample submissions trained on the demo data, rebuilt by ``python -m samples build``.

See ``samples/README.md`` for what each sample shows and its demo-test accuracy.
"""
