"""Test-wide settings that must be in place before anything imports Prefect.

Prefect reads its settings when first imported, so the API URL of the test server is
fixed here (a free port) and the server itself starts only when a test needs it.
"""

import os
import tempfile

from tests.simfixture import free_port

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
if "CHANGELINE_TEST_PREFECT_PORT" not in os.environ:
    os.environ["CHANGELINE_TEST_PREFECT_PORT"] = str(free_port())
os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{os.environ['CHANGELINE_TEST_PREFECT_PORT']}/api"
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="changeline-prefect-client-"))
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
