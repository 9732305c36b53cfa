import sys

from tests.sesam_config import main

sys.exit(main())
