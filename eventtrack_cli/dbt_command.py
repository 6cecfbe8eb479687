"""`eventtrack-dbt`: the dbt command the pipeline runs (orchestration.resources.DBT_COMMAND).

An entry point like `eventtrack`, so it lives on the top floor; what it does is orchestration/dbt_server.py's
(the caller and the server speak one protocol, kept in one file). Standard library only at start-up.
"""

import sys

from orchestration.dbt_server import main

if __name__ == "__main__":
    sys.exit(main())
