"""Small facts about local processes."""


def pid_alive(pid: int) -> bool:
    """Is that process still running on this machine? A zombie (exited, not reaped yet) is not."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False
