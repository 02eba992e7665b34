"""Sources other than the generator, one module per source: any interaction log (``interactions``), the
seed's raw activity JSON (``xuetangx``, read by ``activity_json``), the seed's episodes (``seed_episodes``).

Every importer turns its input into interactions (``user, item, timestamp, session``) and hands them
to ``build.build_dataset``, except ``import_seed_episodes`` which has only episodes to offer. Rows read
and dropped are counted by ``rows``; timestamps and gap sessions are parsed by ``timestamps``.
The public names are re-exported here.
"""

from bench.data.importers.activity_json import (
    JsonStream as JsonStream,
)
from bench.data.importers.activity_json import (
    iter_activity as iter_activity,
)
from bench.data.importers.interactions import (
    import_interactions as import_interactions,
)
from bench.data.importers.rows import (
    DROP_REASONS as DROP_REASONS,
)
from bench.data.importers.rows import (
    STRICT_FIX as STRICT_FIX,
)
from bench.data.importers.rows import (
    RowAccount as RowAccount,
)
from bench.data.importers.rows import (
    missing_values as missing_values,
)
from bench.data.importers.rows import (
    rows_line as rows_line,
)
from bench.data.importers.seed_episodes import (
    SEED_COLUMNS as SEED_COLUMNS,
)
from bench.data.importers.seed_episodes import (
    check_vocab as check_vocab,
)
from bench.data.importers.seed_episodes import (
    import_seed_episodes as import_seed_episodes,
)
from bench.data.importers.timestamps import (
    parse_timestamps as parse_timestamps,
)
from bench.data.importers.timestamps import (
    sessions_by_gap as sessions_by_gap,
)
from bench.data.importers.xuetangx import (
    KEPT_EVENT_PREFIXES as KEPT_EVENT_PREFIXES,
)
from bench.data.importers.xuetangx import (
    SRS_KIND_UNITS as SRS_KIND_UNITS,
)
from bench.data.importers.xuetangx import (
    event_kind as event_kind,
)
from bench.data.importers.xuetangx import (
    import_xuetangx_activity as import_xuetangx_activity,
)
