import sys

from tinyml.cli import main

sys.exit(main())
