"""The test process runs no job runner: the tests store jobs and perform them themselves, as
the runner's worker would. Otherwise queue_job starts its runner in pytest-odoo's HTTP server,
and it takes the jobs a test commits (TestBusyCustomer's) and runs them meanwhile, against the
test. The Odoo servers the tests start (bench.cluster) run their own runner, as their config
file says (bench.servers keeps this setting from them)."""

import os

os.environ.setdefault("ODOO_QUEUE_JOB_CHANNELS", "root:0")
