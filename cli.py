"""Thin shim: ``python cli.py run pipelines/demo.yaml`` == ``maskpipe run pipelines/demo.yaml``."""
from maskpipe.cli import main

if __name__ == "__main__":
    main()
