"""VICS 2.0 (Project VIC) JSON, the format forensic tools exchange cases and hash sets in.

The reader (`read`) and the writer (`write`) sit side by side so that what fedtriage
writes is what it reads: the same field names, hash forms and path rules (`paths`).
"""

from media.vics.paths import FILE_MISSING, LEAVES_ROOT, NO_PATH, posix_path, resolve_media_path
from media.vics.read import VicsError, VicsMedia, VicsProblem, read_vics_media
from media.vics.write import VICS_CONTEXT, VicsExportEntry, write_vics_export

__all__ = [
    "FILE_MISSING",
    "LEAVES_ROOT",
    "NO_PATH",
    "VICS_CONTEXT",
    "VicsError",
    "VicsExportEntry",
    "VicsMedia",
    "VicsProblem",
    "posix_path",
    "read_vics_media",
    "resolve_media_path",
    "write_vics_export",
]
