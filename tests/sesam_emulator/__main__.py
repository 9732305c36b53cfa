import sys

from tests.sesam_emulator import main

sys.exit(main())
