"""The supervisor <-> session-host protocol (connections/runner.py <-> connections/child.py), in one place.

Commands are JSON lines on a child's stdin, ``{"op": Op.X, "id": connection_id, ...}``; replies are JSON
lines on its ``RUNNER_CHILD_FD`` pipe, ``{"type": Reply.X, ...}``. ``SessionState`` is what the supervisor
holds for each leased connection (``Held.state``), not the Connection row's status.
"""


class Op:
    """Commands a child runs, one at a time on its command loop (except ``HEARTBEAT`` and ``LEASE``, which
    its stdin thread handles at once)."""

    # from the supervisor
    START = "start"  # connect a session here (pairing if it has no JID): id, transport, jid, phone_number, ...
    STOP = "stop"  # disconnect and forget the session here (it moves, or the number stops)
    HALT = "halt"  # disconnect but keep the session object (a connect timed out; the supervisor retries)
    LOGOUT = "logout"  # unlink the device (the tenant asked); answered with a LOGGED_OUT_HERE state
    SEND = "send"  # drain the connection's outbox
    CHECK_DUE = "check_due"  # the reconcile's look for outbox retries and media downloads that came due: ids
    MARK_READ = "mark_read"  # read receipts: chat_jid, external_ids, sender_jid
    REQUEST_HISTORY = "request_history"  # older history of a chat: chat_jid, before
    SIMULATE = "simulate"  # the simulator transport's fake peer: command
    HEARTBEAT = "heartbeat"  # answer at once (Reply.HEARTBEAT), then probe the sessions; seq, lease_until
    LEASE = "lease"  # only moves the child's lease_until
    EXIT = "exit"  # disconnect every session and exit
    # queued by the child itself
    PROBE = "probe"  # which sessions are alive (after a heartbeat)
    RECOVER = "recover"  # after a connect: sends a crash interrupted, then the outbox
    STORE_MAPPINGS = "store_mappings"  # record the session store's LID <-> phone pairs
    FETCH_MEDIA = "fetch_media"  # download media that came due, a bounded batch (also from the supervisor)


class Nudge:
    """Actions a nudge asks of the runner holding a connection: published by ``connections.nudge`` (on commit,
    from actions), acted on by the supervisor (``Supervisor.handle_nudges``), most by sending its child an Op."""

    RECONCILE = "reconcile"  # look at the connection's desired state now
    PAIR = "pair"  # pair by QR or phone code: method, phone
    LOGOUT = "logout"
    PAUSE = "pause"
    RESUME = "resume"
    SEND = "send"  # drain the outbox: message_id
    MARK_READ = "mark_read"  # chat_jid, external_ids, sender_jid
    REQUEST_HISTORY = "request_history"  # conversation_id, chat_jid, before
    SIMULATE = "simulate"  # the simulator's fake peer: its command
    FETCH_MEDIA = "fetch_media"  # media waits to be downloaded


NUDGE_ACTIONS = frozenset(value for name, value in vars(Nudge).items() if name.isupper())


# Ops for a session that is not (or no longer) hosted here that are dropped silently; any other such op
# is answered with an error.
OPS_WITHOUT_SESSION_IGNORED = frozenset({Op.STOP, Op.HALT, Op.RECOVER, Op.SEND, Op.STORE_MAPPINGS, Op.FETCH_MEDIA})


class Reply:
    """Message types a child writes back."""

    READY = "ready"  # Django and the transports are loaded
    HEARTBEAT = "heartbeat"  # seq, alive, attempts, busy, busy_op, journal
    STATE = "state"  # a session's state change: id, kind (a transport State or LOGGED_OUT_HERE), detail, data
    ERROR = "error"  # a command failed: id, op, error


# A state kind only a child reports: the logout the supervisor asked for is done.
LOGGED_OUT_HERE = "logged_out_here"


class SessionState:
    """What the supervisor's session for a leased connection is doing."""

    WAITING = "waiting"  # not running; (re)started once ``retry_at`` has passed
    CONNECTING = "connecting"  # started in a child; "connecting" past ``connect_deadline`` is a failed attempt
    CONNECTED = "connected"
    STOPPING = "stopping"  # a logout was sent to its child; waits for LOGGED_OUT_HERE
