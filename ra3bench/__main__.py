import sys

from ra3bench.cli.main import main

sys.exit(main())
