import sys

from hamieks.cli import main

sys.exit(main())
