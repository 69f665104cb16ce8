"""Scale-out: `changeline serve` workers with separate CHANGELINE_HOMEs and one PostgreSQL."""

from tests.pgfixture import postgres_url  # noqa: F401 (a fixture)
from tests.reliability.conftest import prefect_api  # noqa: F401 (a fixture: the session's server, or one of its own)
