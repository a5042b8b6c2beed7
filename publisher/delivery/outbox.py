"""The names other modules have long imported from here; the delivery store owns them.

publisher.delivery.store is the outbox's only writer and reader; this module only
keeps the public queueing and progress functions reachable under their old names.
"""

from __future__ import annotations

from publisher.delivery.store import ErrorLine as ErrorLine
from publisher.delivery.store import Job as Job
from publisher.delivery.store import Outcome as Outcome
from publisher.delivery.store import RowState as RowState
from publisher.delivery.store import bounce_kind as bounce_kind
from publisher.delivery.store import edition_subscribers as edition_subscribers
from publisher.delivery.store import last_errors as last_errors
from publisher.delivery.store import new_worker_id as new_worker_id
from publisher.delivery.store import queue_announcements as queue_announcements
from publisher.delivery.store import queue_digests as queue_digests
from publisher.delivery.store import queue_notice as queue_notice
from publisher.delivery.store import queue_test_copy as queue_test_copy
from publisher.delivery.store import queued_among as queued_among
from publisher.delivery.store import row_state as row_state
from publisher.delivery.store import status_counts as status_counts
from publisher.delivery.store import unfinished_count as unfinished_count
