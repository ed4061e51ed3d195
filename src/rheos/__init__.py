"""rheos: stream processing in Python on an embedded, durable, partitioned event log."""

from rheos.errors import RheosError
from rheos.transport import Log, Record, RecordBatch, default_data_dir

__version__ = "0.1.0"

__all__ = ["Log", "Record", "RecordBatch", "RheosError", "__version__", "default_data_dir"]
